"""The SigV4a signer: AWS's vectors, aws-c-auth's key derivation, awscrt as reference."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
from urllib.parse import quote

import pytest
from awscrt import auth as crt_auth
from awscrt import http as crt_http
from awscrt.crypto import EC
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from proxy.core import sigv4, sigv4a
from tests import sigv4_vectors

SUITE = sigv4_vectors.SUITE.parents[1] / "sigv4a-testsuite" / "v4a"
FUNCTION_HOST = "abc123xyz.lambda-url.eu-central-1.on.aws"
AMZ_DATE = "20261121T101500Z"
ACCESS_KEY, SECRET_KEY = "AKIDEXAMPLE", "secret/key+"


def _names() -> list[str]:
    return sorted(path.name for path in SUITE.iterdir() if path.is_dir())


def _load(name: str) -> sigv4_vectors.Case:
    # The v4a cases use the v4 suite's request.txt and context.json format: its loader reads
    # them, given the case folder relative to the v4 suite's root.
    return sigv4_vectors.load(os.path.relpath(SUITE / name, sigv4_vectors.SUITE))


def _vector_key(case: sigv4_vectors.Case) -> tuple[int, int]:
    coordinates = json.loads(case.expected("public-key.json"))
    return int(coordinates["X"], 16), int(coordinates["Y"], 16)


def _verifies(key: tuple[int, int], signature_hex: str, string_to_sign: str) -> bool:
    """ECDSA P-256 over SHA-256 of the string to sign, checked with OpenSSL (``cryptography``)."""
    public = ec.EllipticCurvePublicNumbers(*key, ec.SECP256R1()).public_key()
    try:
        public.verify(
            bytes.fromhex(signature_hex), string_to_sign.encode(), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True


def _signature_of(authorization: str) -> str:
    return authorization.rpartition("Signature=")[2]


def _signed_session_token(case: sigv4_vectors.Case) -> str | None:
    token = case.credentials.get("token")
    return None if case.context.get("omit_session_token") else token


@pytest.mark.parametrize("name", _names())
def test_aws_test_suite_header_vector(name: str) -> None:
    """Each v4a case gives its canonical request and string to sign; the signature verifies."""
    case = _load(name)
    headers = [
        *case.headers,
        ("X-Amz-Date", case.amz_date),
        ("X-Amz-Region-Set", str(case.context["region"])),
    ]
    if token := _signed_session_token(case):
        headers.append(("X-Amz-Security-Token", token))
    payload_hash = hashlib.sha256(case.body).hexdigest()
    if case.context["sign_body"]:
        headers.append(("X-Amz-Content-Sha256", payload_hash))
    path, _, query = case.target.partition("?")

    signed = sigv4a.sign(
        method=case.method,
        path=path,
        query=query,
        headers=headers,
        payload_hash=payload_hash,
        access_key=case.credentials["access_key_id"],
        secret_key=case.credentials["secret_access_key"],
        service=str(case.context["service"]),
        amz_date=case.amz_date,
        normalize=bool(case.context["normalize"]),
    )

    assert signed.canonical_request == case.expected("header-canonical-request.txt")
    assert signed.string_to_sign == case.expected("header-string-to-sign.txt")
    unsigned_part = signed.authorization.rpartition("Signature=")[0]
    assert f"Authorization:{unsigned_part}Signature=" in case.expected("header-signed-request.txt")
    assert _verifies(_vector_key(case), _signature_of(signed.authorization), signed.string_to_sign)


@pytest.mark.parametrize("name", _names())
def test_aws_test_suite_presigned_query_vector(name: str) -> None:
    """The presigned-URL variant: X-Amz-* parameters in the query, only the request's headers."""
    case = _load(name)
    credentials = case.credentials
    scope = f"{case.amz_date[:8]}/{case.context['service']}/aws4_request"
    presign = {
        "X-Amz-Algorithm": sigv4a.ALGORITHM,
        "X-Amz-Credential": f"{credentials['access_key_id']}/{scope}",
        "X-Amz-Date": case.amz_date,
        "X-Amz-Expires": str(case.context["expiration_in_seconds"]),
        "X-Amz-Region-Set": str(case.context["region"]),
        "X-Amz-SignedHeaders": sigv4.canonical_headers(case.headers)[1],
    }
    if token := _signed_session_token(case):
        presign["X-Amz-Security-Token"] = token
    path, _, query = case.target.partition("?")
    query = "&".join(
        [part for part in (query,) if part]
        + [f"{name_}={quote(value, safe='')}" for name_, value in presign.items()]
    )

    signed = sigv4a.sign(
        method=case.method,
        path=path,
        query=query,
        headers=case.headers,
        payload_hash=hashlib.sha256(case.body).hexdigest(),
        access_key=credentials["access_key_id"],
        secret_key=credentials["secret_access_key"],
        service=str(case.context["service"]),
        amz_date=case.amz_date,
        normalize=bool(case.context["normalize"]),
    )

    assert signed.canonical_request == case.expected("query-canonical-request.txt")
    assert signed.string_to_sign == case.expected("query-string-to-sign.txt")
    assert _verifies(_vector_key(case), _signature_of(signed.authorization), signed.string_to_sign)


