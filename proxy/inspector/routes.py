"""The inspector's routes on the admin listener: the page, its JSON API, the live event stream
and replay; answered only to loopback Host names, replay only from the page itself.

The page shows traffic signed with the operator's AWS identity and can send it again, so:
a Host that is not loopback is refused (a DNS-rebinding page cannot read it), replay needs a
custom header (a cross-site form or simple fetch cannot send one) and a same-origin Origin,
and every response forbids framing, sniffing and foreign scripts.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources

import aiohttp
from aiohttp import web
from yarl import URL

from proxy.core.front_door import host_name, is_loopback
from proxy.inspector.exchange import Entry, Kept
from proxy.inspector.store import Inspector

log = logging.getLogger("signing_proxy.inspector")

INSPECTOR: web.AppKey[Inspector] = web.AppKey("inspector")
REPLAY_SESSION = web.AppKey("inspector_replay_session", aiohttp.ClientSession)

PREFIX = "/inspect"
# The header the page sends with a replay; a cross-site form cannot, and a cross-site fetch
# with it needs a CORS preflight that is never allowed.
CSRF_HEADER = "X-Inspector"
# A replay's whole exchange (the reply read to its end), then its entry's arrival.
REPLAY_TIMEOUT = 60.0
RECORD_WAIT = 5.0
# A comment line this often keeps idle streams honest: a page that went away is noticed.
PING_EVERY = 15.0
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSETS = {
    "": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
}
# aiohttp adds these unless told not to; a replay sends only what the client sent.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def register(app: web.Application, inspector: Inspector) -> None:
    """Add the inspector's routes, guard and lifecycle to the admin ``app``."""
    app[INSPECTOR] = inspector
    app.middlewares.append(_loopback_only)
    app.on_response_prepare.append(_secure)
    app.on_shutdown.append(_end_streams)
    app.cleanup_ctx.append(_replay_session)
    page = resources.files("proxy.inspector") / "page"
    for suffix, (name, content_type) in _ASSETS.items():
        app.router.add_get(PREFIX + suffix, _asset(page.joinpath(name).read_bytes(), content_type))
    app.router.add_get(f"{PREFIX}/api/exchanges", _list)
    app.router.add_get(PREFIX + r"/api/exchanges/{id:\d{1,18}}", _detail)
    app.router.add_post(PREFIX + r"/api/exchanges/{id:\d{1,18}}/replay", _replay)
    app.router.add_get(f"{PREFIX}/events", _events)


def _asset(body: bytes, content_type: str) -> Handler:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    return serve


@web.middleware
async def _loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse inspector requests addressed to a name that is not loopback (DNS rebinding)."""
    if request.path.startswith(PREFIX) and not _loopback_name(request.headers.get("Host")):
        return _error(403, "forbidden", "the inspector answers only to localhost or 127.0.0.1")
    return await handler(request)


def _loopback_name(host: str | None) -> bool:
    """Whether a Host header names this machine's loopback: localhost, 127.x or ::1, any port."""
    return bool(host) and is_loopback(host_name(host))


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(PREFIX):
        response.headers.update(_SECURITY_HEADERS)


async def _end_streams(app: web.Application) -> None:
    """Open event streams end at shutdown, so that they do not hold up the admin listener."""
    app[INSPECTOR].close_streams()


async def _replay_session(app: web.Application) -> AsyncIterator[None]:
    # Replies pass through untouched and no cookie of one replay leaks into the next.
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        app[REPLAY_SESSION] = session
        yield


async def _list(request: web.Request) -> web.Response:
    """The rows, newest first, and where the proxy listens (the page's hint says where to send
    a request)."""
    inspector = request.app[INSPECTOR]
    return web.json_response(
        {"size": inspector.size, "proxy_url": inspector.proxy_url, "exchanges": inspector.rows()}
    )


async def _detail(request: web.Request) -> web.Response:
    """One entry with everything an expanded row shows."""
    entry = request.app[INSPECTOR].lookup(int(request.match_info["id"]))
    if entry is None:
        return _unknown(request)
    return web.json_response(entry.row() | entry.details)


def _unknown(request: web.Request) -> web.Response:
    entry_id, size = request.match_info["id"], request.app[INSPECTOR].size
    message = f"no exchange #{entry_id}: unknown, or no longer among the last {size}"
    return _error(404, "not_found", message)


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``exchange`` event (the row as JSON) per new entry."""
    inspector = request.app[INSPECTOR]
    queue = inspector.subscribe()
    if queue is None:
        return _error(503, "busy", "too many live inspector pages are open")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 1000\n\n")  # reconnect after a second
        while True:
            try:
                data = await asyncio.wait_for(queue.get(), PING_EVERY)
            except TimeoutError:
                await response.write(b": ping\n\n")
                continue
            if data is None:
                break
            await response.write(f"event: exchange\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass  # the page went away
    finally:
        inspector.unsubscribe(queue)
    return response


async def _replay(request: web.Request) -> web.Response:
    """Send the entry's request again through the proxy's own listener, freshly signed."""
    if request.headers.get(CSRF_HEADER) != "1":
        return _error(403, "forbidden", f"a replay needs the {CSRF_HEADER}: 1 header")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != f"{request.scheme}://{request.host}".lower():
        return _error(403, "forbidden", f"a replay from another origin ({origin}) is refused")
    inspector = request.app[INSPECTOR]
    entry = inspector.lookup(int(request.match_info["id"]))
    if entry is None:
        return _unknown(request)
    if entry.kept is None:
        reason = entry.unavailable or "nothing was kept"
        return _error(409, "not_replayable", f"exchange #{entry.id} cannot be replayed: {reason}")
    if inspector.proxy_url is None:
        return _error(503, "not_ready", "the proxy's listener is not up yet")
    return await _send(request.app[REPLAY_SESSION], inspector, entry, entry.kept)


async def _send(
    session: aiohttp.ClientSession, inspector: Inspector, entry: Entry, kept: Kept
) -> web.Response:
    assert inspector.proxy_url is not None  # noqa: S101 - checked by the caller
    request_id = f"replay-{entry.id}-{secrets.token_hex(6)}"
    recorded = inspector.expect(request_id)
    try:
        async with asyncio.timeout(REPLAY_TIMEOUT):
            async with session.request(
                kept.method,
                URL(inspector.proxy_url + kept.target, encoded=True),  # sent as the client did
                headers=inspector.replay_headers(entry, kept, request_id=request_id),
                data=kept.body or None,
                skip_auto_headers=_NO_AUTO_HEADERS,
                allow_redirects=False,
                ssl=False,  # https only when the proxy serves TLS: this very process, on loopback
            ) as reply:
                status = reply.status
                async for _ in reply.content.iter_chunked(64 * 1024):
                    pass  # read to the end, so the proxy records a finished exchange
        new_id = await _recorded(recorded)
    except TimeoutError:
        return _error(504, "replay_timeout", "the replay did not finish within a minute")
    except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a target aiohttp refuses
        return _error(502, "replay_failed", f"could not send the replay to the proxy: {exc}")
    finally:
        inspector.forget(request_id)
    log.info("inspector: replayed #%d as #%s, status %d", entry.id, new_id, status)
    return web.json_response(
        {"replayed": entry.id, "id": new_id, "status": status, "request_id": request_id}
    )


async def _recorded(waiter: asyncio.Future[int]) -> int | None:
    """The replay's entry id; None if it is not recorded in time (the reply came, though)."""
    try:
        return await asyncio.wait_for(waiter, RECORD_WAIT)
    except TimeoutError:
        return None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)
