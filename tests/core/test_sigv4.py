"""The pure signer: AWS's known-answer vectors, Lambda specifics, botocore as reference."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from proxy.core import sigv4
from tests import sigv4_vectors

FUNCTION_HOST = "abc123xyz.lambda-url.eu-central-1.on.aws"
AMZ_DATE = "20261121T101500Z"


@pytest.mark.parametrize("name", sigv4_vectors.names())
def test_aws_test_suite_vector(name: str) -> None:
    """Each AWS test-suite case gives its canonical request, string to sign and signature."""
    case = sigv4_vectors.load(name)
    credentials = case.credentials
    headers = [*case.headers, ("X-Amz-Date", case.amz_date)]
    token = credentials.get("token")
    if token and not case.context.get("omit_session_token"):
        headers.append(("X-Amz-Security-Token", token))
    payload_hash = hashlib.sha256(case.body).hexdigest()
    if case.context["sign_body"]:
        headers.append(("X-Amz-Content-Sha256", payload_hash))
    path, _, query = case.target.partition("?")

    signed = sigv4.sign(
        method=case.method,
        path=path,
        query=query,
        headers=headers,
        payload_hash=payload_hash,
        access_key=credentials["access_key_id"],
        secret_key=credentials["secret_access_key"],
        region=str(case.context["region"]),
        service=str(case.context["service"]),
        amz_date=case.amz_date,
        normalize=bool(case.context["normalize"]),
    )

    assert signed.canonical_request == case.expected("header-canonical-request.txt")
    assert signed.string_to_sign == case.expected("header-string-to-sign.txt")
    assert signed.authorization.endswith(case.expected("header-signature.txt"))
    assert f"Authorization:{signed.authorization}" in case.expected("header-signed-request.txt")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/a%20b", "/a%2520b"),
        ("/a%2Fb", "/a%252Fb"),
        ("/a:b@c!$'()*+,;=", "/a%3Ab%40c%21%24%27%28%29%2A%2B%2C%3B%3D"),
        ("/a/./b/../c", "/a/c"),
        ("//a//b/", "/a/b/"),
        ("/a/..", "/"),
        ("/../../a", "/a"),
        ("/~user/x-y_z.json", "/~user/x-y_z.json"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    """The wire path is normalised and encoded once more (the non-S3 rule)."""
    assert sigv4.canonical_uri(path) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("a", "a="),
        ("b=1&a=2", "a=2&b=1"),
        ("a=b&a=a", "a=a&a=b"),
        ("a=%2f", "a=%2F"),
        ("a=+", "a=%2B"),
        ("a=b%20c", "a=b%20c"),
        ("a=%7E%41", "a=~A"),
        ("&&a=1&", "a=1"),
        ("a==b", "a=%3Db"),
        ("a=b/c?d", "a=b%2Fc%3Fd"),
        ("%E1%88%B4=bar", "%E1%88%B4=bar"),
        ("k=%FF", "k=%FF"),
    ],
)
def test_canonical_query(query: str, expected: str) -> None:
    """Names and values are decoded, strictly re-encoded and sorted; ``+`` is a literal plus."""
    assert sigv4.canonical_query(query) == expected


def test_signing_key_is_cached_per_scope() -> None:
    """The four HMACs run once per (secret, date, region, service)."""
    sigv4.signing_key.cache_clear()
    first = sigv4.signing_key("secret", "20261121", "eu-central-1", "lambda")
    again = sigv4.signing_key("secret", "20261121", "eu-central-1", "lambda")
    other_day = sigv4.signing_key("secret", "20261122", "eu-central-1", "lambda")

    assert first is again
    assert other_day != first
    assert sigv4.signing_key.cache_info().hits == 1


def test_format_amz_date() -> None:
    """X-Amz-Date is UTC in YYYYMMDDTHHMMSSZ form."""
    assert sigv4.format_amz_date(1440938160) == "20150830T123600Z"


def _botocore_reference(
    *, method: str, path: str, params: list[tuple[str, str]], body: bytes, token: str | None
) -> tuple[str, str]:
    """Canonical request and Authorization as botocore computes them for a Lambda function URL."""
    request = AWSRequest(
        method=method,
        url=f"https://{FUNCTION_HOST}{path}",
        params=params,  # type: ignore[arg-type]  # a list keeps repeated names; botocore takes it
        data=body,
        headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
    )
    request.context["timestamp"] = AMZ_DATE
    auth = SigV4Auth(Credentials("AKIDEXAMPLE", "secret/key+", token), "lambda", "eu-central-1")
    # add_auth would stamp the wall clock; these steps sign at the fixed AMZ_DATE instead.
    auth._modify_request_before_signing(request)  # type: ignore[attr-defined]
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    return canonical, signature


def _ours(*, method: str, path: str, query: str, body: bytes, token: str | None) -> sigv4.Signature:
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = [
        ("host", FUNCTION_HOST),
        ("x-amz-content-sha256", payload_hash),
        ("x-amz-date", AMZ_DATE),
    ]
    if token:
        headers.append(("x-amz-security-token", token))
    return sigv4.sign(
        method=method,
        path=path,
        query=query,
        headers=headers,
        payload_hash=payload_hash,
        access_key="AKIDEXAMPLE",
        secret_key="secret/key+",
        region="eu-central-1",
        service="lambda",
        amz_date=AMZ_DATE,
    )


_segment = st.text(
    alphabet=st.sampled_from("abcXYZ019-._~!$&'()*+,;=:@ %/é"), min_size=0, max_size=8
)
_param = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)


@given(
    segments=st.lists(_segment, max_size=5),
    params=st.lists(st.tuples(_param, _param), max_size=5),
    body=st.binary(max_size=64),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    token=st.none() | st.just("FwoGZXIvYXdzEBYaDH+token/=="),
)
def test_matches_botocore_for_lambda(
    segments: list[str],
    params: list[tuple[str, str]],
    body: bytes,
    method: str,
    token: str | None,
) -> None:
    """For random paths, queries and bodies the signature equals botocore's for service lambda."""
    # The wire path: each segment percent-encoded as a client would send it.
    path = "/" + "/".join(quote(segment, safe="!$&'()*+,;=:@") for segment in segments)
    # The wire query: strictly encoded pairs, which botocore's params encoding also produces.
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)

    ours = _ours(method=method, path=path, query=query, body=body, token=token)
    canonical, signature = _botocore_reference(
        method=method, path=path, params=params, body=body, token=token
    )

    assert ours.canonical_request == canonical
    assert ours.authorization.endswith(f"Signature={signature}")