@pytest.mark.parametrize("name", _names())
def test_the_vectors_own_signatures_verify(name: str) -> None:
    """The suite's signatures (in *-signature.txt and in the signed requests) pass the verifier."""
    case = _load(name)
    key = _vector_key(case)
    for variant in ("header", "query"):
        string_to_sign = case.expected(f"{variant}-string-to-sign.txt")
        signed_request = case.expected(f"{variant}-signed-request.txt")
        in_request = signed_request.partition("Signature=")[2].split()[0].split("&")[0]
        assert _verifies(key, case.expected(f"{variant}-signature.txt"), string_to_sign)
        assert _verifies(key, in_request, string_to_sign)
        assert not _verifies(key, in_request, string_to_sign + "x")


@pytest.mark.parametrize("name", _names())
def test_derived_public_key_matches_the_vector(name: str) -> None:
    """The key derived from the case's credentials has the case's public key."""
    case = _load(name)
    credentials = case.credentials
    derived = sigv4a.public_key(credentials["access_key_id"], credentials["secret_access_key"])
    assert derived == _vector_key(case)


def test_key_derivation_known_answer() -> None:
    """aws-c-auth's fixed derivation case (tests/key_derivation_tests.c): private and public key."""
    key = sigv4a.signing_key("AKISORANDOMAASORANDOM", "q+jcrXGc+0zWN6uzclKVhvMmUsIfRPa4rlRandom")
    public = key.public_key().public_numbers()

    private_value = key.private_numbers().private_value
    assert private_value == 0x7FD3BD010C0D9C292141C2B77BFBDE1042C92E6836FFF749D1269EC890FCA1BD
    assert public.x == 0x15D242CEEBF8D8169FD6A8B5A746C41140414C3B07579038DA06AF89190FFFCB
    assert public.y == 0x0515242CEDD82E94799482E4C0514B505AFCCF2C0C98D6A553BF539F424C5EC0


def test_a_rejected_candidate_moves_on_to_the_next_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KDF output over N - 2 is skipped; the next counter byte's output, plus one, is the key."""
    access_key, secret = "AKISORANDOMAASORANDOM", "q+jcrXGc+0zWN6uzclKVhvMmUsIfRPa4rlRandom"
    # The HMAC input for counter 2, spelled out: i = 1, the label, 0x00, the access key id,
    # the counter byte, L = 256 bits.
    fixed_input = (
        b"\x00\x00\x00\x01AWS4-ECDSA-P256-SHA256\x00AKISORANDOMAASORANDOM\x02\x00\x00\x01\x00"
    )
    candidate_2 = int.from_bytes(hmac.digest(f"AWS4A{secret}".encode(), fixed_input, "sha256"))
    candidate_1 = sigv4a._private_value(access_key, secret) - 1
    assert candidate_2 < candidate_1  # so lowering the bound below counter 1's keeps counter 2's

    monkeypatch.setattr(sigv4a, "_LARGEST_CANDIDATE", candidate_1 - 1)
    assert sigv4a._private_value(access_key, secret) == candidate_2 + 1


def test_key_derivation_gives_up_after_254_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """When every counter's candidate is over the bound, derivation fails rather than loops."""
    monkeypatch.setattr(sigv4a, "_LARGEST_CANDIDATE", -1)
    with pytest.raises(ValueError, match="254 KDF rounds"):
        sigv4a._private_value("AKIDEXAMPLE", "secret")


