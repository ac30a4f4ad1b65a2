"""Faults on either side: disconnects, resets, stalls, restarts, and a slow reader."""

from __future__ import annotations

import asyncio
import logging
import socket
import tracemalloc
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.faults import FaultyUpstream
from tests.stack import proxy, route

GUARD = 30.0


@pytest.fixture
async def faulty() -> AsyncIterator[tuple[FaultyUpstream, str]]:
    """The fault server on a free port, cancelling its handlers when the proxy goes away."""
    upstream = FaultyUpstream()
    server = TestServer(upstream.app(), host="127.0.0.1")
    await server.start_server()  # aiohttp's TestServer cancels handlers of dropped clients
    try:
        yield upstream, str(server.make_url("")).rstrip("/")
    finally:
        upstream.release.set()
        await server.close()


async def _eventually(check: object) -> bool:
    for _ in range(200):
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


async def test_client_going_away_cancels_the_upstream_request(
    faulty: tuple[FaultyUpstream, str],
) -> None:
    """When the client disconnects, the request upstream is cancelled, not left running."""
    upstream, url = faulty
    async with proxy(route(url, mode="none")) as running:
        _, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET /stall-before HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        assert await _eventually(lambda: upstream.in_progress == 1)
        writer.close()
        await writer.wait_closed()
        assert await _eventually(lambda: upstream.cancelled["stall-before"] == 1)
        assert upstream.in_progress == 0


async def test_upstream_reset_mid_reply_is_logged_and_counted(
    faulty: tuple[FaultyUpstream, str],
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reply the upstream cuts is cut for the client too, logged, and counted."""
    _, url = faulty
    with caplog.at_level(logging.WARNING, logger="signing_proxy"):
        async with proxy(route(url, mode="none")) as running:
            async with client.get(f"{running.url}/reset") as response:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await response.read()
            metrics = running.state.metrics.exposition().decode()
    assert "failed mid-reply" in caplog.text
    assert 'signing_proxy_cut_replies_total{cause="upstream_reset",route="r"} 1.0' in metrics


async def test_stall_mid_reply_fires_the_idle_timeout(
    faulty: tuple[FaultyUpstream, str],
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream that stops sending is cut after timeouts.idle, and the log says which fired."""
    _, url = faulty
    routes = route(url, mode="none", timeouts={"idle": "200ms"})
    with caplog.at_level(logging.WARNING, logger="signing_proxy"):
        async with proxy(routes) as running, client.get(f"{running.url}/stall-during") as response:
            first = await response.content.readuntil(b";")
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
    assert first == b"first chunk;"
    assert "timeouts.idle (0.2s) fired mid-reply" in caplog.text


async def test_stall_before_the_reply_is_504_naming_first_byte(
    faulty: tuple[FaultyUpstream, str], client: aiohttp.ClientSession
) -> None:
    """No reply within timeouts.first_byte: 504, and the upstream request is given up."""
    upstream, url = faulty
    routes = route(url, mode="none", timeouts={"first_byte": "200ms"})
    async with proxy(routes) as running, client.get(f"{running.url}/stall-before") as response:
        body = await response.json()
    assert response.status == 504
    assert "timeouts.first_byte" in body["message"]
    assert await _eventually(lambda: upstream.cancelled["stall-before"] == 1)


async def test_connections_closed_by_the_upstream_do_not_break_the_next_request(
    faulty: tuple[FaultyUpstream, str], client: aiohttp.ClientSession
) -> None:
    """An upstream that closes kept-alive connections after each reply: every request works."""
    upstream, url = faulty
    async with proxy(route(url, mode="none")) as running:
        statuses = []
        for _ in range(10):
            async with client.get(f"{running.url}/close") as response:
                statuses.append(response.status)
                await response.read()
    assert statuses == [200] * 10
    assert upstream.requests["close"] == 10


async def test_pool_survives_an_upstream_restart(client: aiohttp.ClientSession) -> None:
    """Pooled connections to an upstream that restarted are replaced, not reused broken."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    def app() -> web.Application:
        application = web.Application()
        application.router.add_get("/{tail:.*}", hello)
        return application

    first = TestServer(app(), host="127.0.0.1", port=port)
    await first.start_server()
    async with proxy(route(f"http://127.0.0.1:{port}", mode="none")) as running:
        async with client.get(f"{running.url}/a") as before:
            assert before.status == 200
        await first.close()
        second = TestServer(app(), host="127.0.0.1", port=port)
        await second.start_server()
        try:
            async with client.get(f"{running.url}/b") as after:
                assert (after.status, await after.text()) == (200, "hello")
        finally:
            await second.close()


async def test_slow_reader_does_not_make_the_proxy_buffer_the_reply(
    faulty: tuple[FaultyUpstream, str],
) -> None:
    """A 32 MiB reply read slowly flows through with bounded memory: backpressure works."""
    _, url = faulty
    size = 32 * 1024 * 1024
    received = 0
    async with proxy(route(url, mode="none")) as running:
        tracemalloc.start()
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GUARD)) as session,
                session.get(f"{running.url}/big?size={size}") as response,
            ):
                async for chunk in response.content.iter_chunked(64 * 1024):
                    received += len(chunk)
                    await asyncio.sleep(0.002)  # ~30 MiB/s: slower than upstream and proxy
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert received == size
    # Everything in this process (upstream, proxy, client) together held a few MiB at most:
    # without backpressure the proxy would have held most of the 32.
    assert peak < 8 * 1024 * 1024
