"""Protected routes end to end: only callers that prove themselves reach the function."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpServer

from proxy.config.load import parse_config
from proxy.emulator import Emulator
from proxy.serve.server import running
from tests.stack import FIXED_KEYS, KEY, StartHeld, proxy, route
from tests.webhooks import PRESETS, SECRET, WRONG, Preset

GUARD = 30.0  # upper bound against a hung test, never a measurement
TUNNEL_TOKEN = "tunnel-token-7f3a9c"


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The routes' secrets, where the config says to read them."""
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())
    monkeypatch.setenv("TUNNEL_TOKEN", TUNNEL_TOKEN)


def _inbound_of(preset: Preset) -> dict[str, Any]:
    rules = preset.rules
    inbound: dict[str, Any] = {"type": rules.type, "secret_env": "HOOK_SECRET"}
    if rules.type == "hmac":
        inbound |= {"header": rules.header, "encoding": rules.encoding, "prefix": rules.prefix}
    if rules.type in ("stripe", "slack"):
        inbound["tolerance"] = rules.tolerance
    return inbound


def _hooks(upstream: str, preset: Preset) -> dict[str, Any]:
    return route(upstream, path_prefix="/hooks", inbound=_inbound_of(preset))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
async def test_signed_webhook_reaches_the_function_and_forgeries_do_not(
    secrets_in_env: None, emulator: Emulator, client: aiohttp.ClientSession, preset: Preset
) -> None:
    """A delivery signed with the secret verifies at the function; forged, unsigned, tampered,
    malformed, replayed (but for the generic preset) and stale ones stop at the proxy."""
    now = int(time.time())
    good = dict(preset.sign(SECRET, preset.body, now))
    tampered = preset.body.replace(*preset.tamper)
    attempts = {
        "forged": (dict(preset.sign(WRONG, preset.body, now)), preset.body, 403),
        "unsigned": ({}, preset.body, 401),
        "tampered": (good, tampered, 403),
        "malformed": (dict(next(iter(preset.malformed.values()))), preset.body, 403),
    }
    if preset.name in ("stripe", "slack"):
        attempts["stale"] = (dict(preset.sign(SECRET, preset.body, now - 3600)), preset.body, 403)
    if preset.rules.type != "hmac":  # the generic preset has no timestamp and no event id
        attempts["replayed"] = (good, preset.body, 403)
    async with proxy(_hooks(emulator.cloudfront_url, preset)) as running_proxy:
        url = f"{running_proxy.url}/hooks/event"
        async with client.post(url, data=preset.body, headers=good) as response:
            echoed = await response.json()
        statuses = {}
        for name, (headers, body, _) in attempts.items():
            async with client.post(url, data=body, headers=headers) as refused:
                statuses[name] = refused.status
                assert (await refused.json())["route"] == "r"

    assert response.status == 200
    assert echoed["verified"] is True
    assert len(emulator.requests) == 1  # only the genuine delivery got through
    assert statuses == {name: expected for name, (_, _, expected) in attempts.items()}


