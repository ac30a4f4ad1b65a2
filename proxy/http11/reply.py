"""The reply to one request (``Reply``): its head parsed by httptools as it arrives, and
bounded while it does; then its body, streamed to the caller with flow control.

A reply's head is bounded while it arrives (HEAD_LIMIT bytes, FIELD_LIMIT fields): a hostile
server cannot make the proxy hold an endless one. A body buffered past _HIGH_WATER pauses the
connection's reading until the caller has read it. ``release()`` gives the connection back to
its pool (or closes it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

import httptools
from multidict import CIMultiDict

from proxy.http11.connection import Connection
from proxy.http11.errors import ClientError, Disconnected, HeadTooLarge, MalformedReply

# A reply body buffered beyond this makes the connection stop reading until the client of the
# proxy catches up: a slow reader must not make the proxy hold the whole reply.
_HIGH_WATER = 256 * 1024
# The most a reply's head may take: bytes before the body (status lines and header fields of
# the interim replies and the final one, all together), and header fields in any one head.
# Envoy's bounds; a hostile upstream must not make the proxy hold an endless header.
HEAD_LIMIT = 64 * 1024
FIELD_LIMIT = 100


class Keeper(Protocol):
    """What a released reply gives its connection back to: ``pool.Pool``."""

    def put_back(self, connection: Connection, *, reusable: bool) -> None: ...


class Reply:
    """The reply to one request: status, reason and headers once they arrived, then the body
    in chunks. ``release()`` returns the connection to its pool or closes it."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_close_delimited",
        "_complete",
        "_connection",
        "_error",
        "_head_bytes",
        "_head_only",
        "_keep_alive",
        "_parser",
        "_pool",
        "_raw_headers",
        "_reason",
        "_received",
        "_upload",
        "headers",
        "reason",
        "status",
    )

    def __init__(self, pool: Keeper | None, connection: Connection, *, head_only: bool) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._parser = connection.receive(self)
        self._head_only = head_only  # a HEAD (or CONNECT): the reply ends with its headers
        self._head_bytes = 0  # fed to the parser before the final head was complete
        self._raw_headers: list[tuple[str, str]] = []
        self._reason = b""
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._received = False  # any byte of the reply arrived
        self._complete = False
        self._close_delimited = False
        self._keep_alive = False
        self._error: ClientError | None = None
        self._upload: asyncio.Task[None] | None = None
        self.status = 0
        self.reason = ""
        self.headers: CIMultiDict[str] = CIMultiDict()

    # httptools calls these (through the connection) while it parses what arrived.

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        raw = self._raw_headers
        if len(raw) == FIELD_LIMIT:  # each field costs a tuple and two strings, however short
            raise HeadTooLarge(f"more than {FIELD_LIMIT} header fields")
        # As aiohttp's server reads them: UTF-8 text as text, other bytes kept as surrogates.
        raw.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        if self._complete:  # a second reply in the same bytes: not ours, and not to be reused
            self._keep_alive = False
            return
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: an interim reply, the real one follows
            if status == 101:
                raise MalformedReply("the server switched protocols unasked (101)")
            self._raw_headers, self._reason = [], b""
            return
        self.status = status
        self.reason = self._reason.decode("latin-1")
        self.headers = headers = CIMultiDict(self._raw_headers)
        # Trailers of a chunked body arrive through on_header too: FIELD_LIMIT more at most.
        self._raw_headers = []
        self._close_delimited = (
            not self._head_only
            and status not in (204, 304)
            and "Content-Length" not in headers
            and "Transfer-Encoding" not in headers
        )
        if self._head_only:
            self._finish()
            # The parser would take what follows for a body: the next reply gets a new one.
            if self._connection is not None:
                self._connection.parser = None
        self._wake()

    def on_body(self, data: bytes) -> None:
        if self._complete:  # bytes after a reply that had none: the connection is unusable
            self._keep_alive = False
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and self._connection is not None:
            self._connection.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status and not self._complete:  # not the end of an interim reply
            self._finish()
            self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()

    # The connection tells the reply what happened to it.

    def _feed(self, data: bytes) -> None:
        if self._complete:  # more than the reply: the connection cannot be trusted again
            self._keep_alive = False
            if self._connection is not None:
                self._connection.close()
            return
        self._received = True
        try:
            if self.status:  # the head is in: what follows is body
                self._parser.feed_data(data)
                return
            # httptools keeps a header's name and value until their end, however long they
            # grow, and on_header only sees them then: the head is bounded by what is fed.
            head_bytes = self._head_bytes + len(data)
            if head_bytes < HEAD_LIMIT:
                self._head_bytes = head_bytes
                self._parser.feed_data(data)
            else:
                self._feed_to_the_bound(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc.__cause__
            self._fail(cause if isinstance(cause, ClientError) else MalformedReply(str(exc)))
        except httptools.HttpParserError as exc:
            self._fail(MalformedReply(f"the server's reply is not valid HTTP ({exc})"))

    def _feed_to_the_bound(self, data: bytes) -> None:
        """Feed what ``data`` holds of the head up to HEAD_LIMIT; the rest only if the head
        ended within that (a big reply's first read brings its head and body at once)."""
        room = HEAD_LIMIT - self._head_bytes
        self._head_bytes = HEAD_LIMIT
        view = memoryview(data)  # slices without copying
        self._parser.feed_data(view[:room])
        if not self.status:
            self._fail(HeadTooLarge(f"the reply head is over {HEAD_LIMIT // 1024} KiB"))
        elif len(data) > room:
            self._parser.feed_data(view[room:])

    def _lost(self) -> None:
        """The connection closed: the end of a close-delimited body, else a failure."""
        if self.status and self._close_delimited and not self._complete:
            self._complete = True  # keep_alive stays False
            self._wake()
        elif not self._complete:
            self._fail(Disconnected("the server closed the connection"))

    def _fail(self, error: ClientError) -> None:
        if self._error is None:
            self._error = error
        self._keep_alive = False
        if self._connection is not None:
            self._connection.close()
        self._wake()

    def _wake(self) -> None:
        if self._connection is not None:
            self._connection.wake()

    # What the user of the reply calls.

    @property
    def received_anything(self) -> bool:
        return self._received

    @property
    def complete(self) -> bool:
        """The whole reply is here: ``buffered()`` holds all of its body."""
        return self._complete and self._error is None

    def buffered(self) -> bytes:
        """The body bytes received and not yet read, without waiting."""
        chunks = self._chunks
        body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        chunks.clear()
        self._buffered = 0
        if self._connection is not None:
            self._connection.resume_reading()
        return body

    async def _head(self, until: float | None) -> None:
        """Wait for the status line and headers."""
        while not self.status:
            if self._error is not None:
                raise self._error
            assert self._connection is not None  # noqa: S101 - released replies are not read
            await self._connection.wait(until)

    async def read_chunk(self, until: float | None = None) -> bytes:
        """The body bytes received so far (waiting, up to loop time ``until``, for some), or
        b"" at its end. TimeoutError when ``until`` passes first; ClientError on a failure."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            assert self._connection is not None  # noqa: S101 - released replies are not read
            await self._connection.wait(until)
        return self.buffered()  # what arrived in pieces meanwhile goes on in one write

    def unread(self, chunk: bytes) -> None:
        """Put ``chunk`` back to be read first."""
        if chunk:
            self._chunks.appendleft(chunk)
            self._buffered += len(chunk)

    def release(self) -> None:
        """Give the connection back when the reply was read to its end and the server keeps
        it open; close it otherwise (an unread reply would be read by the next request)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        upload = self._upload
        reusable = self._complete and self._keep_alive and self._error is None
        if upload is not None and not upload.done():
            upload.cancel()  # the reply ended (or failed) before the body was all sent
            reusable = False
        connection.reply = None
        if self._pool is not None:
            self._pool.put_back(connection, reusable=reusable)
        elif not reusable:
            connection.close()
