"""The emulator as a Lambda Web Function endpoint: SigV4 (regional), SigV4a (multi-region),
x-amz-content-sha256 on every request, and the SigV4a key derivation against aws-c-auth's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.crt.auth import CrtSigV4AsymAuth  # awscrt's SigV4a signer, a test dependency
from yarl import URL

from proxy.emulator import DENY_ALL, Emulator, Key, web_function_endpoint
from proxy.emulator.function_url import region_from_host
from proxy.emulator.sigv4a_verify import (
    derive_private_key,
    derive_public_key,
    region_set_covers,
    verify_sigv4a_request,
)
from proxy.emulator.web_function import CONTENT_SHA256_REQUIRED_MESSAGE, WebFunctionEndpoint

REGIONAL_HOST = "abc123xyz.a1.lambda-web.eu-central-1.on.aws"
GLOBAL_HOST = "abc123xyz.lambda-web.global.on.aws"
SERVING_REGION = "us-east-1"  # the multi-region emulator's default
KEY_ID = "AKIAWEBFUNCTIONTEST1"
KEY = Key("web-function-test-secret-0123456789abcdef")
OTHER_KEY = Key("web-function-test-secret-another-one-0123")
TIMEOUT = aiohttp.ClientTimeout(total=20)

# aws-c-auth's SigV4a vectors (Apache-2.0; LICENSE and NOTICE beside them).
VECTORS = Path(__file__).parents[1] / "data" / "sigv4a-testsuite" / "v4a"


def sign_sigv4(
    *, method: str, target: str, body: bytes = b"", content_sha256: bool = True
) -> dict[str, str]:
    """Headers (Host left out) for a request signed with botocore's SigV4 for REGIONAL_HOST."""
    headers = {"host": REGIONAL_HOST}
    if content_sha256:
        headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    request = AWSRequest(
        method=method, url=f"https://{REGIONAL_HOST}{target}", headers=headers, data=body
    )
    SigV4Auth(Credentials(KEY_ID, KEY.secret_access_key), "lambda", "eu-central-1").add_auth(
        request
    )
    return _without_host(request)


def sign_sigv4a(
    *,
    method: str,
    target: str,
    body: bytes = b"",
    host: str = GLOBAL_HOST,
    region_set: str = "*",
    key_id: str = KEY_ID,
    key: Key = KEY,
    content_sha256: bool = True,
) -> dict[str, str]:
    """Headers (Host left out) for a request signed with botocore's CRT SigV4a signer."""
    headers = {"host": host}
    if content_sha256:
        # Announced, the hash is signed and the header kept; else CRT adds none on https.
        headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    request = AWSRequest(method=method, url=f"https://{host}{target}", headers=headers, data=body)
    credentials = Credentials(key_id, key.secret_access_key, key.session_token)
    CrtSigV4AsymAuth(credentials, "lambda", region_set).add_auth(request)
    return _without_host(request)


def _without_host(request: AWSRequest) -> dict[str, str]:
    return {name: str(value) for name, value in request.headers.items() if name.lower() != "host"}


def url(base: str, target: str) -> URL:
    """The target appended byte for byte: aiohttp must not re-quote what was signed."""
    return URL(base + target, encoded=True)


@pytest.fixture
async def regional() -> AsyncIterator[Emulator]:
    """CloudFront in front of a regional Web Function endpoint that knows KEY."""
    async with Emulator(keys={KEY_ID: KEY}, function_host=REGIONAL_HOST) as running:
        yield running