async def test_webhook_the_function_refused_can_be_redelivered(
    secrets_in_env: None, aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """A GitHub delivery that got a 5xx is not remembered: its redelivery reaches the function."""
    statuses = iter([502, 200])
    seen: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        seen.append(request.headers["X-GitHub-Delivery"])
        return web.Response(status=next(statuses))

    app = web.Application()
    app.router.add_post("/{tail:.*}", flaky)
    server = await aiohttp_server(app)
    github = next(p for p in PRESETS if p.name == "github")
    headers = dict(github.sign(SECRET, github.body, int(time.time())))
    headers["X-GitHub-Delivery"] = "a1b2c3d4-0000-11ef-8000-000000000001"
    routes = _hooks(str(server.make_url("")), github) | {"mode": "none"}
    async with proxy(routes) as running_proxy:
        answers = []
        for _ in range(3):
            async with client.post(
                f"{running_proxy.url}/hooks/push", data=github.body, headers=headers
            ) as response:
                answers.append(response.status)
    assert answers == [502, 200, 403]  # failed, redelivered, then a replay of a taken one
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("inbound", "good", "bad"),
    [
        pytest.param(
            {"type": "bearer", "secret_env": "TUNNEL_TOKEN"},
            {"Authorization": f"Bearer {TUNNEL_TOKEN}"},
            {"Authorization": "Bearer guessed"},
            id="bearer",
        ),
        pytest.param(
            {"type": "bearer", "header": "X-Api-Key", "secret_env": "TUNNEL_TOKEN"},
            {"X-Api-Key": TUNNEL_TOKEN},
            {"X-Api-Key": "guessed"},
            id="api-key",
        ),
        pytest.param(
            {"type": "basic", "username": "ci", "secret_env": "TUNNEL_TOKEN"},
            {"Authorization": "Basic " + base64.b64encode(f"ci:{TUNNEL_TOKEN}".encode()).decode()},
            {"Authorization": "Basic " + base64.b64encode(b"ci:guessed").decode()},
            id="basic",
        ),
    ],
)
async def test_credential_header_is_checked_then_removed(
    secrets_in_env: None,
    aiohttp_server: AiohttpServer,
    client: aiohttp.ClientSession,
    inbound: dict[str, Any],
    good: dict[str, str],
    bad: dict[str, str],
) -> None:
    """The tunnel's credential lets a request through and is not forwarded; a wrong one is 403."""
    seen: list[dict[str, str]] = []

    async def upstream(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream)
    server = await aiohttp_server(app)
    routes = route(str(server.make_url("")), mode="none", inbound=inbound)
    async with proxy(routes) as running_proxy:
        async with client.get(f"{running_proxy.url}/x", headers=good) as accepted:
            assert accepted.status == 200
        async with client.get(f"{running_proxy.url}/x", headers=bad) as refused:
            assert refused.status == 403
        async with client.get(f"{running_proxy.url}/x") as missing:
            assert missing.status == 401
            assert missing.headers["WWW-Authenticate"].startswith(("Bearer", "Basic"))

    assert len(seen) == 1
    assert not {name.lower() for name in seen[0]} & {name.lower() for name in good}


@pytest.mark.parametrize(
    ("inbound", "forwarded_for", "status"),
    [
        ({"allow_ips": ["10.0.0.0/8"]}, None, 403),
        ({"allow_ips": ["127.0.0.0/8"]}, None, 200),
        ({"allow_ips": ["10.0.0.0/8"]}, "10.1.2.3", 403),  # spoofed: 127.0.0.1 is not trusted
        ({"allow_ips": ["10.0.0.0/8"], "trusted_proxies": ["127.0.0.1"]}, "10.1.2.3", 200),
        ({"allow_ips": ["10.0.0.0/8"], "trusted_proxies": ["127.0.0.1"]}, "192.0.2.9", 403),
        (
            {"allow_ips": ["10.0.0.0/8"], "trusted_proxies": ["127.0.0.1"]},
            "10.1.2.3, 192.0.2.9",  # the client is the right-most untrusted hop
            403,
        ),
    ],
    ids=["outside", "inside", "spoofed", "via-tunnel", "via-tunnel-outside", "prepended"],
)
async def test_address_allowlist(
    emulator: Emulator,
    client: aiohttp.ClientSession,
    inbound: dict[str, Any],
    forwarded_for: str | None,
    status: int,
) -> None:
    """The peer address counts, or X-Forwarded-For when the peer is a trusted proxy."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with (
        proxy(route(emulator.cloudfront_url, inbound=inbound)) as running_proxy,
        client.get(f"{running_proxy.url}/x", headers=headers) as response,
    ):
        assert response.status == status
    assert len(emulator.requests) == (1 if status == 200 else 0)


async def test_rate_limit_answers_429_with_retry_after(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Past the burst, requests get 429 and a Retry-After, and never reach the function."""
    routes = route(emulator.cloudfront_url, rate_limit={"rate": "1/m", "burst": 2})
    async with proxy(routes) as running_proxy:
        statuses = []
        for _ in range(4):
            async with client.get(f"{running_proxy.url}/x") as response:
                statuses.append(response.status)
                retry_after = response.headers.get("Retry-After")
    assert statuses == [200, 200, 429, 429]
    assert retry_after is not None
    assert 1 <= int(retry_after) <= 60
    assert len(emulator.requests) == 2


async def test_max_concurrent_answers_503_while_full(
    held_upstream: StartHeld, client: aiohttp.ClientSession
) -> None:
    """With max_concurrent 1, a second request while one is in flight gets 503 route_busy."""
    upstream = await held_upstream("done")
    routes = route(upstream.url, mode="none", max_concurrent=1)
    async with proxy(routes) as running_proxy:
        first = asyncio.create_task(client.get(f"{running_proxy.url}/slow"))
        await asyncio.wait_for(upstream.entered.wait(), GUARD)
        async with client.get(f"{running_proxy.url}/other") as busy:
            body = await busy.json()
        upstream.release.set()
        async with await first as done:
            assert done.status == 200
        async with client.get(f"{running_proxy.url}/again") as after:
            assert after.status == 200
    assert busy.status == 503
    assert body["error"] == "route_busy"