def test_signing_key_is_derived_once_per_key_pair() -> None:
    """The KDF and the scalar multiplication run once per (access key, secret)."""
    sigv4a.signing_key.cache_clear()
    first = sigv4a.signing_key(ACCESS_KEY, SECRET_KEY)
    again = sigv4a.signing_key(ACCESS_KEY, SECRET_KEY)
    other = sigv4a.signing_key("AKIDOTHER", SECRET_KEY)

    assert first is again
    assert sigv4a.public_key("AKIDOTHER", SECRET_KEY) != sigv4a.public_key(ACCESS_KEY, SECRET_KEY)
    assert other is not first
    assert sigv4a.signing_key.cache_info().misses == 2


def _minimal(
    *, method: str = "GET", path: str = "/", query: str = "", token: str | None, region_set: str
) -> tuple[sigv4.Signature, dict[str, str]]:
    return sigv4a.sign_minimal(
        method=method,
        path=path,
        query=query,
        payload_hash=sigv4.EMPTY_SHA256,
        host=FUNCTION_HOST,
        region_set=region_set,
        service="lambda",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        token=token,
        amz_date=AMZ_DATE,
    )


_SENT = ["x-amz-content-sha256", "x-amz-date", "x-amz-region-set"]
_SIGNED = "host;x-amz-content-sha256;x-amz-date;x-amz-region-set"


@pytest.mark.parametrize(
    ("token", "sent_names", "signed_headers"),
    [
        (None, [*_SENT, "Authorization"], _SIGNED),
        (
            "FwoGZXIvYXdzEBYaDH+token/==",
            [*_SENT, "x-amz-security-token", "Authorization"],
            f"{_SIGNED};x-amz-security-token",
        ),
    ],
)
def test_minimal_signing_headers_and_authorization(
    token: str | None, sent_names: list[str], signed_headers: str
) -> None:
    """sign_minimal returns the headers to send and a region-less scope in Authorization."""
    signed, sent = _minimal(token=token, region_set="us-east-1,eu-west-1")

    assert list(sent) == sent_names
    assert sent["x-amz-region-set"] == "us-east-1,eu-west-1"
    assert sent["Authorization"] == (
        f"AWS4-ECDSA-P256-SHA256 Credential={ACCESS_KEY}/20261121/lambda/aws4_request, "
        f"SignedHeaders={signed_headers}, Signature={_signature_of(signed.authorization)}"
    )
    assert signed.string_to_sign.split("\n")[:3] == [
        "AWS4-ECDSA-P256-SHA256",
        AMZ_DATE,
        "20261121/lambda/aws4_request",
    ]


def test_signatures_are_randomised_and_each_verifies() -> None:
    """Two signatures of the same request differ (ECDSA's nonce) and both verify."""
    key = sigv4a.public_key(ACCESS_KEY, SECRET_KEY)
    first, _ = _minimal(token=None, region_set="*")
    second, _ = _minimal(token=None, region_set="*")

    assert first.string_to_sign == second.string_to_sign
    assert first.authorization != second.authorization
    for signed in (first, second):
        assert _verifies(key, _signature_of(signed.authorization), signed.string_to_sign)


_segment = st.text(
    alphabet=st.sampled_from("abcXYZ019-._~!$&'()*+,;=:@ %/é"), min_size=0, max_size=8
)
_param = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
_token = st.none() | st.just("FwoGZXIvYXdzEBYaDH+token/==")
_region_set = st.sampled_from(["*", "us-east-1", "us-east-1,eu-west-1"])


def _wire(
    segments: list[str], params: list[tuple[str, str]], *, safe: str = "!$&'()*+,;=:@"
) -> tuple[str, str]:
    """A path and query as a client sends them: each segment and parameter percent-encoded."""
    path = "/" + "/".join(quote(segment, safe=safe) for segment in segments)
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    return path, query


