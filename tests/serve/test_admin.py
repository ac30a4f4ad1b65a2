"""The admin listener and what it reports: health, readiness, metrics, reload; request ids."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from proxy.config.load import load_config, parse_config
from proxy.core.credentials import Credentials
from proxy.emulator import Emulator
from proxy.serve.server import Running, running
from tests.stack import FIXED_KEYS, StartHeld, route

GUARD = 30.0


@asynccontextmanager
async def _admin_proxy(
    *routes: dict[str, Any], overrides: Any = FIXED_KEYS, **top: Any
) -> AsyncIterator[Running]:
    document = {"listen": "127.0.0.1:0", "admin": "127.0.0.1:0", "routes": list(routes), **top}
    async with running(parse_config(document), credential_overrides=overrides) as started:
        assert started.admin_url is not None
        yield started


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0.0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.partition("}")[0]))
        if line.split("{")[0].split(" ")[0] == name and all(
            found.get(k) == v for k, v in labels.items()
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_health_and_readiness(emulator: Emulator, client: aiohttp.ClientSession) -> None:
    """/healthz says the process is up; /readyz that it may take traffic."""
    async with _admin_proxy(route(emulator.cloudfront_url)) as proxy:
        async with client.get(f"{proxy.admin_url}/healthz") as health:
            assert (health.status, await health.json()) == (200, {"status": "ok"})
        async with client.get(f"{proxy.admin_url}/readyz") as ready:
            assert (ready.status, await ready.json()) == (200, {"ready": True})


async def test_not_ready_while_credentials_cannot_resolve(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A credential set that cannot resolve makes /readyz 503, naming it."""
    routes = route(emulator.cloudfront_url, credentials="dev")
    async with (
        _admin_proxy(routes, credentials={"dev": {"profile": "missing"}}, overrides=None) as proxy,
        client.get(f"{proxy.admin_url}/readyz") as ready,
    ):
        body = await ready.json()
    assert ready.status == 503
    assert body["ready"] is False
    assert any("'dev'" in reason for reason in body["reasons"])


async def test_not_ready_while_draining(
    held_upstream: StartHeld, client: aiohttp.ClientSession
) -> None:
    """During the drain /readyz answers 503 while a request in flight still completes."""
    upstream = await held_upstream("finished")
    readiness: list[int] = []

    async def drain_and_probe(proxy: Running) -> None:
        await asyncio.wait_for(upstream.entered.wait(), GUARD)
        proxy.state.draining = True  # what leaving running() sets first
        async with client.get(f"{proxy.admin_url}/readyz") as ready:
            readiness.append(ready.status)
        upstream.release.set()

    async with _admin_proxy(route(upstream.url, mode="none")) as proxy:
        probe = asyncio.create_task(drain_and_probe(proxy))
        async with client.get(f"{proxy.url}/slow") as response:
            text = await response.text()
        await probe
    assert readiness == [503]
    assert (response.status, text) == (200, "finished")


