"""Side doors in the request itself, attacked with raw sockets: the Host it names (DNS
rebinding, tunnels), the browser page it comes from, encoded separators in its path, its
method, and X-Forwarded-For. Each test asserts what reached the function, not only the status."""

from __future__ import annotations

import hashlib

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from proxy.emulator import DEFAULT_FUNCTION_HOST, Emulator
from tests.stack import RawReply, proxy, raw_request, route

TOKEN = "tunnel-token-51c2e0"


def raw(
    method: str = "GET",
    target: str = "/orders",
    *,
    host: str | None = "127.0.0.1",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    version: str = "1.1",
) -> bytes:
    """One request's bytes exactly as written, closing the connection after the reply."""
    lines = [f"{method} {target} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_refused(reply: RawReply, emulator: Emulator, *, status: int, error: str) -> None:
    """The proxy answered the JSON error itself, and nothing reached the function."""
    assert reply.status == status, reply.body
    assert reply.json()["error"] == error
    assert reply.header("x-request-id")
    assert list(emulator.requests) == []


def assert_signed_through(reply: RawReply, emulator: Emulator) -> None:
    """The request reached the function once, signed for its host, and verified."""
    assert reply.status == 200, reply.body
    assert reply.json()["verified"] is True
    [seen] = emulator.requests
    assert seen.verdict.ok, seen.verdict.message
    assert dict(seen.headers)["Host"] == DEFAULT_FUNCTION_HOST


# --- Host: DNS rebinding and tunnels -----------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "rebind.attacker.example:8080",
        "rebind.attacker.example",
        "127.0.0.1.nip.io",
        "localhost.attacker.example",
        "abc123.ngrok-free.app",
        "wild-tunnel.trycloudflare.com",
        "[::1",
        "10.0.0.7:8080",
    ],
)
async def test_a_host_that_is_not_served_is_refused_before_routing(
    emulator: Emulator, host: str
) -> None:
    """A rebinding name, a tunnel's name or an address not of this listener gets 421 naming
    the Host and the keys that would allow it; nothing is signed or sent."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(running.port, raw(host=host))
    assert_refused(reply, emulator, status=421, error="host_not_allowed")
    message = reply.json()["message"]
    assert repr(host) in message
    assert "allowed_hosts:" in message
    assert "inbound:" in message


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8080", "LocalHost.", "127.0.0.1", "127.9.8.7:1", "[::1]:8080", None],
    ids=["localhost", "localhost-port", "case-and-dot", "127.0.0.1", "127/8", "ipv6", "none"],
)
async def test_loopback_hosts_are_served(emulator: Emulator, host: str | None) -> None:
    """Loopback names and addresses, any port (and HTTP/1.0 without Host), are signed through."""
    version = "1.0" if host is None else "1.1"
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(running.port, raw(host=host, version=version))
    assert_signed_through(reply, emulator)


@pytest.mark.parametrize(
    "host", ["signing-proxy:8080", "api.svc.cluster.local", "PROXY.INTERNAL", "hooks.tunnel.test"]
)
async def test_hosts_named_by_allowed_hosts_or_a_route_are_served(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """allowed_hosts (exact names and *.suffix) and a route's host: let their Hosts through."""
    monkeypatch.setenv("TUNNEL_TOKEN", TOKEN)
    tunnel = route(
        emulator.cloudfront_url,
        name="tunnel",
        host="hooks.tunnel.test",
        inbound={"type": "bearer", "secret_env": "TUNNEL_TOKEN"},
    )
    allowed = ["signing-proxy", "*.svc.cluster.local", "proxy.internal"]
    async with proxy(tunnel, route(emulator.cloudfront_url), allowed_hosts=allowed) as running:
        headers = (("Authorization", f"Bearer {TOKEN}"),)
        reply = await raw_request(running.port, raw(host=host, headers=headers))
    assert_signed_through(reply, emulator)


