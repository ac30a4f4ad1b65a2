"""Upstream connection pools: shared by default, a route's own with max_connections."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from proxy.http11.wire import Streamed
from proxy.serve import body as body_module
from proxy.serve.body import read_body
from proxy.serve.upstream import content
from tests.stack import proxy, route


class Upstream:
    """A slow upstream that records how many requests it held at once, and over which
    connections (peer addresses) they came."""

    def __init__(self, *, delay: float) -> None:
        self.delay = delay
        self.active = self.most = 0
        self.peers: set[Any] = set()

    async def handle(self, request: web.Request) -> web.Response:
        assert request.transport is not None  # a live request has one
        self.peers.add(request.transport.get_extra_info("peername"))
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        return web.Response(text="ok")


async def _start(aiohttp_server: AiohttpServer, upstream: Upstream) -> str:
    app = web.Application()
    app.router.add_get("/{tail:.*}", upstream.handle)
    return str((await aiohttp_server(app)).make_url(""))


async def _statuses(client: aiohttp.ClientSession, url: str, count: int) -> list[int]:
    async def one() -> int:
        async with client.get(f"{url}/x") as response:
            await response.read()
            return response.status

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_route_pool_never_exceeds_max_connections(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """Six requests at once on a route with max_connections 2 travel over two connections."""
    upstream = Upstream(delay=0.1)
    url = await _start(aiohttp_server, upstream)
    async with proxy(route(url, mode="none", max_connections=2)) as running:
        assert await _statuses(client, running.url, 6) == [200] * 6
    assert upstream.most == 2
    assert len(upstream.peers) == 2


async def test_shared_pool_has_no_limit(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """Without max_connections, six requests at once are six upstream connections."""
    upstream = Upstream(delay=0.1)
    url = await _start(aiohttp_server, upstream)
    async with proxy(route(url, mode="none")) as running:
        assert await _statuses(client, running.url, 6) == [200] * 6
    assert upstream.most == 6


async def test_waiting_for_a_pooled_connection_is_bounded_by_connect(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """No free connection within timeouts.connect: 504 naming that timeout."""
    upstream = Upstream(delay=1.0)
    url = await _start(aiohttp_server, upstream)
    fields = {"mode": "none", "max_connections": 1, "timeouts": {"connect": "200ms"}}
    fields["retries"] = {"attempts": 1}
    async with proxy(route(url, **fields)) as running:
        first = asyncio.create_task(_statuses(client, running.url, 1))
        await asyncio.sleep(0.05)  # the first request takes the only connection
        async with client.get(f"{running.url}/y") as second:
            refused = (second.status, await second.json())
        assert await first == [200]
    assert refused[0] == 504
    assert "timeouts.connect" in refused[1]["message"]


@pytest.mark.parametrize("nowait", ["the system's", "refused"])
async def test_a_spooled_body_is_sent_whole_read_on_the_loop_or_on_a_thread(
    monkeypatch: pytest.MonkeyPatch, nowait: str
) -> None:
    """A spool file just written is read back from the page cache on the event loop; where
    the system refuses reads that do not wait (here: a flag the kernel does not know, so
    preadv fails), on a worker thread: the same bytes either way, and again for a retry."""
    if nowait == "refused":
        monkeypatch.setattr(body_module, "_NOWAIT", 1 << 30)
    data = os.urandom(body_module.CHUNK_SIZE * 12 + 123)
    body = await read_body(_chunks(data, 64 * 1024), limit=len(data), route="r")
    try:
        assert body.in_memory is None  # spooled
        on_the_loop = nowait == "the system's"
        assert body.cached_chunk(0) == (data[: body_module.CHUNK_SIZE] if on_the_loop else None)
        streamed = content(body)
        assert isinstance(streamed, Streamed)
        assert streamed.length == len(data)
        assert b"".join([chunk async for chunk in streamed.chunks()]) == data
        assert b"".join([chunk async for chunk in streamed.chunks()]) == data
    finally:
        body.close()


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
