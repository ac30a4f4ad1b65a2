"""The request inspector: what it records and masks, its bounds, live events and replay, and
who may use it; against the proxy in front of the emulator on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import pytest

from proxy.config.load import parse_config
from proxy.core.headers import REPLAY_HEADER
from proxy.core.refusals import explain_403
from proxy.emulator import Emulator, Key
from proxy.inspector.exchange import Seen
from proxy.inspector.masking import mask_canonical, mask_header, mask_target
from proxy.inspector.store import (
    BODY_BUDGET,
    KEEP_BODY,
    MAX_SUBSCRIBERS,
    SUBSCRIBER_QUEUE,
    Inspector,
)
from proxy.inspector.view import PREVIEW_BYTES, details
from proxy.model import Address
from proxy.serve.credentials import Fetch, static_fetch
from proxy.serve.server import Running, running
from tests.stack import FIXED_KEYS, KEY, KEY_ID, route
from tests.webhooks import PRESETS, SECRET

GUARD = 10.0  # upper bound against a hung test, never a measurement
SESSION_TOKEN = "FwoGZXIvYXdzEBYaDH-session-token-never-shown"
WITH_TOKEN: Mapping[str, Fetch] = {
    "default": static_fetch(KEY_ID, KEY.secret_access_key, SESSION_TOKEN)
}
TUNNEL_TOKEN = "tunnel-token-7f3a9c"
FROM_THE_PAGE = {"X-Inspector": "1"}
WRONG_SECRET: Mapping[str, Fetch] = {
    "default": static_fetch(KEY_ID, "not/the/secret+the/function/knows", SESSION_TOKEN)
}
MISMATCH = "The Canonical String for this request should have been"


@contextlib.asynccontextmanager
async def inspected(
    *routes: dict[str, Any], overrides: Mapping[str, Fetch] = FIXED_KEYS
) -> AsyncIterator[Running]:
    """The proxy with its admin listener and the inspector on, both on free loopback ports."""
    document = {"listen": "127.0.0.1:0", "routes": list(routes)}
    async with running(
        parse_config(document),
        admin=Address("127.0.0.1", 0),
        inspect=True,
        credential_overrides=overrides,
    ) as started:
        yield started


@pytest.fixture
async def token_emulator() -> AsyncIterator[Emulator]:
    """The emulator accepting the test key only with its session token."""
    key = Key(KEY.secret_access_key, session_token=SESSION_TOKEN)
    async with Emulator(keys={KEY_ID: key}) as started:
        yield started


async def _get(client: aiohttp.ClientSession, url: str) -> Any:
    async with client.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _rows(client: aiohttp.ClientSession, proxy: Running) -> list[dict[str, Any]]:
    listing = await _get(client, f"{proxy.admin_url}/inspect/api/exchanges")
    rows: list[dict[str, Any]] = listing["exchanges"]
    return rows


async def _replay(
    client: aiohttp.ClientSession,
    proxy: Running,
    entry_id: int,
    headers: Mapping[str, str] = FROM_THE_PAGE,
) -> tuple[int, dict[str, Any]]:
    url = f"{proxy.admin_url}/inspect/api/exchanges/{entry_id}/replay"
    async with client.post(url, headers=headers) as response:
        return response.status, await response.json()


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name.lower()), None)


def _seen(**fields: Any) -> Seen:
    """A finished GET as the request handler would report it, with ``fields`` changed."""
    defaults: dict[str, Any] = {
        "request_id": "req-1",
        "started": 1_700_000_000.0,
        "duration": 0.012,
        "method": "GET",
        "target": "/orders",
        "route": "r",
        "status": 200,
        "upstream_status": 200,
        "bytes_in": 0,
        "bytes_out": 2,
        "amzn_request_id": None,
        "amzn_error_type": None,
        "request_headers": [("Host", "127.0.0.1:8080")],
        "sent_headers": [("Host", "d111111abcdef8.cloudfront.net")],
        "response_headers": [],
        "canonical_request": None,
        "string_to_sign": None,
        "diagnosis": None,
        "error": None,
        "body": b"",
        "replay_of": None,
    }
    return Seen(**(defaults | fields))


async def test_an_exchange_is_recorded_with_what_the_page_shows(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A proxied request is listed with its outcome, and its details hold the headers on both
    sides, the canonical request, the string to sign and the body."""
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        async with client.post(
            f"{proxy.url}/orders/7?id=7", data=b'{"n": 1}', headers={"Content-Type": "text/json"}
        ) as response:
            await response.read()
        (row,) = await _rows(client, proxy)
        details = await _get(client, f"{proxy.admin_url}/inspect/api/exchanges/{row['id']}")

    assert {key: row[key] for key in ("method", "target", "route", "status", "failed")} == {
        "method": "POST",
        "target": "/orders/7?id=7",
        "route": "r",
        "status": 200,
        "failed": False,
    }
    assert (row["upstream_status"], row["bytes_in"], row["replay_of"]) == (200, 8, None)
    assert row["bytes_out"] > 0
    assert row["request_id"] == response.headers["X-Request-Id"]
    assert row["amzn_request_id"] == emulator.requests[-1].request_id
    assert row["replay"] == {"available": True, "reason": None}
    assert details["canonical_request"].startswith("POST\n/orders/7\nid=7\nhost:")
    assert details["string_to_sign"].startswith("AWS4-HMAC-SHA256\n")
    sent = {name.lower() for name, _ in details["sent_headers"]}
    assert {"host", "x-amz-date", "x-amz-content-sha256", "authorization"} <= sent
    assert ["Content-Type", "text/json"] in details["request_headers"]
    assert any(name.lower() == "x-amzn-requestid" for name, _ in details["response_headers"])
    assert details["body"] == {"size": 8, "text": '{"n": 1}', "truncated": False, "note": None}


