"""Browser-borne attacks in a real headless Chromium: a page of another origin, and a
DNS-rebinding page, try to get signed requests through the proxy and to reload it; only the
page that a route's allowed_origins names gets through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from proxy.config.load import parse_config
from proxy.emulator import Emulator
from proxy.model import Address, Config
from proxy.serve.server import running
from tests.browser import WAIT, chromium, off_loop
from tests.stack import FIXED_KEYS, route

REBIND_HOST = "rebind.attacker.test"

# Each request a page can send without the proxy's consent; the title says when all went.
ATTACK = """<!doctype html><title>attacking</title>
<iframe name="form-sink"></iframe><iframe name="reload-sink"></iframe>
<form id="form" method="POST" action="{proxy}/orders/form" target="form-sink"
      enctype="text/plain"><input name="a" value="b"></form>
<form id="reload" method="POST" action="{admin}/reload" target="reload-sink"></form>
<script>
const settle = (promise) => promise.then(() => "done", () => "done");
const image = new Promise((done) => {{
  const img = new Image();
  img.onload = img.onerror = done;
  img.src = "{proxy}/orders/img";
}});
const submitted = (id) => new Promise((done) => {{
  document.querySelector(`iframe[name=${{id}}-sink]`).onload = done;
  document.getElementById(id).submit();
}});
navigator.sendBeacon("{proxy}/orders/beacon", "x");
Promise.all([
  settle(fetch("{proxy}/orders/no-cors", {{method: "POST", mode: "no-cors", body: "x"}})),
  settle(fetch("{proxy}/orders/cors", {{method: "POST", body: "x"}})),
  settle(fetch("{admin}/reload", {{method: "POST", mode: "no-cors"}})),
  image,
])
  .then(() => submitted("form"))
  .then(() => submitted("reload"))
  .then(() => {{ document.title = "done"; }});
</script>"""
# What each page sends and the browser waits for (a beacon is sent whenever it suits it).
AWAITED = {"no-cors", "cors", "img", "form"}
SENT = AWAITED | {"beacon"}

# What a rebinding page does once its name points at 127.0.0.1: same-origin, so it could
# read the reply.
REBOUND = """<!doctype html><title>rebinding</title><script>
fetch("/orders", {method: "POST", body: "x"})
  .then((reply) => { document.title = "status " + reply.status; },
        (error) => { document.title = "error " + error; });
</script>"""


class _Reloads:
    """Counts the reloads the admin listener carried out."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.count = 0

    def __call__(self) -> Config:
        self.count += 1
        return self.config