@pytest.fixture
async def global_endpoint() -> AsyncIterator[Emulator]:
    """CloudFront in front of a multi-region Web Function endpoint that knows KEY."""
    async with Emulator(keys={KEY_ID: KEY}, function_host=GLOBAL_HOST) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session whose every request is bounded by TIMEOUT."""
    async with aiohttp.ClientSession(timeout=TIMEOUT, auto_decompress=False) as session:
        yield session


async def _send(
    client: aiohttp.ClientSession,
    base: str,
    *,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes = b"",
) -> tuple[int, dict[str, str], dict[str, object]]:
    async with client.request(
        method, url(base, target), headers=dict(headers), data=body or None
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json()


UPPER_HOST = "ABC.X9.LAMBDA-WEB.US-GOV-WEST-1.ON.AWS"


@pytest.mark.parametrize(
    ("host", "endpoint"),
    [
        (REGIONAL_HOST, WebFunctionEndpoint(REGIONAL_HOST, "eu-central-1")),
        (UPPER_HOST, WebFunctionEndpoint(UPPER_HOST.lower(), "us-gov-west-1")),
        (GLOBAL_HOST, WebFunctionEndpoint(GLOBAL_HOST, None)),
        ("abc123xyz.lambda-url.eu-central-1.on.aws", None),
        ("abc.lambda-web.eu-central-1.on.aws", None),
        ("abc.a1.lambda-web.global.on.aws", None),
    ],
    ids=["regional", "regional-upper-case", "global", "function-url", "no-shard", "shard-global"],
)
def test_web_function_hosts_are_told_apart(host: str, endpoint: WebFunctionEndpoint | None) -> None:
    """Regional and multi-region endpoint hosts are recognised; function-URL hosts are not."""
    assert web_function_endpoint(host) == endpoint


def test_only_a_regional_endpoint_names_a_region() -> None:
    """A regional endpoint's region comes from its host; the multi-region one has none."""
    assert region_from_host(REGIONAL_HOST) == "eu-central-1"
    with pytest.raises(ValueError, match="multi-region"):
        region_from_host(GLOBAL_HOST)


async def test_regional_endpoint_accepts_a_sigv4_request(
    regional: Emulator, client: aiohttp.ClientSession
) -> None:
    """A bodiless GET signed with botocore's SigV4 for the regional host is verified."""
    target = "/hello?name=world"
    headers = sign_sigv4(method="GET", target=target)
    status, _, echo = await _send(
        client, regional.cloudfront_url, method="GET", target=target, headers=headers
    )
    assert status == 200, echo
    assert echo["verified"] is True
    assert echo["algorithm"] == "AWS4-HMAC-SHA256"
    assert echo["region_set"] is None
    assert echo["access_key_id"] == KEY_ID
    assert regional.region == "eu-central-1"


@pytest.mark.parametrize(
    ("method", "body"), [("GET", b""), ("POST", b'{"a": 1}')], ids=["without-body", "with-body"]
)
async def test_regional_endpoint_refuses_a_missing_content_sha256(
    regional: Emulator, client: aiohttp.ClientSession, method: str, body: bytes
) -> None:
    """Without x-amz-content-sha256 a validly signed request is refused, bodiless or not."""
    headers = sign_sigv4(method=method, target="/", body=body, content_sha256=False)
    status, reply_headers, reply = await _send(
        client, regional.cloudfront_url, method=method, target="/", headers=headers, body=body
    )
    assert status == 403
    assert reply_headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert reply == {"Message": CONTENT_SHA256_REQUIRED_MESSAGE}


async def test_regional_endpoint_also_accepts_sigv4a_covering_its_region(
    regional: Emulator, client: aiohttp.ClientSession
) -> None:
    """SigV4a with a region set naming the endpoint's region is verified there too."""
    headers = sign_sigv4a(method="GET", target="/", host=REGIONAL_HOST, region_set="eu-*")
    status, _, echo = await _send(
        client, regional.cloudfront_url, method="GET", target="/", headers=headers
    )
    assert status == 200, echo
    assert echo["algorithm"] == "AWS4-ECDSA-P256-SHA256"
    assert echo["region_set"] == "eu-*"


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", "/orders", b'{"item": "book", "quantity": 2}'),
        ("GET", "/hello?name=world&a=1", b""),
        ("PUT", "/a/b%20c", b"\x00\xffbinary"),
    ],
    ids=["post-json", "get-query", "put-binary"],
)
async def test_global_endpoint_accepts_a_crt_sigv4a_request(
    global_endpoint: Emulator,
    client: aiohttp.ClientSession,
    method: str,
    target: str,
    body: bytes,
) -> None:
    """A request signed with botocore's CRT SigV4a signer (region set *) is verified, and the
    echo says which algorithm and region set."""
    headers = sign_sigv4a(method=method, target=target, body=body)
    status, _, echo = await _send(
        client, global_endpoint.cloudfront_url, method=method, target=target, headers=headers,
        body=body,
    )  # fmt: skip
    assert status == 200, echo
    assert echo["verified"] is True
    assert echo["algorithm"] == "AWS4-ECDSA-P256-SHA256"
    assert echo["region_set"] == "*"
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    verdict = global_endpoint.requests[-1].verdict
    assert verdict.ok
    assert verdict.string_to_sign is not None
    assert verdict.string_to_sign.startswith("AWS4-ECDSA-P256-SHA256\n")