@pytest.mark.parametrize(
    ("fields", "path", "status", "error", "explained"),
    [
        pytest.param({"path_prefix": "/api"}, "/elsewhere", 404, "no_route", "no route", id="404"),
        pytest.param(
            {"sign": {"region": "us-east-1"}}, "/x", 403, None, "wrong region", id="bad-scope"
        ),
    ],
)
async def test_a_failure_is_marked_and_explained(
    emulator: Emulator,
    client: aiohttp.ClientSession,
    fields: dict[str, Any],
    path: str,
    status: int,
    error: str | None,
    explained: str,
) -> None:
    """A request the proxy or AWS refused is marked failed and carries the diagnosis."""
    async with inspected(route(emulator.cloudfront_url, **fields)) as proxy:
        async with client.get(f"{proxy.url}{path}") as response:
            await response.read()
        (row,) = await _rows(client, proxy)
        details = await _get(client, f"{proxy.admin_url}/inspect/api/exchanges/{row['id']}")
    assert (row["status"], row["error"], row["failed"]) == (status, error, True)
    assert explained in details["diagnosis"]


async def test_a_refused_exchange_shows_what_aws_said_and_what_to_check(
    token_emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A request the function refuses (signed with the wrong secret) shows AWS's error type
    and message (its expected canonical string), the proxy's conclusion, the things to check
    and the upstream's reply body; the session token and query token are masked in all."""
    async with inspected(route(token_emulator.cloudfront_url), overrides=WRONG_SECRET) as proxy:
        async with client.get(f"{proxy.url}/orders?id=7&token=tok-secret-1") as response:
            assert response.status == 403
            replied = await response.read()
        details = await _get(client, f"{proxy.admin_url}/inspect/api/exchanges/1")

    failure, reply = details["failure"], details["upstream_body"]
    assert (failure["aws"]["status"], failure["aws"]["error_type"]) == (
        403,
        "InvalidSignatureException",
    )
    masked_token = f"x-amz-security-token:[masked, {len(SESSION_TOKEN)} chars]"
    assert MISMATCH in failure["aws"]["message"]
    assert masked_token in failure["aws"]["message"]
    assert failure["concluded"].startswith("signature mismatch (signed for host ")
    assert (
        "`signing-proxy check --route r` shows how AWS's canonical request differs"
        in (failure["checks"])
    )
    assert (reply["size"], reply["truncated"], reply["note"]) == (len(replied), False, None)
    assert json.loads(reply["text"])["Message"] == failure["aws"]["message"]
    shown = json.dumps(details)
    assert [s for s in (SESSION_TOKEN, "tok-secret-1", KEY.secret_access_key) if s in shown] == []


def _route_settings() -> Any:
    """The route ``r`` as the proxy runs it, for explain_403."""
    return parse_config({"listen": "127.0.0.1:0", "routes": [route("https://cf.example")]}).routes[
        0
    ]


@pytest.mark.parametrize(
    ("error_type", "message", "concluded", "checks"),
    [
        pytest.param(
            None,
            "",
            "403 from CloudFront itself (no x-amzn-ErrorType)",
            [
                "check the distribution's WAF rules and geo restriction",
                "a GET or HEAD with a body is refused",
                "with OAC, check that the origin access control belongs to this origin",
            ],
            id="cloudfront",
        ),
        pytest.param(
            "InvalidSignatureException",
            "Credential should be scoped to a valid region. ",
            "wrong region in the signature scope (host ",
            [
                "set sign.region to the function's region, or use function_url so it is taken "
                "from the host"
            ],
            id="region",
        ),
        pytest.param(
            "InvalidSignatureException",
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z",
            "the request's X-Amz-Date is more than 5 minutes off AWS's clock",
            ["synchronise this machine's clock (NTP)"],
            id="clock",
        ),
        pytest.param(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            "signature mismatch (signed for host ",
            [
                "the signing host must be the function URL's own host (the route's function_url)",
                "CloudFront: use the origin request policy AllViewerExceptHostHeader",
                "no origin access control on this origin",
                "`signing-proxy check --route r` shows how AWS's canonical request differs",
            ],
            id="mismatch",
        ),
        pytest.param(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            "AWS does not recognise the access key or session token of credential set 'default'",
            ["check the keys, and that a session token is passed along"],
            id="unknown-key",
        ),
        pytest.param(
            "ExpiredTokenException",
            "The security token included in the request is expired",
            "the session token of credential set 'default' has expired",
            [],
            id="expired",
        ),
        pytest.param(
            "ThrottlingException:http://internal.amazon.com/",
            "Rate exceeded",
            "AWS refused it with ThrottlingException; the proxy knows no specific cause for it",
            [],
            id="unexplained",
        ),
    ],
)
def test_a_refusal_by_aws_is_laid_out_in_sections(
    error_type: str | None, message: str, concluded: str, checks: list[str]
) -> None:
    """The proxy's one-line diagnosis of a 403 is split into what it concluded and a list of
    things to check (each check starts as listed), next to AWS's status, type and message."""
    body = json.dumps({"Message": message}).encode()
    diagnosis = explain_403(route=_route_settings(), error_type=error_type, body=body)
    seen = _seen(
        status=403,
        upstream_status=403,
        amzn_error_type=error_type,
        diagnosis=diagnosis,
        error_body=body,
    )
    failure = details(seen)["failure"]
    assert failure["aws"] == {"status": 403, "error_type": error_type, "message": message}
    assert failure["concluded"].startswith(concluded)
    assert len(failure["checks"]) == len(checks)
    assert all(
        shown.startswith(start) for shown, start in zip(failure["checks"], checks, strict=True)
    )


@pytest.mark.parametrize(
    ("fields", "failure"),
    [
        pytest.param(
            {
                "status": 404,
                "upstream_status": None,
                "sent_headers": None,
                "error": "no_route",
                "diagnosis": "no route matches GET /x; check path_prefix and host of routes",
            },
            {
                "aws": None,
                "concluded": "no route matches GET /x",
                "checks": ["check path_prefix and host of routes"],
            },
            id="proxy-refusal",
        ),
        pytest.param(
            {
                "status": 502,
                "upstream_status": None,
                "error": "upstream_unreachable",
                "diagnosis": "could not connect to https://cf.example: Connection refused",
            },
            {
                "aws": None,
                "concluded": "could not connect to https://cf.example: Connection refused",
                "checks": [],
            },
            id="proxy-error-without-advice",
        ),
        pytest.param(
            {"status": 500, "upstream_status": 500, "error_body": b"<h1>oops</h1>"},
            {
                "aws": {"status": 500, "error_type": None, "message": None},
                "concluded": "the upstream answered 500; the proxy passed it on",
                "checks": [],
            },
            id="upstream-error",
        ),
        pytest.param({}, None, id="success"),
    ],
)
def test_what_the_failure_box_holds(fields: dict[str, Any], failure: Any) -> None:
    """The proxy's own refusal has no AWS part, its advice split off after "; check"; an
    upstream error the proxy cannot explain says so; a success has no failure box."""
    assert details(_seen(**fields))["failure"] == failure


def _refused(body: bytes | None, **fields: Any) -> Seen:
    """A GET signed with a session token and a query token, refused by the function."""
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/eu-west-1/lambda/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=" + "ab" * 32
    )
    return _seen(
        target="/orders?id=7&token=tok%2Fsecret-1",
        status=403,
        upstream_status=403,
        amzn_error_type="InvalidSignatureException",
        request_headers=[("Host", "127.0.0.1:8080"), ("X-Tunnel-Key", "tunnel-secret-2")],
        sent_headers=[
            ("Host", "d111111abcdef8.cloudfront.net"),
            ("X-Amz-Security-Token", SESSION_TOKEN),
            ("Authorization", authorization),
            ("X-Tunnel-Key", "tunnel-secret-2"),
        ],
        error_body=body,
        **fields,
    )


