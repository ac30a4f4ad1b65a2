"""Reading a request body once: hashed as it arrives, in memory or spooled, bounded."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from proxy.errors import BodyTooLargeError, RequestTimeoutError
from proxy.serve import body as body_module
from proxy.serve.body import Body, read_body, received_body


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _read_back(body: Body) -> bytes:
    """The body as it is sent: from memory, or the spool read chunk by chunk."""
    if body.in_memory is not None:
        return body.in_memory
    parts, offset = [], 0
    while chunk := body.chunk(offset):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


@pytest.mark.parametrize(
    ("parts", "spooled"),
    [
        ((), False),
        ((b"hello",), False),
        ((b"a" * 1000, b"b" * 1000), False),
        ((b"x" * (body_module.MEMORY_LIMIT + 1),), True),
        (tuple(b"%d" % i * 40_000 for i in range(60)), True),
    ],
)
async def test_body_is_hashed_and_kept_whole(parts: tuple[bytes, ...], spooled: bool) -> None:
    """Small bodies stay in memory, large ones go to disk; bytes and SHA-256 are exact."""
    data = b"".join(parts)
    body = await read_body(_chunks(*parts), limit=10 * 1024 * 1024, route="r")
    try:
        assert body.size == len(data)
        assert body.sha256 == hashlib.sha256(data).hexdigest()
        assert (body.in_memory is None) == spooled
        assert _read_back(body) == data
        assert _read_back(body) == data  # re-readable, for a retry
    finally:
        body.close()


async def test_over_the_limit_is_413_naming_the_route() -> None:
    """One byte over max_body fails with 413 and a message naming the limit and the route."""
    with pytest.raises(BodyTooLargeError) as caught:
        await read_body(_chunks(b"x" * 600, b"y" * 425), limit=1024, route="orders")
    assert caught.value.status == 413
    assert "1 KiB" in caught.value.message
    assert "'orders'" in caught.value.message


async def test_exactly_the_limit_is_accepted() -> None:
    """A body of exactly max_body bytes is fine."""
    body = await read_body(_chunks(b"x" * 1024), limit=1024, route="r")
    assert body.size == 1024


async def test_stalled_client_is_408() -> None:
    """A client that stops sending mid-body is given up on with 408."""

    async def stalls() -> AsyncIterator[bytes]:
        yield b"start"
        await asyncio.Event().wait()
        yield b"never"  # pragma: no cover

    with pytest.raises(RequestTimeoutError):
        await read_body(stalls(), limit=1024, route="r", idle_timeout=0.05)


@pytest.mark.parametrize("data", [b"", b"{}", b"x" * 1024])
def test_body_that_came_whole_is_the_same_as_one_read(data: bytes) -> None:
    """A body that arrived with its headers gets the size, hash and bytes read_body gives."""
    seen: list[bytes] = []
    body = received_body(data, limit=1024, route="r", observe=seen.append)
    assert (body.size, body.sha256, body.in_memory) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        data,
    )
    assert seen == [data]


def test_body_that_came_whole_over_the_limit_is_413() -> None:
    """One byte over max_body is refused there too."""
    with pytest.raises(BodyTooLargeError):
        received_body(b"x" * 1025, limit=1024, route="r")
