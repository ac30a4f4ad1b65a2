"""Side doors around the checks, attacked with raw sockets: webhook replays under a new id,
strangers spending a route's limits, a reload that drops auth, the admin listener, and
third-party text in replies. Each test asserts what reached the function, not only the status."""

from __future__ import annotations

import asyncio
import logging
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.config.load import parse_config
from proxy.emulator import Emulator
from proxy.errors import ConfigError
from proxy.model import Address
from proxy.serve.server import running
from tests.e2e.test_side_doors import TOKEN, raw
from tests.inspector.test_store import inspected
from tests.stack import FIXED_KEYS, proxy, raw_request, route
from tests.webhooks import GITHUB_PUSH, SECRET, WRONG, github

GUARD = 30.0  # upper bound against a hung test, never a measurement


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The routes' secrets, where the configs below read them."""
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())
    monkeypatch.setenv("TUNNEL_TOKEN", TOKEN)


def _hooks(upstream: str, **fields: Any) -> dict[str, Any]:
    return route(upstream, inbound={"type": "github", "secret_env": "HOOK_SECRET"}, **fields)


def _bearer(upstream: str, **fields: Any) -> dict[str, Any]:
    return route(upstream, inbound={"type": "bearer", "secret_env": "TUNNEL_TOKEN"}, **fields)


def _delivery(delivery_id: str | None, *, secret: bytes = SECRET) -> tuple[tuple[str, str], ...]:
    headers = [*github(secret, GITHUB_PUSH, 0), ("Content-Type", "application/json")]
    if delivery_id is not None:
        headers.append(("X-GitHub-Delivery", delivery_id))
    return tuple(headers)


# --- replays -----------------------------------------------------------------------------------


async def test_a_captured_delivery_is_refused_under_a_new_id_or_none(
    secrets_in_env: None, emulator: Emulator
) -> None:
    """A GitHub delivery the function took is a replay whatever X-GitHub-Delivery says now."""
    async with proxy(_hooks(emulator.cloudfront_url)) as running_proxy:
        port = running_proxy.port
        first = await raw_request(port, raw("POST", body=GITHUB_PUSH, headers=_delivery("d-1")))
        replays = [
            await raw_request(port, raw("POST", body=GITHUB_PUSH, headers=_delivery(delivery)))
            for delivery in ("d-2", "d-1", None, "")
        ]
    assert first.status == 200, first.body
    assert [reply.status for reply in replays] == [403, 403, 403, 403]
    assert all("replayed" in reply.json()["message"] for reply in replays)
    assert len(emulator.requests) == 1


async def test_a_reload_that_changes_the_route_keeps_its_replay_memory(
    secrets_in_env: None, emulator: Emulator
) -> None:
    """A reload that changes a webhook route's settings (max_body here) does not forget the
    deliveries it took: the captured one is still a replay."""
    first = {"listen": "127.0.0.1:0", "routes": [_hooks(emulator.cloudfront_url)]}
    changed = {
        "listen": "127.0.0.1:0",
        "routes": [_hooks(emulator.cloudfront_url, max_body="5MiB")],
    }
    async with running(
        parse_config(first), load=lambda: parse_config(changed), credential_overrides=FIXED_KEYS
    ) as running_proxy:
        port = running_proxy.port
        taken = await raw_request(port, raw("POST", body=GITHUB_PUSH, headers=_delivery("d-1")))
        await running_proxy.reload()
        replay = await raw_request(port, raw("POST", body=GITHUB_PUSH, headers=_delivery("d-2")))
    assert taken.status == 200, taken.body
    assert replay.status == 403
    assert len(emulator.requests) == 1


# --- limits are not spent by strangers ---------------------------------------------------------


