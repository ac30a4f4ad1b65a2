"""Retries: the pure policy with its clock and jitter given, and retries through the proxy."""

from __future__ import annotations

import hashlib
import io
import logging
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from proxy.core.retries import RetryPolicy
from proxy.model import Retries
from tests.stack import proxy, route

DEFAULT = Retries()


def _policy(method: str = "GET", retries: Retries = DEFAULT, jitter: float = 1.0) -> RetryPolicy:
    return RetryPolicy(retries, method, now=0.0, wall_clock=1_700_000_000.0, jitter=lambda: jitter)


@pytest.mark.parametrize(
    ("method", "status", "retried"),
    [
        ("GET", 503, True),
        ("GET", 502, True),
        ("GET", 504, True),
        ("GET", 429, True),
        ("PUT", 503, True),
        ("DELETE", 503, True),
        ("HEAD", 503, True),
        ("GET", 500, False),
        ("GET", 404, False),
        ("GET", 200, False),
        ("POST", 503, False),
        ("PATCH", 503, False),
    ],
)
def test_which_replies_are_retried(method: str, status: int, retried: bool) -> None:
    """Idempotent methods retry 429/502/503/504; POST and PATCH do not unless opted in."""
    wait = _policy(method).after_status(status, None, now=0.0)
    assert (wait is not None) == retried


def test_post_retries_when_the_route_opts_in() -> None:
    """A route that lists POST in retries.methods has its POSTs retried."""
    retries = Retries(methods=frozenset({"POST"}))
    assert _policy("POST", retries).after_status(503, None, now=0.0) is not None


def test_backoff_grows_exponentially_up_to_the_cap_and_attempts_run_out() -> None:
    """Waits double from backoff (full jitter: up to that), capped, until attempts run out."""
    retries = Retries(attempts=5, backoff=0.1, max_backoff=0.3, budget=60)
    policy = _policy(retries=retries)
    waits = [policy.after_status(503, None, now=0.0) for _ in range(5)]
    assert waits == [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3), 0.3, None]


def test_jitter_spreads_the_wait_below_the_ceiling() -> None:
    """Full jitter: the wait is the ceiling times a random fraction."""
    assert _policy(jitter=0.25).after_status(503, None, now=0.0) == pytest.approx(0.025)


def test_budget_bounds_the_total_time() -> None:
    """No retry starts after the budget has been spent."""
    retries = Retries(attempts=10, budget=1.0)
    policy = _policy(retries=retries)
    assert policy.after_status(503, None, now=0.5) is not None
    assert policy.after_status(503, None, now=1.0) is None


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("1", 1.0),
        ("0", 0.1),
        (formatdate(1_700_000_001.0, usegmt=True), 1.0),
        ("not a date", 0.1),
        ("30", None),  # more than max_backoff: the client is better placed to wait
    ],
)
def test_retry_after_is_honoured_within_max_backoff(retry_after: str, wait: float | None) -> None:
    """Retry-After (seconds or an HTTP date) lengthens the wait, but never past max_backoff."""
    found = _policy().after_status(429, retry_after, now=0.0)
    assert found == (pytest.approx(wait) if wait is not None else None)


def test_connect_failures_are_retried_for_every_method() -> None:
    """A connection never made sent nothing, so even a POST may be tried again."""
    assert _policy("POST").after_connect_failure(now=0.0) is not None


async def _flaky(aiohttp_server: AiohttpServer, statuses: list[int]) -> tuple[str, list[Any]]:
    seen: list[Any] = []

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(
            {
                "authorization": request.headers.get("Authorization", ""),
                "sha256": hashlib.sha256(body).hexdigest(),
                "content_sha256": request.headers.get("x-amz-content-sha256"),
            }
        )
        status = statuses[min(len(seen), len(statuses)) - 1]
        return web.Response(status=status, text=f"answer {len(seen)}")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), seen


async def test_503_then_200_is_retried_and_re_signed(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """An idempotent PUT that met a 503 is signed again and re-sent with the same body."""
    upstream, seen = await _flaky(aiohttp_server, [503, 200])
    routes = route(upstream, retries={"backoff": "10ms"})
    async with (
        proxy(routes) as running,
        client.put(f"{running.url}/orders/1", data=io.BytesIO(b"x" * 3_000_000)) as response,
    ):
        text = await response.text()
    assert (response.status, text) == (200, "answer 2")
    assert len(seen) == 2
    assert all(s["authorization"].startswith("AWS4-HMAC-SHA256 ") for s in seen)
    body_hash = hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert [s["sha256"] for s in seen] == [body_hash, body_hash]  # re-sent from the spool
    assert [s["content_sha256"] for s in seen] == [body_hash, body_hash]


async def test_post_is_not_retried_by_default(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """A POST that met a 503 gets the 503: it may have had an effect."""
    upstream, seen = await _flaky(aiohttp_server, [503, 200])
    async with (
        proxy(route(upstream, retries={"backoff": "10ms"})) as running,
        client.post(f"{running.url}/orders", data=b"{}") as response,
    ):
        await response.read()
    assert response.status == 503
    assert len(seen) == 1


async def test_attempts_run_out_and_the_last_reply_is_passed_on(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """After the last attempt the upstream's own reply reaches the client."""
    upstream, seen = await _flaky(aiohttp_server, [503])
    routes = route(upstream, retries={"attempts": 3, "backoff": "10ms"})
    async with proxy(routes) as running, client.get(f"{running.url}/x") as response:
        text = await response.text()
    assert (response.status, text) == (503, "answer 3")
    assert len(seen) == 3


async def test_refused_connection_is_retried_then_502(
    client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection is tried again (any method), then answered 502."""
    routes = route("http://127.0.0.1:9", retries={"attempts": 3, "backoff": "10ms"})
    with caplog.at_level(logging.WARNING, logger="signing_proxy"):
        async with proxy(routes) as running, client.post(f"{running.url}/x") as response:
            body = await response.json()
    assert response.status == 502
    assert body["error"] == "upstream_unreachable"
    assert caplog.text.count("trying again") == 2