@pytest.mark.parametrize(
    ("method", "target", "host", "status"),
    [
        ("GET", "/orders?id=7", "abc123.ngrok-free.app", 404),
        ("GET", "/orders", "ABC123.ngrok-free.app.:443", 404),
        ("POST", "/hooks/githubx", "abc123.ngrok-free.app", 404),
        ("GET", "/hooks/github", "abc123.ngrok-free.app", 405),
        ("PUT", "/hooks/github", "abc123.ngrok-free.app", 405),
    ],
)
async def test_a_tunnel_host_reaches_only_the_routes_that_name_it(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    target: str,
    host: str,
    status: int,
) -> None:
    """A host named by one route's host: (the tunnel's) does not open the catch-all: a path or
    method that route does not take is refused, nothing signed; loopback still reaches it."""
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    hooks = route(
        emulator.cloudfront_url,
        name="github",
        host="abc123.ngrok-free.app",
        path_prefix="/hooks/github",
        methods=["POST"],
        inbound={"type": "github", "secret_env": "HOOK_SECRET"},
    )
    async with proxy(hooks, route(emulator.cloudfront_url, name="orders")) as running:
        reply = await raw_request(running.port, raw(method, target, host=host, body=b"{}"))
        local = await raw_request(running.port, raw("GET", "/orders", host="localhost"))
    assert reply.status == status, reply.body
    assert reply.json()["error"] in ("no_route", "method_not_allowed")
    assert local.status == 200
    assert [seen.target for seen in emulator.requests] == ["/orders"]  # the loopback one


# --- browsers: pages of other origins ----------------------------------------------------------

CROSS_SITE = [
    pytest.param((("Sec-Fetch-Site", "cross-site"),), id="sec-fetch-cross-site"),
    pytest.param((("Sec-Fetch-Site", "same-site"),), id="sec-fetch-same-site"),
    pytest.param((("Origin", "http://evil.example"),), id="foreign-origin"),
    pytest.param((("Origin", "null"),), id="opaque-origin"),
    pytest.param(
        (
            ("Origin", "http://localhost:3000"),
            ("Sec-Fetch-Site", "same-site"),
            ("Sec-Fetch-Mode", "no-cors"),
            ("Content-Type", "text/plain;charset=UTF-8"),
        ),
        id="no-cors-fetch-from-a-local-app",
    ),
    pytest.param(
        (
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "navigate"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ),
        id="form-post",
    ),
]


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_cross_site_browser_requests_are_refused(
    emulator: Emulator, headers: tuple[tuple[str, str], ...]
) -> None:
    """A request a browser sent for another site's page is 403 cross_site and goes nowhere."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(running.port, raw("POST", headers=headers, body=b"x=1"))
    assert_refused(reply, emulator, status=403, error="cross_site")
    assert "allowed_origins" in reply.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param((), id="not-a-browser"),
        pytest.param((("Sec-Fetch-Site", "none"),), id="typed-in-the-address-bar"),
        pytest.param(
            (("Sec-Fetch-Site", "same-origin"), ("Origin", "http://127.0.0.1:{port}")),
            id="same-origin-page",
        ),
    ],
)
async def test_same_origin_and_non_browser_requests_are_served(
    emulator: Emulator, headers: tuple[tuple[str, str], ...]
) -> None:
    """curl, a navigation, and a page served through the proxy itself are signed through."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        filled = tuple((name, value.format(port=running.port)) for name, value in headers)
        host = f"127.0.0.1:{running.port}"
        reply = await raw_request(running.port, raw("POST", host=host, headers=filled, body=b"{}"))
    assert_signed_through(reply, emulator)


async def test_an_origin_in_allowed_origins_may_call_that_route_only(emulator: Emulator) -> None:
    """A local web app listed in a route's allowed_origins gets through on that route; the
    same page is refused on another route."""
    app = route(
        emulator.cloudfront_url,
        name="app",
        path_prefix="/app",
        allowed_origins=["http://LOCALHOST:3000/"],
    )
    headers = (("Origin", "http://localhost:3000"), ("Sec-Fetch-Site", "same-site"))
    async with proxy(app, route(emulator.cloudfront_url)) as running:
        allowed = await raw_request(running.port, raw("POST", "/app/x", headers=headers, body=b"1"))
        other = await raw_request(running.port, raw("POST", "/other", headers=headers, body=b"1"))
    assert allowed.status == 200, allowed.body
    assert other.status == 403
    assert other.json()["route"] == "r"
    assert [seen.target for seen in emulator.requests] == ["/app/x"]


# --- paths: encoded slashes, backslashes and NUL ----------------------------------------------