async def test_wrong_tokens_do_not_spend_the_rate_limit(
    secrets_in_env: None, emulator: Emulator
) -> None:
    """Missing and wrong bearer tokens are refused before a rate-limit token is taken."""
    limited = _bearer(emulator.cloudfront_url, rate_limit={"rate": "1/h", "burst": 1})
    async with proxy(limited) as running_proxy:
        port = running_proxy.port
        strangers = [await raw_request(port, raw(headers=(("Authorization", "Bearer nope"),)))]
        strangers += [await raw_request(port, raw()) for _ in range(4)]
        right = await raw_request(port, raw(headers=(("Authorization", f"Bearer {TOKEN}"),)))
        again = await raw_request(port, raw(headers=(("Authorization", f"Bearer {TOKEN}"),)))
    assert [reply.status for reply in strangers] == [403, 401, 401, 401, 401]
    assert right.status == 200, right.body
    assert again.status == 429  # the limit itself still holds
    assert len(emulator.requests) == 1


async def _trickle_forged_delivery(port: int) -> asyncio.StreamWriter:
    """Open a connection, send a well-formed but forged delivery's head and a first byte."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = raw("POST", body=b"", headers=_delivery("forged", secret=WRONG))
    head = head.replace(b"Content-Length: 0", f"Content-Length: {len(GITHUB_PUSH)}".encode())
    writer.write(head + GITHUB_PUSH[:1])
    await writer.drain()
    return writer


async def test_trickling_forged_webhooks_do_not_hold_max_concurrent(
    secrets_in_env: None, emulator: Emulator
) -> None:
    """With max_concurrent: 2, two forged deliveries still sending their bodies leave both
    slots free: a slot is taken only once a signature verified."""
    async with proxy(_hooks(emulator.cloudfront_url, max_concurrent=2)) as running_proxy:
        port = running_proxy.port
        tricklers = [await _trickle_forged_delivery(port) for _ in range(2)]
        try:
            genuine = await raw_request(
                port, raw("POST", body=GITHUB_PUSH, headers=_delivery("d-1"))
            )
        finally:
            for writer in tricklers:
                writer.close()
    assert genuine.status == 200, genuine.body
    assert len(emulator.requests) == 1


async def test_a_body_has_a_total_time_bound(emulator: Emulator) -> None:
    """A body trickled a byte at a time, never idle long, is cut at client_timeouts.body_total."""
    timeouts = {"body": "60s", "body_total": "1s"}
    async with proxy(route(emulator.cloudfront_url), client_timeouts=timeouts) as running_proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", running_proxy.port)
        head = raw("POST", body=b"").replace(b"Content-Length: 0", b"Content-Length: 1000")
        writer.write(head)
        async with asyncio.timeout(GUARD):
            reply = asyncio.ensure_future(reader.read())
            while not reply.done():  # one byte every 0.2 s: 200 s to finish, were it let
                writer.write(b"x")
                await asyncio.wait([reply], timeout=0.2)
        writer.close()
    head_bytes, _, body = reply.result().partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 408 ")
    assert b"body_total" in body
    assert not emulator.requests


# --- a reload never weakens exposure -----------------------------------------------------------


async def test_a_reload_that_drops_auth_on_an_exposed_listener_is_refused(
    secrets_in_env: None, emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Bound to 0.0.0.0 with bearer auth, a reload whose file drops inbound: (and says
    listen: 127.0.0.1, which is not rebound) is refused by SIGHUP's path and POST /reload."""
    exposed = {"listen": "0.0.0.0:0", "routes": [_bearer(emulator.cloudfront_url)]}
    dropped = {"listen": "127.0.0.1:0", "routes": [route(emulator.cloudfront_url)]}
    async with running(
        parse_config(exposed),
        admin=Address("127.0.0.1", 0),
        load=lambda: parse_config(dropped),
        credential_overrides=FIXED_KEYS,
    ) as running_proxy:
        with pytest.raises(
            ConfigError,
            match=r"beyond loopback \(listen: changes only at a restart\).*route\(s\) r",
        ):
            await running_proxy.reload()
        async with client.post(f"{running_proxy.admin_url}/reload") as reloaded:
            answer = await reloaded.json()
        reply = await raw_request(running_proxy.port, raw())
    assert reloaded.status == 400
    assert answer["reloaded"] is False
    assert "0.0.0.0" in answer["error"]  # noqa: S104 - a message, not a bind
    assert reply.status == 401
    assert not emulator.requests