def _mismatch_message(*, padding: int = 0) -> str:
    """Lambda's signature mismatch message quoting a canonical request with secrets in it,
    then ``padding`` sentences repeating the session token."""
    canonical = (
        "GET\n/orders\nid=7&token=tok%2Fsecret-1\nhost:abc.lambda-url.eu-west-1.on.aws\n"
        f"x-amz-date:20240101T000000Z\nx-amz-security-token:{SESSION_TOKEN}\n"
        "x-tunnel-key:tunnel-secret-2\n\nhost;x-amz-date;x-amz-security-token\n" + "e3" * 32
    )
    return (
        "The request signature we calculated does not match the signature you provided. "
        f"\n\n{MISMATCH}\n'{canonical}'\n\nThe String-to-Sign should have been\n'…'\n"
        f"(sent with token {SESSION_TOKEN}, tok/secret-1 and AKIATESTKEY000000001)"
        + f" Sent with token {SESSION_TOKEN}."
        * padding
    )


@pytest.mark.parametrize(
    ("body", "truncated"),
    [
        pytest.param(json.dumps({"Message": _mismatch_message()}).encode(), False, id="json"),
        pytest.param(_mismatch_message().encode(), False, id="text"),
        pytest.param(
            json.dumps({"Message": _mismatch_message(padding=100)}).encode(), True, id="long"
        ),
    ],
)
def test_the_upstream_reply_is_masked_and_bounded(body: bytes, truncated: bool) -> None:
    """The upstream's reply body is shown as text, its first 4 KiB, with every secret of the
    request masked wherever it repeats them: in the canonical string it quotes (JSON-escaped
    or not), in its text, and a route's own secret header."""
    shown = details(_refused(body), secret_headers=frozenset({"x-tunnel-key"}))
    reply = shown["upstream_body"]
    assert (reply["size"], reply["truncated"], reply["note"]) == (len(body), truncated, None)
    assert len(reply["text"].encode()) <= PREVIEW_BYTES
    assert reply["text"].startswith(body.decode()[:80])
    assert f"x-amz-security-token:[masked, {len(SESSION_TOKEN)} chars]" in reply["text"]
    assert "x-tunnel-key:[masked, 15 chars]" in reply["text"]
    assert "id=7&token=[masked, 14 chars]" in reply["text"]
    everything = json.dumps(shown)
    # Masked before the cut (the long body's 4 KiB end in the middle of a token): no part
    # of a secret is left at the end of the text.
    secrets = (SESSION_TOKEN[:6], "tok%2Fsecret-1", "tok/secret-1", "tunnel-secret-2", KEY_ID)
    assert [secret for secret in secrets if secret in everything] == []


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(b"", None, id="empty"),
        pytest.param(
            b"\xff\xfe\x00binary",
            {
                "size": 9,
                "text": None,
                "truncated": False,
                "note": "9 bytes of binary data (not UTF-8)",
            },
            id="binary",
        ),
    ],
)
def test_a_reply_body_that_is_not_text_is_described_not_shown(
    body: bytes | None, shown: dict[str, Any] | None
) -> None:
    """No reply body shows nothing; a binary one is described by its size."""
    assert details(_refused(body))["upstream_body"] == shown