@contextlib.asynccontextmanager
async def _rebinding_name(page: str, proxy_port: int) -> AsyncIterator[int]:
    """A port standing for a rebinding name: it serves the attacker's page at /rebind.html and
    passes every other connection to the proxy, as the name would once it resolved to
    127.0.0.1 (each reply says Connection: close, so each request opens a connection)."""

    handlers: set[asyncio.Task[Any]] = set()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await _serve_one(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # Chromium opens spare connections and drops them unused
        finally:
            # Closed on every path: a socket left to the garbage collector warns in whichever
            # test happens to run then.
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            handlers.discard(task)

    async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET /rebind.html "):
            body = page.encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        else:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            try:
                up_writer.write(head.replace(b"keep-alive", b"close"))
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
                with contextlib.suppress(OSError):
                    await up_writer.wait_closed()
        await writer.drain()

    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    async with server:
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            # A connection the browser still holds open: its relay is ended here, its sockets
            # closed, instead of the task being dropped with the loop.
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()


async def _pages(aiohttp_server: AiohttpServer, html: Callable[[], str]) -> int:
    """A page server on 127.0.0.1, port 0; its port."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=html(), content_type="text/html")

    app = web.Application()
    app.router.add_get("/attack.html", page)
    port = (await aiohttp_server(app)).port
    assert port is not None
    return port


async def _until_title(driver: Any, text: str) -> str:
    """The page's title once it holds ``text`` (or whatever it is when the guard runs out)."""
    waited = 0.0
    while text not in (title := await off_loop(lambda: driver.title)) and waited < WAIT * 3:
        await asyncio.sleep(0.1)
        waited += 0.1
    return str(title)


def _config(emulator: Emulator, page_origin: str) -> tuple[Config, _Reloads]:
    """A catch-all route, and /app that lets ``page_origin`` in; a reload counter."""
    document = {
        "listen": "127.0.0.1:0",
        "routes": [
            route(
                emulator.cloudfront_url,
                name="app",
                path_prefix="/app",
                allowed_origins=[page_origin],
            ),
            route(emulator.cloudfront_url),
        ],
    }
    config = parse_config(document)
    return config, _Reloads(config)


async def test_pages_of_other_origins_get_nothing_signed_and_cannot_reload(
    tmp_path: Path,
    emulator: Emulator,
    aiohttp_server: AiohttpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A no-cors fetch, a CORS fetch, an image and a form of another site's page reach
    nothing, and its form and fetch to /reload reload nothing; the same requests from the
    page a route's allowed_origins names get through on that route (an image, which carries
    no Origin, does not)."""
    urls: dict[str, str] = {}
    page_port = await _pages(aiohttp_server, lambda: ATTACK.format(**urls))
    config, reloads = _config(emulator, f"http://127.0.0.1:{page_port}")
    with caplog.at_level(logging.INFO, logger="signing_proxy.access"):
        async with running(
            config, admin=Address("127.0.0.1", 0), load=reloads, credential_overrides=FIXED_KEYS
        ) as proxy:
            assert proxy.admin_url is not None
            urls.update(proxy=proxy.url, admin=proxy.admin_url)
            with chromium(tmp_path / "profile") as driver:
                # Served as localhost: another site than the proxy's 127.0.0.1.
                await off_loop(lambda: driver.get(f"http://localhost:{page_port}/attack.html"))
                attacked = await _until_title(driver, "done")
                urls["proxy"] += "/app"  # the same attacks from the page allowed on /app
                await off_loop(lambda: driver.get(f"http://127.0.0.1:{page_port}/attack.html"))
                allowed = await _until_title(driver, "done")
    assert attacked == allowed == "done"
    refused = {
        getattr(record, "path", "")
        for record in caplog.records
        if getattr(record, "error", None) == "cross_site"
    }
    # The other site's page: every request it sent (and the browser did send them) refused.
    assert {f"/orders/{kind}" for kind in AWAITED} <= refused
    # The allowed page: what carries its Origin got through; an image request carries none.
    assert refused <= {f"/orders/{kind}" for kind in SENT} | {
        "/app/orders/img",
        "/app/orders/beacon",
    }
    assert "/app/orders/img" in refused
    reached = {seen.target for seen in emulator.requests}
    assert {"/app/orders/no-cors", "/app/orders/cors", "/app/orders/form"} <= reached
    assert reached <= {
        "/app/orders/no-cors",
        "/app/orders/cors",
        "/app/orders/form",
        "/app/orders/beacon",
    }
    assert all(seen.verdict.ok for seen in emulator.requests)
    assert reloads.count == 0


async def test_a_rebinding_page_gets_421_and_nothing_is_sent(
    tmp_path: Path, emulator: Emulator
) -> None:
    """A page whose name now resolves to 127.0.0.1 sends a same-origin POST: the proxy answers
    421 to its Host, so the page reads nothing of the function and nothing is signed."""
    config, reloads = _config(emulator, "http://localhost:1")
    async with (
        running(config, load=reloads, credential_overrides=FIXED_KEYS) as proxy,
        _rebinding_name(REBOUND, proxy.port) as port,
    ):
        resolve = f"--host-resolver-rules=MAP {REBIND_HOST} 127.0.0.1"
        with chromium(tmp_path / "profile", resolve) as driver:
            await off_loop(lambda: driver.get(f"http://{REBIND_HOST}:{port}/rebind.html"))
            title = await _until_title(driver, "status")
    assert title == "status 421", title
    assert not emulator.requests