async def test_a_listen_flag_beyond_loopback_is_checked_at_start(emulator: Emulator) -> None:
    """A socket bound beyond loopback by --listen gets the same check as listen: in the file."""
    config = parse_config({"listen": "127.0.0.1:0", "routes": [route(emulator.cloudfront_url)]})
    anywhere = Address("0.0.0.0", 0)  # noqa: S104 - on purpose; traffic stays on loopback
    with pytest.raises(ConfigError, match="beyond loopback"):
        async with running(config, listen=anywhere, credential_overrides=FIXED_KEYS):
            pass


# --- the admin listener ------------------------------------------------------------------------


class _Reloads:
    """A config loader that counts how often a reload read the config."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.count = 0

    def __call__(self) -> Any:
        self.count += 1
        return parse_config(self.document)


async def _admin_post(port: int, headers: tuple[tuple[str, str], ...], host: str) -> Any:
    return await raw_request(port, raw("POST", "/reload", host=host, headers=headers))


@pytest.mark.parametrize(
    ("headers", "host", "status"),
    [
        ((("Origin", "http://evil.example"),), "127.0.0.1", 403),
        ((("Origin", "http://127.0.0.1:{port}"),), "127.0.0.1", 403),
        ((("Sec-Fetch-Site", "cross-site"),), "127.0.0.1", 403),
        ((("Sec-Fetch-Site", "same-site"), ("Content-Type", "text/plain")), "localhost", 403),
        ((), "rebind.attacker.example:{port}", 421),
    ],
    ids=["foreign-origin", "own-origin", "cross-site", "same-site", "rebinding-host"],
)
async def test_admin_reload_is_refused_from_browsers_and_foreign_hosts(
    emulator: Emulator, headers: tuple[tuple[str, str], ...], host: str, status: int
) -> None:
    """POST /reload from a page (Origin or Sec-Fetch-Site) or to a rebinding name reloads
    nothing; the same POST from curl does."""
    document = {"listen": "127.0.0.1:0", "routes": [route(emulator.cloudfront_url)]}
    reloads = _Reloads(document)
    async with running(
        parse_config(document),
        admin=Address("127.0.0.1", 0),
        load=reloads,
        credential_overrides=FIXED_KEYS,
    ) as running_proxy:
        assert running_proxy.admin_url is not None
        port = int(running_proxy.admin_url.rsplit(":", 1)[1])
        filled = tuple((name, value.format(port=port)) for name, value in headers)
        refused = await _admin_post(port, filled, host.format(port=port))
        count_after_refusal = reloads.count
        from_curl = await _admin_post(port, (), "127.0.0.1")
    assert refused.status == status, refused.body
    assert count_after_refusal == 0
    assert from_curl.status == 200
    assert reloads.count == 1


async def test_admin_beyond_loopback_reloads_only_with_its_token(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On 0.0.0.0 the admin serves probes by IP address, refuses rebinding names, and
    reloads over HTTP only with reload_token_env's token."""
    monkeypatch.setenv("RELOAD_TOKEN", "reload-token-9d1e")
    document = {"listen": "127.0.0.1:0", "routes": [route(emulator.cloudfront_url)]}
    with_token = {**document, "reload_token_env": "RELOAD_TOKEN"}
    reloads = _Reloads(with_token)
    statuses: dict[str, int] = {}
    async with running(
        parse_config(document),
        admin=Address("0.0.0.0", 0),  # noqa: S104 - on purpose; traffic stays on loopback
        load=reloads,
        credential_overrides=FIXED_KEYS,
    ) as running_proxy:
        assert running_proxy.admin_url is not None
        port = int(running_proxy.admin_url.rsplit(":", 1)[1])
        probe = await raw_request(port, raw("GET", "/healthz", host=f"10.1.2.3:{port}"))
        rebound = await raw_request(port, raw("GET", "/healthz", host=f"rebind.example:{port}"))
        statuses["no token configured"] = (await _admin_post(port, (), "127.0.0.1")).status
        await running_proxy.reload()  # SIGHUP's path: now the config sets a token
        loaded = reloads.count
        for name, value in [
            ("none", None),
            ("wrong", "Bearer nope"),
            ("right", "Bearer reload-token-9d1e"),
        ]:
            headers = () if value is None else (("Authorization", value),)
            statuses[name] = (await _admin_post(port, headers, "127.0.0.1")).status
    assert probe.status == 200
    assert rebound.status == 421
    assert statuses == {"no token configured": 403, "none": 401, "wrong": 403, "right": 200}
    assert reloads.count == loaded + 1


