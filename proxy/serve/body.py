"""Read a request body once: hash it while it arrives, keep it in memory or spool it to disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import IO

from proxy.errors import BodyTooLargeError, RequestTimeoutError

# Bodies up to this size stay in memory; larger ones go to an unlinked temporary file, so many
# large uploads in flight cost disk, not memory.
MEMORY_LIMIT = 1024 * 1024
CHUNK_SIZE = 256 * 1024
# Linux: a read that takes only what the page cache holds and fails rather than wait for the
# disk, so a spool file just written is read back on the event loop, not on a worker thread.
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
# A client that stops sending in the middle of a body is given up on after this long.
IDLE_TIMEOUT = 60.0


class Body:
    """A fully received request body: its size, its SHA-256, and its bytes in memory or on disk."""

    __slots__ = ("_file", "_memory", "sha256", "size")

    def __init__(self, *, size: int, sha256: str, memory: bytes, file: IO[bytes] | None) -> None:
        self.size = size
        self.sha256 = sha256
        self._memory = memory
        self._file = file

    @property
    def in_memory(self) -> bytes | None:
        """The bytes when the body was small enough to keep in memory."""
        return self._memory if self._file is None else None

    def chunk(self, offset: int) -> bytes:
        """Up to ``CHUNK_SIZE`` bytes of the spool file from ``offset``; b"" at its end. It may
        wait for the disk: call it on a worker thread."""
        assert self._file is not None  # noqa: S101 - only a spooled body has chunks to read
        return os.pread(self._file.fileno(), CHUNK_SIZE, offset)

    def cached_chunk(self, offset: int) -> bytearray | None:
        """What ``chunk`` reads, when the page cache holds it (part of it, when it holds part),
        so that reading cannot wait for the disk and the event loop may do it; None when it
        would wait, at the end, or where the system cannot say (then ``chunk`` on a thread)."""
        global _NOWAIT  # every spool file is in the same temporary directory
        if self._file is None or _NOWAIT is None:
            return None
        buffer = bytearray(min(CHUNK_SIZE, self.size - offset))
        try:
            got = os.preadv(self._file.fileno(), [buffer], offset, _NOWAIT)
        except BlockingIOError:
            return None
        except OSError:  # its file system cannot read without waiting: do not ask again
            _NOWAIT = None
            return None
        if not got:
            return None
        del buffer[got:]
        return buffer  # not copied into bytes: nothing else holds it

    def close(self) -> None:
        """Release the spool file, if any."""
        if self._file is not None:
            self._file.close()

    def __repr__(self) -> str:
        where = "memory" if self._file is None else "disk"
        return f"Body(size={self.size}, sha256={self.sha256[:12]}…, in={where})"


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    limit: int,
    route: str,
    idle_timeout: float = IDLE_TIMEOUT,
    total_timeout: float | None = None,
    observe: Callable[[bytes], None] | None = None,
) -> Body:
    """Read ``chunks`` to the end, failing with 413 as soon as more than ``limit`` bytes arrive,
    and with 408 after ``idle_timeout`` without data or ``total_timeout`` in all (a body
    trickled a byte at a time must not hold the connection and its route's slot for ever).

    ``observe`` sees every chunk as it arrives (a webhook signature is computed that way,
    without reading the body twice).
    """
    digest = hashlib.sha256()
    parts: list[bytes] = []
    buffered = 0
    spool: IO[bytes] | None = None
    size = 0
    loop = asyncio.get_running_loop()
    deadline = None if total_timeout is None else loop.time() + total_timeout
    try:
        while True:
            wake = loop.time() + idle_timeout
            try:
                async with asyncio.timeout_at(wake if deadline is None else min(wake, deadline)):
                    chunk = await anext(chunks, b"")
            except TimeoutError:
                if deadline is not None and deadline <= wake:  # the total bound fired
                    message = (
                        f"the client took more than client_timeouts.body_total "
                        f"({total_timeout:g}s) to send its body"
                    )
                else:
                    message = f"the client sent no body data for {idle_timeout:g}s"
                raise RequestTimeoutError(message, route=route) from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_large(limit, route)
            digest.update(chunk)
            if observe is not None:
                observe(chunk)
            if spool is not None:
                spool.write(chunk)
            else:
                parts.append(chunk)
                buffered += len(chunk)
                if buffered > MEMORY_LIMIT:
                    spool = tempfile.TemporaryFile()  # noqa: SIM115 - Body owns and closes it
                    spool.writelines(parts)
                    parts = []
        if spool is not None:
            spool.flush()
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    return Body(size=size, sha256=digest.hexdigest(), memory=b"".join(parts), file=spool)


# A request without a body (GET, HEAD, or one declared empty), and check's probes.
EMPTY_BODY = Body(size=0, sha256=hashlib.sha256(b"").hexdigest(), memory=b"", file=None)


def received_body(
    data: bytes, *, limit: int, route: str, observe: Callable[[bytes], None] | None = None
) -> Body:
    """A small body that had all arrived with its headers: nothing to wait for or spool."""
    if len(data) > limit:
        raise too_large(limit, route)
    if observe is not None:
        observe(data)
    return Body(size=len(data), sha256=hashlib.sha256(data).hexdigest(), memory=data, file=None)


def too_large(limit: int, route: str) -> BodyTooLargeError:
    """The 413 for a body over ``limit``."""
    return BodyTooLargeError(
        f"the request body is larger than this route's max_body of {_human(limit)}; "
        f"raise max_body for route {route!r} or send less",
        route=route,
    )


def _human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"