async def test_the_list_says_where_to_send_requests(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """The list carries the proxy's own URL, which the page's hint tells the user to curl."""
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        listing = await _get(client, f"{proxy.admin_url}/inspect/api/exchanges")
    assert (listing["proxy_url"], listing["exchanges"]) == (proxy.url, [])


async def test_no_secret_reaches_the_page(
    token_emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Session token, signature, access key, cookies, API keys and query tokens are masked in
    the list, the details and the live events."""
    secrets = ["tok-secret-1", "cookie-secret-2", "api-secret-3", "ref-secret-4", SESSION_TOKEN]
    headers = {
        "Cookie": "sid=cookie-secret-2",
        "X-Api-Key": "api-secret-3",
        "Referer": "http://localhost/?access_token=ref-secret-4",
    }
    async with (
        inspected(route(token_emulator.cloudfront_url), overrides=WITH_TOKEN) as proxy,
        client.get(f"{proxy.admin_url}/inspect/events") as events,
    ):
        await events.content.readuntil(b"\n\n")  # subscribed
        async with client.get(f"{proxy.url}/orders?id=7&token=tok-secret-1", headers=headers) as r:
            assert r.status == 200  # the function verified it: signed with the token
        event = await events.content.readuntil(b"\n\n")
        async with client.get(f"{proxy.admin_url}/inspect/api/exchanges") as listing:
            shown = await listing.text()
        async with client.get(f"{proxy.admin_url}/inspect/api/exchanges/1") as detail:
            details = await detail.json()
    everything = shown + event.decode() + json.dumps(details)
    assert [s for s in [*secrets, KEY.secret_access_key, KEY_ID] if s in everything] == []
    canonical = details["canonical_request"].split("\n")
    assert canonical[2] == "id=7&token=[masked, 12 chars]"
    assert f"x-amz-security-token:[masked, {len(SESSION_TOKEN)} chars]" in canonical
    authorization = dict(details["sent_headers"])["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIA…0001/")
    assert authorization.endswith("Signature=[masked, 64 chars]")


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        pytest.param(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEY123456/20240101/eu-west-1/lambda/"
            "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "ab" * 32,
            "AWS4-HMAC-SHA256 Credential=ASIA…3456/20240101/eu-west-1/lambda/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=[masked, 64 chars]",
            id="sigv4",
        ),
        pytest.param("Authorization", "Bearer abcdef", "Bearer [masked, 6 chars]", id="bearer"),
        pytest.param(
            "Authorization",
            "AWS4-HMAC-SHA256 garbled",
            "AWS4-HMAC-SHA256 [masked, 7 chars]",
            id="sigv4-garbled",
        ),
        pytest.param("Proxy-Authorization", "Basic dXNlcjpwdw==", "Basic [masked, 12 chars]"),
        pytest.param("X-Amz-Security-Token", "IQoJb3JpZ2lu", "[masked, 12 chars]"),
        pytest.param("Cookie", "a=1; sid=xyz", "a=[masked, 1 chars]; sid=[masked, 3 chars]"),
        pytest.param(
            "Set-Cookie", "sid=xyz; Path=/; HttpOnly", "sid=[masked, 3 chars]; Path=/; HttpOnly"
        ),
        pytest.param("X-Hub-Signature-256", "sha256=" + "ab" * 32, "[masked, 71 chars]"),
        pytest.param("X-Hub-Signature", "sha1=abc", "[masked, 8 chars]"),
        pytest.param("Stripe-Signature", "t=1,v1=ab", "[masked, 9 chars]"),
        pytest.param("X-Slack-Signature", "v0=ab", "[masked, 5 chars]"),
        pytest.param("X-Shopify-Hmac-Sha256", "q83v", "[masked, 4 chars]"),
        pytest.param(REPLAY_HEADER, "token 7", "[masked, 7 chars]"),
        pytest.param("X-Auth-Token", "t0k3n", "[masked, 5 chars]"),
        pytest.param("X-Client-Secret", "s3cr3t", "[masked, 6 chars]"),
        pytest.param("X-Api-Key", "k3y", "[masked, 3 chars]"),
        pytest.param("Apikey", "k3y", "[masked, 3 chars]"),
        pytest.param("X-Password", "hunter2", "[masked, 7 chars]"),
        pytest.param("Location", "/next?code=abc&state=1", "/next?code=[masked, 3 chars]&state=1"),
        pytest.param("Content-Type", "application/json", "application/json", id="plain"),
        pytest.param("X-Amz-Date", "20240101T000000Z", "20240101T000000Z", id="amz-date"),
    ],
)
def test_header_masking(name: str, value: str, shown: str) -> None:
    """Headers that may carry a secret show a length hint; the rest show as they are."""
    assert mask_header(name, value) == shown


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/a?token=abc&id=7", "/a?token=[masked, 3 chars]&id=7"),
        ("/a?access_token=abc", "/a?access_token=[masked, 3 chars]"),
        ("/a?api_key=abc&apiKey=de", "/a?api_key=[masked, 3 chars]&apiKey=[masked, 2 chars]"),
        ("/a?sig=abc&signature=de", "/a?sig=[masked, 3 chars]&signature=[masked, 2 chars]"),
        ("/a?client_secret=abc", "/a?client_secret=[masked, 3 chars]"),
        ("/a?password=abc", "/a?password=[masked, 3 chars]"),
        ("/a?code=abc&state=x", "/a?code=[masked, 3 chars]&state=x"),
        ("/a?X-Amz-Credential=AK%2F1", "/a?X-Amz-Credential=[masked, 6 chars]"),
        ("/a?x-amz-signature=ff", "/a?x-amz-signature=[masked, 2 chars]"),
        ("/a?%74oken=abc", "/a?%74oken=[masked, 3 chars]"),
        ("/a?id=7&page=2&q=hello", "/a?id=7&page=2&q=hello"),
        ("/a?token&b", "/a?token&b"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_query_masking(target: str, shown: str) -> None:
    """Values of query parameters named like credentials are masked; order and form are kept."""
    assert mask_target(target) == shown


def test_canonical_request_masking() -> None:
    """The canonical request keeps its shape, with the query and the token line masked."""
    canonical = (
        "GET\n/orders\nid=7&token=abc\nhost:example.on.aws\nx-amz-date:20240101T000000Z\n"
        "x-amz-security-token:IQoJb3JpZ2lu\n\nhost;x-amz-date;x-amz-security-token\n" + "e3" * 32
    )
    assert mask_canonical(canonical) == (
        "GET\n/orders\nid=7&token=[masked, 3 chars]\nhost:example.on.aws\n"
        "x-amz-date:20240101T000000Z\nx-amz-security-token:[masked, 12 chars]\n\n"
        "host;x-amz-date;x-amz-security-token\n" + "e3" * 32
    )


def test_only_the_last_size_entries_are_kept() -> None:
    """Beyond ``size`` entries the oldest go; ids keep increasing."""
    inspector = Inspector(size=3)
    for number in range(5):
        inspector.record(_seen(request_id=f"req-{number}"))
    assert [row["id"] for row in inspector.rows()] == [5, 4, 3]
    assert inspector.lookup(2) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param({"body": b"x" * KEEP_BODY}, None, id="at-the-limit"),
        pytest.param({"body": b"x" * (KEEP_BODY + 1)}, "over the 256 KiB", id="over-the-limit"),
        pytest.param(
            {"body": None, "request_headers": [("Content-Length", "2000000")]},
            "did not keep this request's body",
            id="not-kept-by-the-proxy",
        ),
        pytest.param({"body": None}, None, id="sent-without-body"),
        pytest.param(
            {"body": None, "status": 404, "error": "no_route", "sent_headers": None},
            "refused it before sending it upstream",
            id="refused-by-routing",
        ),
        pytest.param(
            {"body": None, "status": 401, "error": "unauthorized", "sent_headers": None},
            "refused it before sending it upstream",
            id="refused-by-inbound",
        ),
    ],
)
def test_what_is_kept_for_replay(fields: dict[str, Any], reason: str | None) -> None:
    """A body is kept up to 256 KiB; a request without one is replayable without it; one the
    proxy refused before sending it upstream is never replayable."""
    inspector = Inspector()
    inspector.record(_seen(method="POST", **fields))
    (row,) = inspector.rows()
    assert row["replay"]["available"] is (reason is None)
    assert reason is None or reason in row["replay"]["reason"]


def test_kept_bodies_stay_within_the_budget() -> None:
    """Past 16 MiB of kept bodies the oldest body is dropped, and its entry says why."""
    body = b"x" * KEEP_BODY
    inspector = Inspector()
    count = BODY_BUDGET // KEEP_BODY + 1
    for number in range(count):
        inspector.record(_seen(method="POST", body=body, request_id=f"req-{number}"))
    oldest, *rest = reversed(inspector.rows())
    assert oldest["replay"] == {
        "available": False,
        "reason": "its body was dropped to keep the inspector's kept bodies within 16 MiB",
    }
    assert all(row["replay"]["available"] for row in rest)
    assert len(rest) == count - 1


def test_secrets_kept_for_replay_are_unprintable() -> None:
    """Neither the inspector, an entry nor what it keeps prints the request's secrets."""
    inspector = Inspector()
    inspector.record(
        _seen(target="/a?token=tok-secret", request_headers=[("Cookie", "sid=cookie-secret")])
    )
    entry = inspector.lookup(1)
    assert entry is not None
    printed = repr(inspector) + repr(entry) + repr(entry.kept)
    assert "secret" not in printed


@pytest.mark.parametrize(
    "value",
    ["", "1", "forged 1", "forged", "{token}", "{token} ", "{token} x", "{token} ١", "{token}1"],
)
def test_only_the_genuine_token_marks_a_replay(value: str) -> None:
    """A replay header without this inspector's token and an entry id is not a replay."""
    inspector = Inspector()
    inspector.record(_seen())
    entry = inspector.lookup(1)
    assert entry is not None
    assert entry.kept is not None
    genuine = inspector.replay_headers(entry, entry.kept, request_id="r")[REPLAY_HEADER]
    token = genuine.partition(" ")[0]
    assert inspector.replay_of({REPLAY_HEADER: genuine}) == 1
    assert inspector.replay_of({REPLAY_HEADER: value.format(token=token)}) is None


def test_a_live_page_too_far_behind_is_dropped_not_waited_for() -> None:
    """A subscriber whose queue is full gets the end marker and no more rows; recording goes
    on (the page reconnects and reloads the list)."""
    inspector = Inspector()
    queue = inspector.subscribe()
    assert queue is not None
    for number in range(SUBSCRIBER_QUEUE + 1):
        inspector.record(_seen(request_id=f"req-{number}"))
    *rows, end = [queue.get_nowait() for _ in range(queue.qsize())]
    assert end is None
    # The oldest row made way for the end marker.
    assert [json.loads(row)["id"] for row in rows if row is not None] == list(
        range(2, SUBSCRIBER_QUEUE + 1)
    )
    inspector.record(_seen())
    assert queue.empty()
    assert [row["id"] for row in inspector.rows()][:1] == [SUBSCRIBER_QUEUE + 2]


def test_live_pages_are_limited_in_number() -> None:
    """Past MAX_SUBSCRIBERS open streams, and after shutdown, no new stream is accepted."""
    inspector = Inspector()
    queues = [inspector.subscribe() for _ in range(MAX_SUBSCRIBERS)]
    assert None not in queues
    assert inspector.subscribe() is None
    inspector.close_streams()
    assert all(queue is not None and queue.get_nowait() is None for queue in queues)
    assert Inspector().subscribe() is not None


async def test_live_events_deliver_each_new_entry(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """An open event stream gets one ``exchange`` event with the row of each new request."""
    async with (
        inspected(route(emulator.cloudfront_url)) as proxy,
        client.get(f"{proxy.admin_url}/inspect/events") as events,
    ):
        assert events.headers["Content-Type"] == "text/event-stream"
        await events.content.readuntil(b"\n\n")  # subscribed
        async with client.get(f"{proxy.url}/live?id=1") as response:
            await response.read()
        async with asyncio.timeout(GUARD):
            event = (await events.content.readuntil(b"\n\n")).decode()
    kind, data = event.strip().split("\n")
    assert kind == "event: exchange"
    row = json.loads(data.removeprefix("data: "))
    assert (row["id"], row["target"], row["status"]) == (1, "/live?id=1", 200)


async def test_open_event_streams_end_cleanly_at_shutdown(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Leaving the proxy ends an open event stream properly instead of waiting it out."""
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        events = await client.get(f"{proxy.admin_url}/inspect/events")
        await events.content.readuntil(b"\n\n")
    async with asyncio.timeout(GUARD):
        rest = await events.content.read()  # a cut stream would raise a payload error
    events.release()
    assert rest == b""


async def test_replay_is_signed_afresh_and_recorded(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A replay goes through the proxy, is signed again (a new X-Amz-Date) and verified by the
    function, with the same body, and is listed as a replay of the original."""
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        async with client.post(f"{proxy.url}/orders?id=7", data=b"payload") as response:
            assert response.status == 200
        proxy.state.clock.offset = 2.0  # two seconds "later", without waiting for them
        status, answer = await _replay(client, proxy, 1)
        rows = await _rows(client, proxy)

    assert (status, answer["replayed"], answer["id"], answer["status"]) == (200, 1, 2, 200)
    replayed, original = rows
    assert (replayed["id"], replayed["replay_of"], replayed["target"]) == (2, 1, "/orders?id=7")
    assert replayed["request_id"] == answer["request_id"] != original["request_id"]
    first, second = emulator.requests
    assert first.verdict.ok
    assert second.verdict.ok
    assert (second.method, second.target, second.body_sha256) == (
        first.method,
        first.target,
        first.body_sha256,
    )
    assert _header(first.headers, "X-Amz-Date") != _header(second.headers, "X-Amz-Date")
    assert all(name.lower() != REPLAY_HEADER.lower() for name, _ in second.headers)


@pytest.mark.parametrize(
    ("inbound", "credentials", "body"),
    [
        pytest.param(
            {"type": "bearer", "secret_env": "TUNNEL_TOKEN"},
            {"Authorization": f"Bearer {TUNNEL_TOKEN}"},
            b"{}",
            id="bearer",
        ),
        pytest.param(
            {"type": "github", "secret_env": "HOOK_SECRET"},
            dict(PRESETS[0].sign(SECRET, PRESETS[0].body, int(time.time()))),
            PRESETS[0].body,
            id="github-webhook",
        ),
    ],
)
async def test_replay_passes_the_inbound_check_and_a_forged_marker_does_not(
    emulator: Emulator,
    client: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    inbound: dict[str, Any],
    credentials: dict[str, str],
    body: bytes,
) -> None:
    """On a protected route a replay reaches the function (a webhook's second delivery would
    not), while a client's own replay header admits nothing and its refusal cannot be replayed."""
    monkeypatch.setenv("TUNNEL_TOKEN", TUNNEL_TOKEN)
    monkeypatch.setenv("HOOK_SECRET", SECRET.decode())
    async with inspected(route(emulator.cloudfront_url, inbound=inbound)) as proxy:
        url = f"{proxy.url}/hooks"
        async with client.post(url, data=body, headers=credentials) as delivered:
            assert delivered.status == 200
        status, answer = await _replay(client, proxy, 1)
        async with client.post(url, data=body, headers={REPLAY_HEADER: "forged 1"}) as forged:
            assert forged.status == 401
        refused_status, refused = await _replay(client, proxy, 3)
    assert (status, answer["status"]) == (200, 200)
    assert len(emulator.requests) == 2
    assert all(seen.verdict.ok for seen in emulator.requests)
    assert refused_status == 409
    assert "refused it before sending it upstream" in refused["message"]


@pytest.mark.parametrize(
    ("entry_id", "status", "error", "message"),
    [
        pytest.param(99, 404, "not_found", "no exchange #99", id="unknown"),
        pytest.param(1, 409, "not_replayable", "over the 256 KiB", id="body-not-kept"),
    ],
)
async def test_replay_refusals(
    emulator: Emulator,
    client: aiohttp.ClientSession,
    entry_id: int,
    status: int,
    error: str,
    message: str,
) -> None:
    """An unknown or evicted entry is a 404; one whose body was not kept a 409 saying why."""
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        async with client.post(f"{proxy.url}/big", data=b"x" * (KEEP_BODY + 1)) as response:
            assert response.status == 200
        answered, answer = await _replay(client, proxy, entry_id)
    assert (answered, answer["error"]) == (status, error)
    assert message in answer["message"]
    assert len(emulator.requests) == 1


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("LocalHost", 200),
        ("[::1]:{port}", 200),
        ("127.0.0.2", 200),
        ("evil.example:{port}", 421),
        ("127.0.0.1.nip.io", 421),
        ("localhost.evil.example", 421),
        ("[::1", 421),
        ("10.0.0.1:{port}", 421),
    ],
)
async def test_only_loopback_host_names_are_answered(
    emulator: Emulator, client: aiohttp.ClientSession, host: str, status: int
) -> None:
    """A page on another name (DNS rebinding) is refused, the inspector's and every other
    admin endpoint alike."""
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        assert proxy.admin_url is not None
        port = proxy.admin_url.rsplit(":", 1)[1]
        headers = {"Host": host.format(port=port)}
        async with client.get(f"{proxy.admin_url}/inspect", headers=headers) as page:
            assert page.status == status
        async with client.get(f"{proxy.admin_url}/healthz", headers=headers) as health:
            assert health.status == status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 403, id="no-custom-header"),
        pytest.param({"X-Inspector": "yes"}, 403, id="wrong-custom-header"),
        pytest.param({"X-Inspector": "1", "Origin": "http://evil.example"}, 403, id="cross-site"),
        pytest.param({"X-Inspector": "1", "Origin": "null"}, 403, id="opaque-origin"),
        pytest.param({"X-Inspector": "1", "Origin": "{admin}"}, 404, id="same-origin"),
        pytest.param({"X-Inspector": "1"}, 404, id="no-origin"),
    ],
)
async def test_replay_needs_the_page_custom_header_and_its_origin(
    emulator: Emulator, client: aiohttp.ClientSession, headers: dict[str, str], status: int
) -> None:
    """Without X-Inspector: 1, or from another origin, a replay is refused before anything
    is looked up (an unknown entry is a 404 only when the request may replay)."""
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        assert proxy.admin_url is not None
        sent = {name: value.format(admin=proxy.admin_url) for name, value in headers.items()}
        answered, _ = await _replay(client, proxy, 99, headers=sent)
    assert answered == status


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/inspect", "text/html"),
        ("/inspect/app.js", "text/javascript"),
        ("/inspect/style.css", "text/css"),
    ],
)
async def test_the_page_is_served_locked_down(
    emulator: Emulator, client: aiohttp.ClientSession, path: str, content_type: str
) -> None:
    """The page and its assets come from the proxy with a same-origin-only CSP and nosniff."""
    async with (
        inspected(route(emulator.cloudfront_url)) as proxy,
        client.get(f"{proxy.admin_url}{path}") as response,
    ):
        body = await response.text()
    assert (response.status, response.content_type) == (200, content_type)
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert body