async def test_slow_loris_connection_is_closed() -> None:
    """A client that never finishes its request headers is disconnected by the proxy."""
    document = {
        "listen": "127.0.0.1:0",
        "client_timeouts": {"headers": "300ms"},
        "routes": [route("http://127.0.0.1:9")],
    }
    async with running(parse_config(document), credential_overrides=FIXED_KEYS) as running_proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", running_proxy.port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: a")
            await writer.drain()
            # The request is never completed; the proxy ends the connection (EOF), we do not.
            rest = await asyncio.wait_for(reader.read(), GUARD)
        finally:
            writer.close()
    assert rest == b""


async def test_public_listen_with_allow_unauthenticated_warns_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """allow_unauthenticated starts on a public address, with a warning naming the routes."""
    document = {
        "listen": "0.0.0.0:0",
        "allow_unauthenticated": True,
        "routes": [route("http://127.0.0.1:9", name="open")],
    }
    with caplog.at_level(logging.WARNING, logger="signing_proxy"):
        async with running(parse_config(document), credential_overrides=FIXED_KEYS):
            pass
    assert "WITHOUT INBOUND AUTHENTICATION on route(s) open" in caplog.text


_methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"])
_targets = st.text(alphabet="/abc%2Fhooks.?=&#", min_size=1, max_size=20).map(
    lambda text: "/hooks/" + text
)
_names = st.sampled_from(
    ["X-Hub-Signature-256", "Stripe-Signature", "Authorization", "X-Forwarded-For", "X-Any"]
)
_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=_methods,
    target=_targets,
    headers=st.lists(st.tuples(_names, _values), max_size=4),
    body=st.binary(max_size=300),
)
async def test_hostile_requests_never_reach_a_protected_route(
    secrets_in_env: None,
    emulator: Emulator,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    """Random methods, targets, headers and bodies: no 5xx from the proxy, nothing forwarded."""
    github = next(p for p in PRESETS if p.name == "github")
    async with (
        proxy(_hooks(emulator.cloudfront_url, github)) as running_proxy,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GUARD)) as session,
        session.request(
            method,
            f"{running_proxy.url}{target}",
            headers=headers,
            data=body or None,
            skip_auto_headers=("User-Agent",),
        ) as response,
    ):
        await response.read()
    assert response.status < 500
    assert response.status != 200
    assert not emulator.requests


async def test_no_secret_in_any_log_line(
    secrets_in_env: None,
    emulator: Emulator,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full run of good and bad requests logs neither secrets nor signatures nor tokens."""
    github = next(p for p in PRESETS if p.name == "github")
    routes = (
        _hooks(emulator.cloudfront_url, github),
        route(
            emulator.cloudfront_url,
            name="tunnel",
            path_prefix="/tunnel",
            inbound={"type": "bearer", "secret_env": "TUNNEL_TOKEN"},
        ),
    )
    signed = dict(github.sign(SECRET, github.body, int(time.time())))
    forged = dict(github.sign(WRONG, github.body, int(time.time())))
    with caplog.at_level(logging.DEBUG):
        async with proxy(*routes) as running_proxy:
            base = running_proxy.url
            for url, headers in [
                (f"{base}/hooks/a", signed),
                (f"{base}/hooks/a", forged),
                (f"{base}/tunnel/a", {"Authorization": f"Bearer {TUNNEL_TOKEN}"}),
                (f"{base}/tunnel/a?token={TUNNEL_TOKEN}", {"Authorization": "Bearer wrong-one"}),
            ]:
                async with client.post(url, data=github.body, headers=headers) as response:
                    await response.read()
    leaks = [
        SECRET.decode(),
        TUNNEL_TOKEN,
        KEY.secret_access_key,
        signed["X-Hub-Signature-256"],
        forged["X-Hub-Signature-256"],
        "wrong-one",
        "Signature=",  # no Authorization header the proxy made, whatever its signature
    ]
    assert "hooks" in caplog.text  # the run was logged
    for leak in leaks:
        assert leak not in caplog.text