def _public_and_admin(upstream: str) -> tuple[dict[str, object], dict[str, object]]:
    """A protected /admin route and a public catch-all, as the attack found them."""
    admin = route(
        upstream,
        name="admin",
        path_prefix="/admin",
        inbound={"type": "bearer", "secret_env": "TUNNEL_TOKEN"},
    )
    return admin, route(upstream, name="public")


@pytest.mark.parametrize(
    "target",
    [
        "/admin%2Fusers",
        "/admin%2fusers",
        "/%2Fadmin",
        "/public/..%2Fadmin",
        "/public/..%5Cadmin",
        "/public/..%5cadmin/users",
        "/public/%00admin",
        "/public/file%00.json",
    ],
)
async def test_encoded_separators_are_400_and_never_reach_a_public_route(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """%2F, %5C and %00 in a path are refused, so they cannot smuggle /admin past its check."""
    monkeypatch.setenv("TUNNEL_TOKEN", TOKEN)
    async with proxy(*_public_and_admin(emulator.cloudfront_url)) as running:
        reply = await raw_request(running.port, raw("GET", target))
    assert_refused(reply, emulator, status=400, error="bad_request")


async def test_a_route_may_let_encoded_slashes_through(emulator: Emulator) -> None:
    """With allow_encoded_slashes, %2F and %5C reach the function as sent, signed; %00 never."""
    files = route(emulator.cloudfront_url, allow_encoded_slashes=True)
    async with proxy(files) as running:
        slashed = await raw_request(running.port, raw("GET", "/files/a%2fb%5Cc"))
        nul = await raw_request(running.port, raw("GET", "/files/a%00b"))
    assert slashed.status == 200, slashed.body
    assert slashed.json()["target"] == "/files/a%2Fb%5Cc"
    assert nul.status == 400
    [seen] = emulator.requests
    assert seen.verdict.ok, seen.verdict.message


# --- methods -----------------------------------------------------------------------------------


async def test_trace_is_never_forwarded(emulator: Emulator) -> None:
    """TRACE is 405 on a route that takes every method: its reply would echo the signature."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(running.port, raw("TRACE", "/orders"))
    assert_refused(reply, emulator, status=405, error="method_not_allowed")
    assert "TRACE" not in (reply.header("allow") or "")
    assert "RFC 9110" in reply.json()["message"]


async def test_other_methods_need_a_route_that_names_them(aiohttp_server: AiohttpServer) -> None:
    """PROPFIND is 405 on a route without methods:, and forwarded by one that lists it."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    upstream = str((await aiohttp_server(app)).make_url(""))
    dav = route(upstream, name="dav", path_prefix="/dav", mode="none", methods=["PROPFIND", "GET"])
    async with proxy(dav, route(upstream, mode="none")) as running:
        refused = await raw_request(running.port, raw("PROPFIND", "/orders"))
        listed = await raw_request(running.port, raw("PROPFIND", "/dav/x"))
    assert refused.status == 405
    assert set((refused.header("allow") or "").split(", ")) >= {"GET", "POST"}
    assert listed.status == 200
    assert seen == ["PROPFIND /dav/x"]


# --- X-Forwarded-For ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        ((), "127.0.0.1"),
        ((("X-Forwarded-For", "203.0.113.9"),), "203.0.113.9, 127.0.0.1"),
        (
            (("X-Forwarded-For", "198.51.100.1, 203.0.113.9"), ("X-Forwarded-For", "192.0.2.4")),
            "198.51.100.1, 203.0.113.9, 192.0.2.4, 127.0.0.1",
        ),
    ],
    ids=["none", "one", "several"],
)
async def test_x_forwarded_for_is_appended_with_the_client_address(
    aiohttp_server: AiohttpServer, sent: tuple[tuple[str, str], ...], forwarded: str
) -> None:
    """The upstream gets the client's X-Forwarded-For with the peer's address appended, once."""
    seen: list[list[str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.getall("X-Forwarded-For", []))
        return web.Response(text=hashlib.sha256(b"").hexdigest())

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    upstream = str((await aiohttp_server(app)).make_url(""))
    async with proxy(route(upstream, mode="none")) as running:
        reply = await raw_request(running.port, raw("GET", "/x", headers=sent))
    assert reply.status == 200
    assert seen == [[forwarded]]