@dataclass(frozen=True)
class Tampering:
    """One way a correctly signed POST /orders is changed on its way, and Lambda's answer."""

    id: str
    error_type: str
    message_starts: str
    target: str = "/orders"
    body: bytes = b'{"item": "book"}'
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    signed_with: Key = KEY
    key_id: str = KEY_ID


_MISMATCH = "The request signature we calculated does not match"
TAMPERINGS = [
    Tampering("changed-path", "InvalidSignatureException", _MISMATCH, target="/refunds"),
    Tampering(
        "changed-body", "InvalidSignatureException",
        "The provided x-amz-content-sha256 header does not match", body=b'{"item": "car"}',
    ),
    Tampering(
        "changed-body-and-hash", "InvalidSignatureException", _MISMATCH, body=b'{"item": "car"}',
        headers={"x-amz-content-sha256": hashlib.sha256(b'{"item": "car"}').hexdigest()},
    ),
    Tampering(
        "changed-region-set", "InvalidSignatureException", _MISMATCH,
        headers={"X-Amz-Region-Set": f"{SERVING_REGION},eu-west-1"},
    ),
    Tampering("another-secret", "InvalidSignatureException", _MISMATCH, signed_with=OTHER_KEY),
    Tampering(
        "unknown-key-id", "UnrecognizedClientException", "The security token included",
        key_id="AKIAUNKNOWNKEY000000",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", TAMPERINGS, ids=[case.id for case in TAMPERINGS])
async def test_global_endpoint_refuses_a_tampered_request(
    global_endpoint: Emulator, client: aiohttp.ClientSession, case: Tampering
) -> None:
    """A SigV4a request changed after signing (or signed with another key) gets Lambda's 403."""
    signed_body = b'{"item": "book"}'
    headers = sign_sigv4a(
        method="POST", target="/orders", body=signed_body, key_id=case.key_id, key=case.signed_with
    )
    headers.update(case.headers)
    status, reply_headers, reply = await _send(
        client, global_endpoint.cloudfront_url, method="POST", target=case.target,
        headers=headers, body=case.body,
    )  # fmt: skip
    assert status == 403
    assert reply_headers["x-amzn-ErrorType"] == case.error_type
    assert set(reply) == {"Message"}
    assert str(reply["Message"]).startswith(case.message_starts)


async def test_global_endpoint_refuses_sigv4(
    global_endpoint: Emulator, client: aiohttp.ClientSession
) -> None:
    """The multi-region endpoint takes only SigV4a: a SigV4 signature is incomplete there."""
    headers = sign_sigv4(method="GET", target="/")
    status, reply_headers, reply = await _send(
        client, global_endpoint.cloudfront_url, method="GET", target="/", headers=headers
    )
    assert status == 403
    assert reply_headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
    assert reply == {
        "Message": "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA256'. "
        "Expected 'AWS4-ECDSA-P256-SHA256'."
    }


@pytest.mark.parametrize(
    ("region_set", "status"),
    [("us-*", 200), (f"eu-west-1,{SERVING_REGION}", 200), ("ap-south-1", 403)],
    ids=["wildcard", "list", "elsewhere"],
)
async def test_the_region_set_must_cover_the_serving_region(
    global_endpoint: Emulator, client: aiohttp.ClientSession, region_set: str, status: int
) -> None:
    """A correctly signed region set that leaves out the region serving the request is refused."""
    headers = sign_sigv4a(method="GET", target="/", region_set=region_set)
    got, reply_headers, reply = await _send(
        client, global_endpoint.cloudfront_url, method="GET", target="/", headers=headers
    )
    assert got == status, reply
    if status == 403:
        assert reply_headers["x-amzn-ErrorType"] == "InvalidSignatureException"
        assert "does not include us-east-1" in str(reply["Message"])


async def test_global_endpoint_refuses_a_missing_content_sha256(
    global_endpoint: Emulator, client: aiohttp.ClientSession
) -> None:
    """A bodiless SigV4a GET without x-amz-content-sha256 is refused by a Web Function."""
    headers = sign_sigv4a(method="GET", target="/", content_sha256=False)
    assert "x-amz-content-sha256" not in {name.lower() for name in headers}
    status, reply_headers, reply = await _send(
        client, global_endpoint.cloudfront_url, method="GET", target="/", headers=headers
    )
    assert status == 403
    assert reply_headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert reply == {"Message": CONTENT_SHA256_REQUIRED_MESSAGE}


async def test_a_denied_identity_lacks_invoke_web_function_endpoint(
    client: aiohttp.ClientSession,
) -> None:
    """A valid SigV4a signature by an identity no policy allows gets AccessDeniedException
    naming lambda:InvokeWebFunctionEndpoint."""
    async with Emulator(keys={KEY_ID: KEY}, function_host=GLOBAL_HOST, denied=DENY_ALL) as running:
        headers = sign_sigv4a(method="GET", target="/")
        status, reply_headers, reply = await _send(
            client, running.cloudfront_url, method="GET", target="/", headers=headers
        )
    assert status == 403
    assert reply_headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "lambda:InvokeWebFunctionEndpoint" in str(reply["Message"])


def test_oac_cannot_sign_for_a_multi_region_endpoint() -> None:
    """CloudFront's OAC signs SigV4, which the multi-region endpoint never accepts."""
    with pytest.raises(ValueError, match="only SigV4a"):
        Emulator(keys={}, function_host=GLOBAL_HOST, oac=True)


@pytest.mark.parametrize(
    ("region_set", "covered"),
    [
        ("*", True),
        ("us-east-1", True),
        ("US-EAST-*", True),
        ("eu-west-1, us-east-1", True),
        ("us-east-2", False),
        ("us-*-2", False),
        ("", False),
        ("us-east-1.*", False),
    ],
)
def test_region_set_covers(region_set: str, covered: bool) -> None:
    """A region set is a comma list of regions, ``*`` matching any run of characters."""
    assert region_set_covers(region_set, "us-east-1") is covered


# The key derivation as aws-c-auth tests it (tests/key_derivation_tests.c): fixed credentials,
# expected private key and public coordinates.
AWS_C_AUTH_KEY_ID = "AKISORANDOMAASORANDOM"
AWS_C_AUTH_SECRET = "q+jcrXGc+0zWN6uzclKVhvMmUsIfRPa4rlRandom"
AWS_C_AUTH_PRIVATE = 0x7FD3BD010C0D9C292141C2B77BFBDE1042C92E6836FFF749D1269EC890FCA1BD
AWS_C_AUTH_X = 0x15D242CEEBF8D8169FD6A8B5A746C41140414C3B07579038DA06AF89190FFFCB
AWS_C_AUTH_Y = 0x0515242CEDD82E94799482E4C0514B505AFCCF2C0C98D6A553BF539F424C5EC0


def test_key_derivation_matches_aws_c_auth() -> None:
    """The private and public key derived from aws-c-auth's fixed credentials are its own."""
    private = derive_private_key(
        access_key_id=AWS_C_AUTH_KEY_ID, secret_access_key=AWS_C_AUTH_SECRET
    )
    numbers = private.public_key().public_numbers()
    assert private.private_numbers().private_value == AWS_C_AUTH_PRIVATE
    assert (numbers.x, numbers.y) == (AWS_C_AUTH_X, AWS_C_AUTH_Y)


SAMPLE_VECTORS = [
    "get-vanilla",
    "get-vanilla-query-order-key-case",
    "get-vanilla-with-session-token",
    "get-header-value-trim",
    "post-vanilla",
    "post-x-www-form-urlencoded",
]


def _context(name: str) -> dict[str, object]:
    context = json.loads((VECTORS / name / "context.json").read_text(encoding="utf-8"))
    assert isinstance(context, dict)
    return context


def _credentials(name: str) -> tuple[str, Key]:
    credentials = _context(name)["credentials"]
    assert isinstance(credentials, dict)
    key = Key(credentials["secret_access_key"], credentials.get("token"))
    return credentials["access_key_id"], key


@pytest.mark.parametrize("name", SAMPLE_VECTORS)
def test_derived_public_key_matches_the_vector(name: str) -> None:
    """The public key derived from a vector's credentials is its public-key.json."""
    key_id, key = _credentials(name)
    expected = json.loads((VECTORS / name / "public-key.json").read_text(encoding="utf-8"))
    numbers = derive_public_key(
        access_key_id=key_id, secret_access_key=key.secret_access_key
    ).public_numbers()
    assert (numbers.x, numbers.y) == (int(expected["X"], 16), int(expected["Y"], 16))


def _parse_signed_request(text: str) -> tuple[str, str, tuple[tuple[str, str], ...], bytes]:
    """(method, target, headers, body) from a vector's header-signed-request.txt."""
    head, _, body = text.partition("\n\n")
    request_line, *header_lines = head.split("\n")
    method, rest = request_line.split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers = tuple(
        (name, value) for name, _, value in (line.partition(":") for line in header_lines)
    )
    return method, target, headers, body.encode()


@pytest.mark.parametrize("name", SAMPLE_VECTORS)
def test_the_vectors_own_signature_verifies(name: str) -> None:
    """aws-c-auth's signed request verifies, with the vector's canonical request and string
    to sign byte for byte."""
    key_id, key = _credentials(name)
    context = _context(name)
    method, target, headers, body = _parse_signed_request(
        (VECTORS / name / "header-signed-request.txt").read_text(encoding="utf-8")
    )
    verdict = verify_sigv4a_request(
        method=method,
        target=target,
        headers=headers,
        body_sha256=hashlib.sha256(body).hexdigest(),
        keys={key_id: key},
        now=datetime.fromisoformat(str(context["timestamp"]).replace("Z", "+00:00")),
        region=str(context["region"]),
        service=str(context["service"]),
    )
    assert verdict.ok, verdict.message
    expected = VECTORS / name / "header-canonical-request.txt"
    assert verdict.canonical_request == expected.read_text(encoding="utf-8")
    expected = VECTORS / name / "header-string-to-sign.txt"
    assert verdict.string_to_sign == expected.read_text(encoding="utf-8")
    assert verdict.region_set == context["region"]


def test_a_vector_signature_for_another_request_fails() -> None:
    """get-vanilla's signature does not verify for post-vanilla's otherwise equal request."""
    key_id, key = _credentials("get-vanilla")
    _, target, headers, _ = _parse_signed_request(
        (VECTORS / "get-vanilla" / "header-signed-request.txt").read_text(encoding="utf-8")
    )
    verdict = verify_sigv4a_request(
        method="POST",
        target=target,
        headers=headers,
        body_sha256=hashlib.sha256(b"").hexdigest(),
        keys={key_id: key},
        now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
        region="us-east-1",
        service="service",
    )
    assert not verdict.ok
    assert verdict.error_type == "InvalidSignatureException"
    assert verdict.message.startswith(_MISMATCH)
