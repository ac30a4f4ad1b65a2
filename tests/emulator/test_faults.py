"""The emulator's failure modes: a skewed clock in every Date, denied identities, and the 403s
CloudFront answers itself (WAF, geographic restriction, allowed methods)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from proxy.emulator import DENY_ALL, Emulator, Restrictions
from proxy.emulator.judge import DENIED_MESSAGE
from proxy.emulator.restrictions import GEO_BLOCKED, METHOD_NOT_ALLOWED, WAF_BLOCKED
from tests.emulator.test_stack import KEY, KEY_ID, sign, url

OTHER_KEY_ID = "AKIAEMULATOROTHER001"
AHEAD = timedelta(minutes=10)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with a bound, so a broken emulator fails the test instead of hanging."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.mark.parametrize(
    "body", [b"", b"a GET with a body"], ids=["function's reply", "CloudFront's own page"]
)
async def test_replies_are_dated_by_the_emulator_clock(
    client: aiohttp.ClientSession, body: bytes
) -> None:
    """Every reply's Date is the emulator's time, so a client can measure its own skew."""
    async with Emulator(keys={KEY_ID: KEY}, clock=lambda: datetime.now(UTC) + AHEAD) as emulator:
        headers = sign(method="GET", target="/", body=body)
        target = url(emulator.cloudfront_url, "/")
        async with client.get(target, headers=headers, data=body or None) as reply:
            assert reply.status == 403  # the signature expired, or the GET had a body
            date = parsedate_to_datetime(reply.headers["Date"])
    assert abs((date - datetime.now(UTC) - AHEAD).total_seconds()) < 5


@pytest.mark.parametrize("denied", [{KEY_ID}, {DENY_ALL}], ids=["its key id", "everyone"])
async def test_denied_identity_gets_access_denied_for_a_valid_signature(
    client: aiohttp.ClientSession, denied: set[str]
) -> None:
    """A denied identity's correct signature is refused as Lambda words a missing permission."""
    async with Emulator(keys={KEY_ID: KEY}, denied=denied) as emulator:
        target = url(emulator.cloudfront_url, "/orders")
        async with client.get(target, headers=sign(method="GET", target="/orders")) as reply:
            answer = await reply.json()
            assert reply.status == 403
            assert reply.headers["x-amzn-ErrorType"] == "AccessDeniedException"
            assert reply.headers["x-amzn-RequestId"]
    assert answer == {"Message": DENIED_MESSAGE}
    assert emulator.requests[-1].verdict.access_key_id == KEY_ID


async def test_denial_is_read_live_and_spares_others(client: aiohttp.ClientSession) -> None:
    """Keys denied after start are refused from then on; other keys still pass."""
    denied: set[str] = set()
    keys = {KEY_ID: KEY, OTHER_KEY_ID: KEY}
    async with Emulator(keys=keys, denied=denied) as emulator:
        target = url(emulator.cloudfront_url, "/")
        async with client.get(target, headers=sign(method="GET", target="/")) as before:
            assert before.status == 200
        denied.add(KEY_ID)
        async with client.get(target, headers=sign(method="GET", target="/")) as after:
            assert after.status == 403
        other = sign(method="GET", target="/", key_id=OTHER_KEY_ID)
        async with client.get(target, headers=other) as spared:
            assert spared.status == 200


RESTRICTED = [
    pytest.param(
        Restrictions(blocked_paths=("/admin/",)), "GET", "/admin/x", WAF_BLOCKED, id="waf"
    ),
    pytest.param(
        Restrictions(blocked_countries=frozenset({"DE"})), "GET", "/", GEO_BLOCKED, id="geo"
    ),
    pytest.param(
        Restrictions(allowed_methods=frozenset({"GET", "HEAD"})),
        "POST",
        "/",
        METHOD_NOT_ALLOWED,
        id="methods",
    ),
]


@pytest.mark.parametrize(("restrictions", "method", "path", "reason"), RESTRICTED)
async def test_cloudfront_refuses_with_its_own_page(
    client: aiohttp.ClientSession, restrictions: Restrictions, method: str, path: str, reason: str
) -> None:
    """A restricted request gets CloudFront's HTML 403 and reason; the function never sees it."""
    async with Emulator(keys={KEY_ID: KEY}, restrictions=restrictions) as emulator:
        headers = sign(method=method, target=path)
        async with client.request(
            method, url(emulator.cloudfront_url, path), headers=headers
        ) as reply:
            page = await reply.text()
            assert reply.status == 403
            assert "x-amzn-ErrorType" not in reply.headers
            assert reply.headers["X-Cache"] == "Error from cloudfront"
            assert reply.headers["X-Amz-Cf-Id"]
    assert "<H2>The request could not be satisfied.</H2>" in page
    assert reason in page
    assert not emulator.requests


async def test_unrestricted_paths_and_countries_pass(client: aiohttp.ClientSession) -> None:
    """Restrictions that do not match the request let it through to the function."""
    restrictions = Restrictions(blocked_paths=("/admin/",), blocked_countries=frozenset({"KP"}))
    async with Emulator(keys={KEY_ID: KEY}, restrictions=restrictions) as emulator:
        target = url(emulator.cloudfront_url, "/adminx")
        async with client.get(target, headers=sign(method="GET", target="/adminx")) as reply:
            assert reply.status == 200