# --- no third-party text in replies ------------------------------------------------------------


def _failing_credential_process(home: Path, tmp_path: Path) -> None:
    """A profile whose credential_process fails, printing a token as such tools do."""
    script = tmp_path / "broken-process.py"
    script.write_text(
        "import sys\n"
        "print('login failed: token=tok-3f9a-never-in-a-reply', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (home / ".aws" / "config").write_text(
        f"[profile broken]\ncredential_process = {sys.executable} {script}\n"
    )


async def test_credential_source_output_stays_in_the_log(
    isolated_aws: Path, tmp_path: Path, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 for unusable credentials and /readyz name the set and its source, never what the
    credential_process printed; the log has it."""
    _failing_credential_process(isolated_aws, tmp_path)
    document = {
        "listen": "127.0.0.1:0",
        "credentials": {"broken": {"profile": "broken"}},
        "routes": [route(emulator.cloudfront_url, credentials="broken")],
    }
    with caplog.at_level(logging.INFO, logger="signing_proxy"):
        async with running(parse_config(document), admin=Address("127.0.0.1", 0)) as running_proxy:
            assert running_proxy.admin_url is not None
            admin_port = int(running_proxy.admin_url.rsplit(":", 1)[1])
            reply = await raw_request(running_proxy.port, raw())
            ready = await raw_request(admin_port, raw("GET", "/readyz"))
    assert reply.status == 503
    assert "'broken'" in reply.json()["message"]
    assert "profile broken" in reply.json()["message"]
    for answer in (reply, ready):
        assert b"tok-3f9a" not in answer.body
    assert ready.status == 503
    assert "tok-3f9a-never-in-a-reply" in caplog.text
    assert not emulator.requests


async def test_inspector_masks_every_header_a_route_reads_a_secret_from(
    secrets_in_env: None, emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A custom bearer header and a custom HMAC header are masked, whatever they are called."""
    tunnel = _bearer(emulator.cloudfront_url, name="tunnel", path_prefix="/t")
    tunnel["inbound"]["header"] = "X-Tunnel-Pass"
    mac = route(
        emulator.cloudfront_url,
        name="mac",
        path_prefix="/m",
        inbound={"type": "hmac", "secret_env": "HOOK_SECRET", "header": "X-Hook-Mac"},
    )
    async with inspected(tunnel, mac) as running_proxy:
        for path, name, value in [("/t", "X-Tunnel-Pass", TOKEN), ("/m", "X-Hook-Mac", "ab" * 32)]:
            async with client.post(f"{running_proxy.url}{path}", headers={name: value}, data=b"x"):
                pass
        async with client.get(f"{running_proxy.admin_url}/inspect/api/exchanges/1") as first:
            shown = [await first.text()]
        async with client.get(f"{running_proxy.admin_url}/inspect/api/exchanges/2") as second:
            shown.append(await second.text())
    assert TOKEN not in shown[0]
    assert "[masked, " in shown[0]
    assert "ab" * 32 not in shown[1]
    assert "[masked, 64 chars]" in shown[1]