@given(
    segments=st.lists(_segment, max_size=4),
    params=st.lists(st.tuples(_param, _param), max_size=4),
    raw_query=st.text(alphabet="ab=&~-._+!*", max_size=12),
    token=_token,
    region_set=_region_set,
    method=st.sampled_from(["GET", "POST"]),
)
def test_minimal_signing_equals_the_general_signer(
    segments: list[str],
    params: list[tuple[str, str]],
    raw_query: str,
    token: str | None,
    region_set: str,
    method: str,
) -> None:
    """sign_minimal signs what sign signs over the same five headers (signatures aside)."""
    path, encoded = _wire(segments, params)
    for query in (encoded, raw_query):  # escaped, and raw ("=" in values, "+", "&&")
        fast, sent = _minimal(
            method=method, path=path, query=query, token=token, region_set=region_set
        )
        general = sigv4a.sign(
            method=method,
            path=path,
            query=query,
            headers=[("host", FUNCTION_HOST), *((k, v) for k, v in sent.items() if k[0] == "x")],
            payload_hash=sigv4.EMPTY_SHA256,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            service="lambda",
            amz_date=AMZ_DATE,
        )
        assert fast.canonical_request == general.canonical_request
        assert fast.string_to_sign == general.string_to_sign
        assert fast.signed_headers == general.signed_headers
        assert (
            fast.authorization.rpartition("Signature=")[0]
            == general.authorization.rpartition("Signature=")[0]
        )


def _crt_signed(
    *, method: str, path: str, query: str, body: bytes, token: str | None, region_set: str
) -> dict[str, str]:
    """The headers awscrt (aws-c-auth's SigV4a, its own key derivation) adds to the request."""
    target = f"{path}?{query}" if query else path
    request = crt_http.HttpRequest(method, target, crt_http.HttpHeaders([("host", FUNCTION_HOST)]))
    config = crt_auth.AwsSigningConfig(
        algorithm=crt_auth.AwsSigningAlgorithm.V4_ASYMMETRIC,
        signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=crt_auth.AwsCredentialsProvider.new_static(
            ACCESS_KEY, SECRET_KEY, token
        ),
        region=region_set,
        service="lambda",
        date=datetime.datetime(2026, 11, 21, 10, 15, tzinfo=datetime.UTC),
        signed_body_value=hashlib.sha256(body).hexdigest(),
        signed_body_header_type=crt_auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
    )
    signed = crt_auth.aws_sign_request(request, config).result(timeout=10)
    return {str(name).lower(): str(value) for name, value in signed.headers}


def _crt_verifies(key: tuple[int, int], signature_hex: str, string_to_sign: str) -> bool:
    """ECDSA verification by awscrt's own crypto (aws-c-cal), not OpenSSL's ``cryptography``."""
    public = ec.EllipticCurvePublicNumbers(*key, ec.SECP256R1()).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(string_to_sign.encode()).digest()
    return bool(EC.new_key_from_der_data(der).verify(digest, bytes.fromhex(signature_hex)))


@given(
    segments=st.lists(_segment, max_size=5),
    params=st.lists(st.tuples(_param, _param), max_size=5),
    body=st.binary(max_size=64),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    token=_token,
    region_set=_region_set,
)
def test_agrees_with_awscrt(
    segments: list[str],
    params: list[tuple[str, str]],
    body: bytes,
    method: str,
    token: str | None,
    region_set: str,
) -> None:
    """awscrt's signature verifies over our string to sign with our derived key, and ours
    verifies with awscrt's ECDSA: the same canonical request, string to sign and key."""
    # awscrt's URI parser rejects a raw ":/" in a path (it looks for a scheme): ":" goes as %3A.
    path, query = _wire(segments, params, safe="!$&'()*+,;=@")
    ours, sent = sigv4a.sign_minimal(
        method=method,
        path=path,
        query=query,
        payload_hash=hashlib.sha256(body).hexdigest(),
        host=FUNCTION_HOST,
        region_set=region_set,
        service="lambda",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        token=token,
        amz_date=AMZ_DATE,
    )
    theirs = _crt_signed(
        method=method, path=path, query=query, body=body, token=token, region_set=region_set
    )
    key = sigv4a.public_key(ACCESS_KEY, SECRET_KEY)

    assert {name: theirs[name.lower()] for name in sent if name != "Authorization"} == {
        name: value for name, value in sent.items() if name != "Authorization"
    }
    crt_unsigned, _, crt_signature = theirs["authorization"].rpartition("Signature=")
    assert crt_unsigned == sent["Authorization"].rpartition("Signature=")[0]
    assert _verifies(key, crt_signature, ours.string_to_sign)
    assert _crt_verifies(key, _signature_of(ours.authorization), ours.string_to_sign)