@given(
    segments=st.lists(_segment, max_size=4),
    params=st.lists(st.tuples(_param, _param), max_size=4),
    raw_query=st.text(alphabet="ab=&~-._+!*", max_size=12),
    token=st.none() | st.just("FwoGZXIvYXdzEBYaDH+token/=="),
    method=st.sampled_from(["GET", "POST"]),
)
def test_minimal_signing_equals_the_general_signer(
    segments: list[str],
    params: list[tuple[str, str]],
    raw_query: str,
    token: str | None,
    method: str,
) -> None:
    """sign_minimal, the proxy's fast path, signs exactly as sign does with the same headers."""
    path = "/" + "/".join(quote(segment, safe="!$&'()*+,;=:@") for segment in segments)
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    for query in (encoded, raw_query):  # escaped, and raw ("=" in values, "+", "&&")
        fast, sent = sigv4.sign_minimal(
            method=method,
            path=path,
            query=query,
            payload_hash=sigv4.EMPTY_SHA256,
            host=FUNCTION_HOST,
            region="eu-central-1",
            service="lambda",
            access_key="AKIDEXAMPLE",
            secret_key="secret/key+",
            token=token,
            amz_date=AMZ_DATE,
        )
        general = _ours(method=method, path=path, query=query, body=b"", token=token)
        assert fast == general
        assert sent["Authorization"] == general.authorization