async def test_metrics_after_known_traffic(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Requests, bytes, upstream latency, signing failures and refreshes show up in /metrics."""
    routes = (
        route(emulator.cloudfront_url, name="orders", path_prefix="/orders"),
        route(emulator.cloudfront_url, name="broken", path_prefix="/broken", credentials="dev"),
    )
    async with _admin_proxy(*routes, credentials={"dev": {"profile": "missing"}}) as proxy:
        for _ in range(3):
            async with client.post(f"{proxy.url}/orders/1", data=b"12345") as response:
                await response.read()
        async with client.get(f"{proxy.url}/broken/1") as refused:
            assert refused.status == 503
        async with client.get(f"{proxy.url}/nowhere") as missing:
            assert missing.status == 404
        async with client.get(f"{proxy.admin_url}/metrics") as scraped:
            text = await scraped.text()
            content_type = scraped.headers["Content-Type"]

    assert content_type.startswith("text/plain")
    requests = "signing_proxy_requests_total"
    assert _sample(text, requests, route="orders", method="POST", status="2xx") == 3
    assert _sample(text, requests, route="broken", method="GET", status="5xx") == 1
    assert _sample(text, requests, route="", method="GET", status="4xx") == 1
    assert _sample(text, "signing_proxy_request_body_bytes_total", route="orders") == 15
    assert _sample(text, "signing_proxy_response_body_bytes_total", route="orders") > 0
    assert _sample(text, "signing_proxy_upstream_latency_seconds_count", route="orders") == 3
    assert _sample(text, "signing_proxy_in_flight_requests", route="orders") == 0
    failures = "signing_proxy_signing_failures_total"
    assert _sample(text, failures, route="broken", reason="no_credentials") == 1
    refreshes = "signing_proxy_credential_refreshes_total"
    assert _sample(text, refreshes, credentials="default", outcome="ok") >= 1
    assert _sample(text, refreshes, credentials="dev", outcome="failed") >= 1


async def test_expiry_gauge_counts_down(client: aiohttp.ClientSession) -> None:
    """Credentials with an expiry show the seconds left in a gauge."""

    def expiring() -> Credentials:
        return Credentials("ASIAEXPIRY0000000001", "s", "t", expires_at=time.time() + 3600)

    async with (
        _admin_proxy(route("http://127.0.0.1:9"), overrides={"default": expiring}) as proxy,
        client.get(f"{proxy.admin_url}/metrics") as scraped,
    ):
        text = await scraped.text()
    seconds = _sample(text, "signing_proxy_credentials_expiry_seconds", credentials="default")
    assert 3500 < seconds <= 3600


async def test_request_id_is_kept_forwarded_and_returned(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A client's X-Request-Id goes upstream and comes back; without one, one is made up."""
    async with _admin_proxy(route(emulator.cloudfront_url)) as proxy:
        async with client.get(f"{proxy.url}/a", headers={"X-Request-Id": "req-42"}) as given:
            echoed = await given.json()
        async with client.get(f"{proxy.url}/b") as made:
            made_echo = await made.json()
        async with client.get(f"{proxy.url}/c", headers={"X-Request-Id": "bad id\t!"}) as bad:
            await bad.read()
    assert given.headers["X-Request-Id"] == "req-42"
    assert echoed["headers"]["x-request-id"] == "req-42"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-Id"])
    assert made_echo["headers"]["x-request-id"] == made.headers["X-Request-Id"]
    assert bad.headers["X-Request-Id"] != "bad id\t!"


async def test_access_log_has_one_structured_line_per_request(
    emulator: Emulator, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request logs one line with its fields; the query's values are never in it."""
    with caplog.at_level(logging.INFO, logger="signing_proxy.access"):
        async with (
            _admin_proxy(route(emulator.cloudfront_url, name="orders")) as proxy,
            client.post(f"{proxy.url}/orders/7?token=query-secret", data=b"abc") as response,
        ):
            await response.read()
    lines = [r for r in caplog.records if r.name == "signing_proxy.access"]
    assert len(lines) == 1
    fields = vars(lines[0])
    assert fields["route"] == "orders"
    assert fields["method"] == "POST"
    assert fields["path"] == "/orders/7"
    assert (fields["status"], fields["upstream_status"]) == (200, 200)
    assert fields["bytes_in"] == 3
    assert fields["bytes_out"] > 0
    assert fields["amzn_request_id"]
    assert fields["request_id"] == response.headers["X-Request-Id"]
    assert "query-secret" not in caplog.text


async def test_reload_swaps_routes_and_refuses_an_invalid_config(
    tmp_path: Path, emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """POST /reload takes a valid file's new routes; an invalid file is refused, old kept."""
    path = tmp_path / "config.yaml"
    document: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "admin": "127.0.0.1:0",
        "routes": [route(emulator.cloudfront_url, name="a", path_prefix="/a")],
    }
    path.write_text(yaml.safe_dump(document))
    async with running(
        load_config(path), load=lambda: load_config(path), credential_overrides=FIXED_KEYS
    ) as proxy:
        async with client.get(f"{proxy.url}/b/1") as before:
            assert before.status == 404
        document["routes"].append(route(emulator.cloudfront_url, name="b", path_prefix="/b"))
        path.write_text(yaml.safe_dump(document))
        async with client.post(f"{proxy.admin_url}/reload") as reloaded:
            assert (reloaded.status, await reloaded.json()) == (200, {"reloaded": True})
        async with client.get(f"{proxy.url}/b/1") as after:
            assert after.status == 200
        path.write_text("routes: [{name: b, upstrem: oops}]\n")
        async with client.post(f"{proxy.admin_url}/reload") as refused:
            refusal = await refused.json()
        async with client.get(f"{proxy.url}/b/2") as still:
            assert still.status == 200
    assert refused.status == 400
    assert "upstrem" in refusal["error"]


async def test_reload_keeps_in_flight_requests_on_their_generation(
    tmp_path: Path, held_upstream: StartHeld, client: aiohttp.ClientSession
) -> None:
    """A request in flight during a reload finishes normally, on the config it started with."""
    upstream = await held_upstream("old route")
    path = tmp_path / "config.yaml"
    old = {"listen": "127.0.0.1:0", "routes": [route(upstream.url, mode="none")]}
    new = {"listen": "127.0.0.1:0", "routes": [route("http://127.0.0.1:9", mode="none", name="n")]}
    path.write_text(json.dumps(old))
    async with running(load_config(path), load=lambda: load_config(path)) as proxy:
        pending = asyncio.create_task(client.get(f"{proxy.url}/x"))
        await asyncio.wait_for(upstream.entered.wait(), GUARD)
        path.write_text(json.dumps(new))
        await proxy.reload()
        upstream.release.set()
        async with await pending as response:
            assert (response.status, await response.text()) == (200, "old route")
        assert [r.name for r in proxy.state.current.config.routes] == ["n"]
