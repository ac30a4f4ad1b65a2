"""Clock skew: noticed from replies' Date, warned about once, corrected when AWS refuses."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from proxy.serve.clock import SigningClock, refused_for_time
from tests.stack import proxy, route

EXPIRED = (
    "Signature expired: 20261121T101500Z is now earlier than 20261121T102000Z "
    "(20261121T102500Z - 5 min.)"
)


def _http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def test_skew_is_measured_and_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    """A Date ten minutes ahead is a skew of +600 s, logged once however often it is seen."""
    clock = SigningClock()
    local = 1_800_000_000.0
    ahead = _http_date(datetime.fromtimestamp(local + 600, UTC))
    with caplog.at_level(logging.WARNING, logger="signing_proxy.clock"):
        skews = [clock.observe(ahead, local=local) for _ in range(3)]
    assert skews == [600.0, 600.0, 600.0]
    assert caplog.text.count("clock is 600s behind") == 1


@pytest.mark.parametrize("date", [None, "", "yesterday"])
def test_no_usable_date_is_no_skew(date: str | None) -> None:
    """A missing or unreadable Date says nothing about the clock."""
    assert SigningClock().observe(date, local=0.0) is None


def test_small_skew_is_not_worth_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Under a minute off is normal drift: measured, not warned about."""
    clock = SigningClock()
    local = 1_800_000_000.0
    with caplog.at_level(logging.WARNING, logger="signing_proxy.clock"):
        skew = clock.observe(_http_date(datetime.fromtimestamp(local + 30, UTC)), local=local)
    assert skew == 30.0
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("error_type", "message", "refused"),
    [
        ("InvalidSignatureException", EXPIRED, True),
        ("InvalidSignatureException", "Signature not yet current: 20261121T103000Z is...", True),
        ("InvalidSignatureException:http://internal.amazon.com/coral", EXPIRED, True),
        ("InvalidSignatureException", "The request signature we calculated does not match", False),
        ("AccessDeniedException", "Forbidden", False),
        (None, EXPIRED, False),
    ],
)
def test_which_refusals_are_about_time(error_type: str | None, message: str, refused: bool) -> None:
    """Only InvalidSignatureException for an expired or future signature is about the clock."""
    assert refused_for_time(error_type, message) is refused


async def test_expired_signature_is_signed_again_with_the_upstreams_time(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """AWS refuses a signature as expired: the proxy adopts its Date and sends once more."""
    ahead = timedelta(minutes=10)
    seen: list[str] = []

    async def lambda_ahead(request: web.Request) -> web.Response:
        seen.append(request.headers["x-amz-date"])
        now = datetime.now(UTC) + ahead
        signed = datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        headers = {"Date": _http_date(now)}
        if now - signed.replace(tzinfo=UTC) > timedelta(minutes=5):
            headers["x-amzn-ErrorType"] = "InvalidSignatureException"
            return web.json_response({"Message": EXPIRED}, status=403, headers=headers)
        return web.Response(text="accepted", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", lambda_ahead)
    upstream = await aiohttp_server(app)
    async with proxy(route(str(upstream.make_url("")))) as running:
        async with client.get(f"{running.url}/x") as first:
            assert (first.status, await first.text()) == (200, "accepted")
        async with client.get(f"{running.url}/y") as second:
            assert (second.status, await second.text()) == (200, "accepted")
    assert len(seen) == 3  # refused, signed again at the corrected time, then right at once
    corrected = datetime.strptime(seen[1], "%Y%m%dT%H%M%SZ") - datetime.strptime(
        seen[0], "%Y%m%dT%H%M%SZ"
    )
    assert timedelta(minutes=9) < corrected < timedelta(minutes=11)


async def test_a_refusal_not_about_time_is_passed_on(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """A signature mismatch is not retried: the client gets Lambda's 403 as it was."""
    calls = 0

    async def mismatch(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response(
            {"Message": "The request signature we calculated does not match"},
            status=403,
            headers={"x-amzn-ErrorType": "InvalidSignatureException"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", mismatch)
    upstream = await aiohttp_server(app)
    async with (
        proxy(route(str(upstream.make_url("")))) as running,
        client.get(f"{running.url}/x") as response,
    ):
        body = await response.json()
    assert response.status == 403
    assert "does not match" in body["Message"]
    assert calls == 1
