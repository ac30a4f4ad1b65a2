"""The emulator on real sockets: fake CloudFront in front of a fake function URL checking SigV4."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import io
import json
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

import proxy.emulator
from proxy.emulator import DEFAULT_FUNCTION_HOST, Emulator, Key, generate_key
from proxy.emulator.cloudfront import create_cloudfront_app
from proxy.emulator.function_url import UNSIGNED_PAYLOAD_MESSAGE, region_from_host

FUNCTION_HOST = DEFAULT_FUNCTION_HOST
REGION = "eu-central-1"
KEY_ID = "AKIAEMULATORTEST0001"
KEY = Key("emulator-test-secret-0123456789abcdefghij")
TEMP_KEY_ID = "ASIAEMULATORTEST0002"
TEMP_KEY = Key("emulator-test-secret-temporary-012345678", "emulator-test-session-token")
TIMEOUT = aiohttp.ClientTimeout(total=20)


def _params(query: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs of a raw query, ``+`` kept literal, for botocore to sign."""
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def sign(
    *,
    method: str,
    target: str,
    body: bytes = b"",
    key_id: str = KEY_ID,
    key: Key = KEY,
    host: str = FUNCTION_HOST,
    region: str = REGION,
    content_sha256: bool | str = True,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers (Host left out) for a request signed with botocore for ``host``, dated now."""
    path, _, query = target.partition("?")
    headers = {"host": host, **(extra or {})}
    if content_sha256 is True:
        headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    elif isinstance(content_sha256, str):
        headers["x-amz-content-sha256"] = content_sha256
    request = AWSRequest(
        method=method,
        url=f"https://{host}{path}",
        headers=headers,
        data=body,
        # botocore takes a list of pairs for repeated keys; its stubs only say Mapping.
        params=cast("dict[str, Any]", _params(query)),
    )
    SigV4Auth(
        Credentials(key_id, key.secret_access_key, key.session_token), "lambda", region
    ).add_auth(request)
    return {name: str(value) for name, value in request.headers.items() if name.lower() != "host"}


def url(base: str, target: str) -> URL:
    """The target appended byte for byte: aiohttp must not re-quote what was signed."""
    return URL(base + target, encoded=True)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator accepting KEY and the temporary TEMP_KEY."""
    async with Emulator(keys={KEY_ID: KEY, TEMP_KEY_ID: TEMP_KEY}) as running:
        yield running


@pytest.fixture
async def oac_emulator() -> AsyncIterator[Emulator]:
    """An emulator whose CloudFront signs with OAC; it accepts no viewer keys."""
    async with Emulator(keys={}, oac=True) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session whose every request is bounded by TIMEOUT."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


async def test_signed_request_is_verified_through_cloudfront(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A POST signed for the function host passes CloudFront and is echoed as verified."""
    body = b'{"hello": "world"}'
    target = "/hooks/github?b=2&a=1"
    headers = sign(method="POST", target=target, body=body)
    async with client.post(
        url(emulator.cloudfront_url, target), headers=headers, data=body
    ) as resp:
        echo = await resp.json()
        assert resp.status == 200
        assert resp.headers["X-Cache"] == "Miss from cloudfront"
        assert resp.headers["Via"].endswith(".cloudfront.net (CloudFront)")
        assert resp.headers["x-amzn-RequestId"]
    assert echo["verified"] is True
    assert echo["method"] == "POST"
    assert echo["target"] == target
    assert echo["path"] == "/hooks/github"
    assert echo["query"] == "b=2&a=1"
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["body_length"] == len(body)
    assert echo["access_key_id"] == KEY_ID
    assert emulator.requests[-1].verdict.ok


async def test_cloudfront_rewrites_host_and_adds_its_headers(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """The function sees Host = function host, plus Via, X-Amz-Cf-Id, X-Forwarded-For."""
    headers = {**sign(method="GET", target="/"), "X-Forwarded-For": "203.0.113.7"}
    async with client.get(url(emulator.cloudfront_url, "/"), headers=headers) as resp:
        echo = await resp.json()
        assert resp.headers["X-Amz-Cf-Id"] == echo["headers"]["x-amz-cf-id"]
    seen = echo["headers"]
    assert seen["host"] == FUNCTION_HOST
    assert seen["via"].startswith("1.1 ")
    assert seen["via"].endswith(".cloudfront.net (CloudFront)")
    assert len(seen["x-amz-cf-id"]) == 56
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert seen["cloudfront-forwarded-proto"] == "http"


async def test_secrets_are_masked_in_echo_and_records(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """The echo and the records hide the session token and the signature."""
    headers = sign(method="GET", target="/", key_id=TEMP_KEY_ID, key=TEMP_KEY)
    async with client.get(url(emulator.cloudfront_url, "/"), headers=headers) as resp:
        echo = await resp.json()
    assert echo["access_key_id"] == TEMP_KEY_ID
    assert echo["headers"]["x-amz-security-token"] == "***"
    assert echo["headers"]["authorization"].endswith("Signature=***")
    assert (
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
        in (echo["headers"]["authorization"])
    )
    recorded = dict((name.lower(), value) for name, value in emulator.requests[-1].headers)
    assert recorded["x-amz-security-token"] == "***"
    assert recorded["authorization"].endswith("Signature=***")


async def test_hop_by_hop_headers_are_dropped(emulator: Emulator) -> None:
    """Connection and what it names, Keep-Alive, TE, Upgrade, Proxy-*, chunking: all dropped."""
    body = b"chunked body"
    signed = sign(method="POST", target="/hop", body=body)
    host, port = URL(emulator.cloudfront_url).host, URL(emulator.cloudfront_url).port
    assert host is not None
    assert port is not None
    lines = [
        "POST /hop HTTP/1.1",
        f"Host: {host}:{port}",
        *(f"{name}: {value}" for name, value in signed.items()),
        "Connection: close, X-Secret-Hop",
        "X-Secret-Hop: 1",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Upgrade: h2c",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "Transfer-Encoding: chunked",
    ]
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    async with asyncio.timeout(20):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write("\r\n".join(lines).encode() + b"\r\n\r\n" + chunked)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    seen = json.loads(payload)["headers"]
    for name in (
        "connection",
        "x-secret-hop",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
    ):
        assert name not in seen
    assert "transfer-encoding" not in seen
    assert seen["content-length"] == str(len(body))


@pytest.mark.parametrize(
    ("viewer", "forwarded"),
    [
        ("gzip, deflate, br", "br,gzip"),
        ("br;q=0.5, gzip", "br,gzip"),
        ("gzip", "gzip"),
        ("deflate, gzip;q=1.0", "gzip"),
        ("br", None),
        ("deflate", None),
        ("gzip;q=0, br", None),
        ("identity", None),
    ],
)
async def test_accept_encoding_is_normalised(
    emulator: Emulator, client: aiohttp.ClientSession, viewer: str, forwarded: str | None
) -> None:
    """CloudFront forwards "br,gzip", "gzip", or no Accept-Encoding at all."""
    headers = {**sign(method="GET", target="/"), "Accept-Encoding": viewer}
    async with client.get(url(emulator.cloudfront_url, "/"), headers=headers) as resp:
        echo = await resp.json()
    assert echo["headers"].get("accept-encoding") == forwarded


@dataclass(frozen=True)
class Rejection:
    """A badly signed request and the Lambda error it must get (through CloudFront)."""

    id: str
    sign_args: dict[str, Any] = field(default_factory=dict)
    unsigned: bool = False
    error_type: str = "InvalidSignatureException"
    message: str | None = None


REJECTIONS = [
    Rejection("unsigned", unsigned=True, error_type="AccessDeniedException", message="Forbidden"),
    Rejection(
        "unknown key",
        {"key_id": "AKIAUNKNOWNKEY000000"},
        error_type="UnrecognizedClientException",
        message="The security token included in the request is invalid.",
    ),
    Rejection(
        "temporary key without its token",
        {"key_id": TEMP_KEY_ID, "key": Key(TEMP_KEY.secret_access_key)},
        error_type="UnrecognizedClientException",
    ),
    Rejection("wrong secret", {"key": Key("not-the-right-secret")}),
    Rejection(
        "wrong region",
        {"region": "us-east-1"},
        message="Credential should be scoped to a valid region.",
    ),
    Rejection("signed for the CloudFront host", {"host": "d111111abcdef8.cloudfront.net"}),
    Rejection("signed a header CloudFront rewrites", {"extra": {"X-Forwarded-For": "192.0.2.1"}}),
    Rejection(
        "body without x-amz-content-sha256",
        {"content_sha256": False},
        message=UNSIGNED_PAYLOAD_MESSAGE,
    ),
    Rejection(
        "wrong x-amz-content-sha256",
        {"content_sha256": hashlib.sha256(b"another body").hexdigest()},
        message="The provided x-amz-content-sha256 header does not match what was computed.",
    ),
]


@pytest.mark.parametrize("case", REJECTIONS, ids=[case.id for case in REJECTIONS])
async def test_bad_signatures_get_lambda_errors(
    emulator: Emulator, client: aiohttp.ClientSession, case: Rejection
) -> None:
    """Each kind of bad request is answered 403 with Lambda's JSON and x-amzn-ErrorType."""
    body = b"payload"
    headers = {} if case.unsigned else sign(method="PUT", target="/x", body=body, **case.sign_args)
    async with client.put(url(emulator.cloudfront_url, "/x"), headers=headers, data=body) as resp:
        reply = await resp.json()
        assert resp.status == 403
        assert resp.headers["x-amzn-ErrorType"] == case.error_type
        assert resp.headers["x-amzn-RequestId"]
        assert resp.content_type == "application/json"
    assert set(reply) == {"Message"}
    if case.message is not None:
        assert reply["Message"] == case.message
    assert emulator.requests[-1].verdict.error_type == case.error_type


async def test_expired_signature_is_rejected(client: aiohttp.ClientSession) -> None:
    """A signature dated more than 5 minutes before the function's clock has expired."""
    ahead = timedelta(minutes=6)
    async with Emulator(keys={KEY_ID: KEY}, clock=lambda: datetime.now(UTC) + ahead) as emulator:
        headers = sign(method="GET", target="/")
        async with client.get(url(emulator.cloudfront_url, "/"), headers=headers) as resp:
            reply = await resp.json()
            assert resp.status == 403
            assert resp.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert reply["Message"].startswith("Signature expired: ")


async def test_get_with_body_is_refused_by_cloudfront_itself(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A GET with a body gets CloudFront's own HTML 403, never reaching the function."""
    body = b"not allowed"
    headers = sign(method="GET", target="/", body=body)
    async with client.get(url(emulator.cloudfront_url, "/"), headers=headers, data=body) as resp:
        text = await resp.text()
        assert resp.status == 403
        assert "x-amzn-ErrorType" not in resp.headers
        assert resp.headers["Server"] == "CloudFront"
        assert resp.headers["X-Cache"] == "Error from cloudfront"
        assert resp.content_type == "text/html"
    assert "The request could not be satisfied" in text
    assert not emulator.requests


async def test_target_reaches_the_function_byte_for_byte(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Odd but valid paths and queries arrive unchanged, and verify."""
    target = "/a%2Fb/./c//d%20e/../f?b=%2f&a=1+2&&c&%E1%88%B4=x"
    headers = sign(method="GET", target=target)
    async with client.get(url(emulator.cloudfront_url, target), headers=headers) as resp:
        echo = await resp.json()
        assert resp.status == 200, echo
    assert echo["target"] == target


async def test_function_rejects_a_host_other_than_its_own(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Sent straight to the function with its local address as Host, a request is refused."""
    headers = sign(method="GET", target="/")
    async with client.get(url(emulator.function_url_local, "/"), headers=headers) as resp:
        assert resp.status == 403
        assert resp.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


async def test_stream_is_relayed_incrementally(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """The first event reaches the viewer while the function has not yet written the second."""
    target = "/stream?chunks=2&delay=60"
    headers = sign(method="GET", target=target)
    async with client.get(url(emulator.cloudfront_url, target), headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await resp.content.readuntil(b"\n\n") == b"data: 0\n\n"
        assert emulator.requests[-1].stream_events_written == 1


async def test_stream_delivers_every_event(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """With no delay the whole event stream arrives, in order."""
    target = "/stream?chunks=3&delay=0"
    headers = sign(method="GET", target=target)
    async with client.get(url(emulator.cloudfront_url, target), headers=headers) as resp:
        assert await resp.read() == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert emulator.requests[-1].stream_events_written == 3


@pytest.mark.parametrize(
    ("method", "status", "has_body"),
    [
        ("GET", 200, True),
        ("GET", 418, True),
        ("POST", 503, True),
        ("GET", 204, False),
        ("GET", 304, False),
        ("HEAD", 200, False),
    ],
)
async def test_status_path_answers_that_status(
    emulator: Emulator, client: aiohttp.ClientSession, method: str, status: int, has_body: bool
) -> None:
    """/status/<code> answers the code, with a JSON body unless 204, 304 or HEAD."""
    target = f"/status/{status}"
    headers = sign(method=method, target=target)
    async with client.request(
        method, url(emulator.cloudfront_url, target), headers=headers
    ) as resp:
        payload = await resp.read()
        assert resp.status == status
        assert resp.headers["x-amzn-RequestId"]
    assert (json.loads(payload) == {"status": status}) if has_body else payload == b""


async def test_every_set_cookie_survives_cloudfront(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Several Set-Cookie headers from the function all reach the viewer."""
    target = "/status/200?set-cookie=a%3D1&set-cookie=b%3D2%3B%20Path%3D%2F"
    headers = sign(method="GET", target=target)
    async with client.get(url(emulator.cloudfront_url, target), headers=headers) as resp:
        assert resp.headers.getall("Set-Cookie") == ["a=1", "b=2; Path=/"]


async def test_body_over_lambda_limit_gets_413(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A body over 6 MiB is refused like Lambda does, with RequestEntityTooLargeException."""
    body = b"x" * (6 * 1024 * 1024 + 1)
    headers = sign(method="POST", target="/big", body=body)
    async with client.post(
        url(emulator.cloudfront_url, "/big"), headers=headers, data=io.BytesIO(body)
    ) as resp:
        assert resp.status == 413
        assert resp.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"


@pytest.mark.parametrize(
    ("body", "content_sha256", "status", "error_type"),
    [
        (b"", False, 200, None),
        (b'{"event": 1}', True, 200, None),
        (b'{"event": 1}', False, 403, "InvalidSignatureException"),
        (b'{"event": 1}', hashlib.sha256(b"other").hexdigest(), 403, "InvalidSignatureException"),
    ],
    ids=["empty body", "body with its hash", "body without hash", "body with a wrong hash"],
)
async def test_oac_signs_for_the_viewer(
    oac_emulator: Emulator,
    client: aiohttp.ClientSession,
    body: bytes,
    content_sha256: bool | str,
    status: int,
    error_type: str | None,
) -> None:
    """With OAC, CloudFront signs; a body passes only with the right x-amz-content-sha256."""
    headers = {"Authorization": "AWS4-HMAC-SHA256 viewer-junk", "X-Amz-Date": "20000101T000000Z"}
    if content_sha256 is True:
        headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    elif isinstance(content_sha256, str):
        headers["x-amz-content-sha256"] = content_sha256
    async with client.post(
        url(oac_emulator.cloudfront_url, "/oac?x=1%2f"), headers=headers, data=body
    ) as resp:
        reply = await resp.json()
        assert resp.status == status, reply
        assert resp.headers.get("x-amzn-ErrorType") == error_type
    if status == 200:
        assert reply["access_key_id"] == oac_emulator.oac_access_key_id
    elif content_sha256 is False:
        assert reply["Message"] == UNSIGNED_PAYLOAD_MESSAGE


async def test_origin_unreachable_gives_cloudfront_502(client: aiohttp.ClientSession) -> None:
    """When the origin cannot be reached CloudFront answers 502 HTML itself."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = create_cloudfront_app(
        origin_url=f"http://127.0.0.1:{closed_port}", function_host=FUNCTION_HOST, region=REGION
    )
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with client.get(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 502
            assert resp.headers["Server"] == "CloudFront"
            assert "x-amzn-ErrorType" not in resp.headers
    finally:
        await runner.cleanup()


async def test_origin_stalling_mid_stream_cuts_the_viewer_off(
    client: aiohttp.ClientSession,
) -> None:
    """A reply the origin stops sending is cut short, never passed off as complete."""
    async with Emulator(keys={KEY_ID: KEY}, origin_read_timeout=0.2) as emulator:
        target = "/stream?chunks=2&delay=30"
        headers = sign(method="GET", target=target)
        async with client.get(url(emulator.cloudfront_url, target), headers=headers) as resp:
            assert await resp.content.readuntil(b"\n\n") == b"data: 0\n\n"
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("abc123xyz.lambda-url.eu-central-1.on.aws", "eu-central-1"),
        ("ABC.LAMBDA-URL.US-EAST-1.ON.AWS", "us-east-1"),
    ],
)
def test_region_comes_from_the_function_host(host: str, region: str) -> None:
    """The region is read from <id>.lambda-url.<region>.on.aws."""
    assert region_from_host(host) == region


def test_region_from_another_host_is_an_error() -> None:
    """A host that is not a function-URL host needs an explicit region."""
    with pytest.raises(ValueError, match="not a Lambda function-URL host"):
        region_from_host("d111111abcdef8.cloudfront.net")


def test_generated_keys_look_like_aws_keys() -> None:
    """generate_key gives an AKIA id of 20 characters and a 40-character secret, never printed."""
    key_id, key = generate_key()
    assert key_id.startswith("AKIA")
    assert len(key_id) == 20
    assert key_id.isupper()
    assert len(key.secret_access_key) == 40
    assert key.session_token is None
    assert key.secret_access_key not in repr(key)


async def test_emulator_urls_need_a_started_emulator() -> None:
    """Before start and after close, asking for the URLs is a clear error."""
    emulator = Emulator(keys={KEY_ID: KEY})
    with pytest.raises(RuntimeError, match="not started"):
        _ = emulator.cloudfront_url
    async with emulator:
        assert emulator.cloudfront_url.startswith("http://127.0.0.1:")
        assert emulator.function_url_local != emulator.cloudfront_url
    with pytest.raises(RuntimeError, match="not started"):
        _ = emulator.function_url_local


def test_emulator_shares_no_code_with_the_proxy() -> None:
    """No module under proxy/emulator imports a proxy module outside the emulator."""
    package = Path(proxy.emulator.__file__).parent
    for source in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("proxy") or name.startswith("proxy.emulator"), (
                    f"{source.name} imports {name}"
                )
