"""The proxy in front of a hostile upstream on raw sockets: a reply head over the bounds is
answered 502 upstream_header_too_large, and the proxy stops reading it at the bound."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from proxy.http11.reply import HEAD_LIMIT
from tests.stack import proxy, raw_request, route

GUARD = 30.0  # upper bound against a hung test, never a measurement
KIB = 1024
MIB = 1024 * KIB
REQUEST = b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
BIG_HEAD = b"HTTP/1.1 200 OK\r\nX-Big: "
CHUNK = 16 * KIB  # what the endless upstream writes at a time


@dataclass
class HostileUpstream:
    """An upstream on 127.0.0.1 that answers each request with ``reply()``'s chunks, one
    connection at a time; it counts what the kernel took from it and how its connections
    ended."""

    reply: Callable[[], Iterator[bytes]]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    accepted: int = 0  # bytes of replies the kernel took (whole chunks)
    ends: list[str] = field(default_factory=list)  # per connection: "refused" or "closed"
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[HostileUpstream]:
        listener = socket.socket()
        # A small send buffer (and so no autotuning of it): what the kernel takes from the
        # upstream is then about what the proxy read, not what loopback buffers can hold.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KIB)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        serving = asyncio.ensure_future(self._serve(listener))
        try:
            yield self
        finally:
            serving.cancel()
            with suppress(asyncio.CancelledError):
                await serving
            listener.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(listener)
            with connection:
                self.connections += 1
                self.ends.append(await self._answer(loop, connection))
                self.ended.set()

    async def _answer(self, loop: asyncio.AbstractEventLoop, connection: socket.socket) -> str:
        request = b""
        while b"\r\n\r\n" not in request:
            if not (data := await loop.sock_recv(connection, 65536)):
                return "closed"
            request += data
        self.requests.append(request)
        try:
            for chunk in self.reply():
                await loop.sock_sendall(connection, chunk)
                self.accepted += len(chunk)
        except ConnectionError:
            return "refused"  # the proxy closed the connection while the reply was sent
        # All of it sent: the proxy is to close the connection, having read what it wanted.
        with suppress(ConnectionError):
            while await loop.sock_recv(connection, 65536):
                pass
        return "closed"


def big_header(value: int) -> Iterator[bytes]:
    """A 200 reply whose one header has a ``value``-byte value, written at once."""
    yield BIG_HEAD + b"a" * value + b"\r\nContent-Length: 2\r\n\r\nok"


def endless_header(total: int) -> Iterator[bytes]:
    """A 200 reply head that goes on for ``total`` bytes of one header value, CHUNK by CHUNK."""
    yield BIG_HEAD
    for _ in range(total // CHUNK):
        yield b"a" * CHUNK


async def test_reply_head_over_the_bounds_is_502_upstream_header_too_large() -> None:
    """A 256 KiB reply header: the client gets a 502 upstream_header_too_large naming the
    upstream and the bounds, with an X-Request-Id; the request was sent once, not retried,
    and the upstream saw its connection closed."""
    upstream = HostileUpstream(lambda: big_header(256 * KIB))
    async with upstream.running(), proxy(route(upstream.url, mode="none")) as running:
        reply = await raw_request(running.port, REQUEST)
        await asyncio.wait_for(upstream.ended.wait(), GUARD)
    assert reply.status == 502
    assert reply.json() == {
        "error": "upstream_header_too_large",
        "message": f"the upstream {upstream.url} sent a reply head over 64 KiB or 100 header "
        "fields; refused",
        "route": "r",
    }
    assert reply.header("x-request-id")
    assert reply.header("x-big") is None
    assert upstream.connections == 1
    [request] = upstream.requests
    assert request.startswith(b"GET /orders/1 HTTP/1.1\r\n")
    assert upstream.ends[0] in ("refused", "closed")


async def test_endless_reply_head_is_not_read_past_the_bound() -> None:
    """An upstream streaming 32 MiB of one header: the proxy closes the connection once the
    head passes HEAD_LIMIT, so the upstream's sending fails having had less than 1 MiB
    taken; the client gets the 502."""
    upstream = HostileUpstream(lambda: endless_header(32 * MIB))
    async with upstream.running(), proxy(route(upstream.url, mode="none")) as running:
        reply = await raw_request(running.port, REQUEST)
        await asyncio.wait_for(upstream.ended.wait(), GUARD)
    assert (reply.status, reply.json()["error"]) == (502, "upstream_header_too_large")
    assert upstream.ends == ["refused"]
    # Whole chunks are counted: at least the head the proxy read, but for the chunk it cut.
    assert HEAD_LIMIT - CHUNK <= upstream.accepted < MIB
