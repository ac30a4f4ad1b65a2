"""Known-answer tests for the emulator's SigV4 verifier: AWS vectors, tampering, query and paths."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import normalize_url_path

from proxy.emulator.verify import (
    ACCESS_DENIED,
    INCOMPLETE_SIGNATURE,
    INVALID_SIGNATURE,
    UNRECOGNIZED_CLIENT,
    Key,
    Verdict,
    canonical_query,
    verify_request,
)

VECTORS = Path(__file__).parents[1] / "data" / "sigv4-testsuite" / "v4"
FUNCTION_HOST = "abc123xyz.lambda-url.eu-central-1.on.aws"
REGION = "eu-central-1"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
VECTOR_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # every vector's context.json


@dataclass(frozen=True)
class Call:
    """The arguments of one verify_request call, so a test can change one of them."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body_sha256: str
    keys: dict[str, Key]
    now: datetime
    region: str
    service: str

    def verify(self) -> Verdict:
        return verify_request(
            method=self.method,
            target=self.target,
            headers=self.headers,
            body_sha256=self.body_sha256,
            keys=self.keys,
            now=self.now,
            region=self.region,
            service=self.service,
        )

    def with_header(self, name: str, value: str | None) -> Call:
        """This call with header ``name`` replaced (or removed when value is None)."""
        kept = tuple((n, v) for n, v in self.headers if n.lower() != name.lower())
        added = () if value is None else ((name, value),)
        return dataclasses.replace(self, headers=kept + added)

    def header(self, name: str) -> str:
        return next(v for n, v in self.headers if n.lower() == name.lower())


def _parse_signed_request(text: str) -> tuple[str, str, tuple[tuple[str, str], ...], bytes]:
    """(method, target, headers, body) from a vector's header-signed-request.txt."""
    head, _, body = text.partition("\n\n")
    request_line, *header_lines = head.split("\n")
    method, rest = request_line.split(" ", 1)
    # The target may hold raw spaces or UTF-8; it stands for the path already on the wire.
    target = rest.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in header_lines:
        if line[:1] in (" ", "\t"):  # obs-fold: a continuation of the previous value
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return method, target, tuple(headers), body.encode("utf-8")


def _context(case: str) -> dict[str, Any]:
    return cast("dict[str, Any]", json.loads((VECTORS / case / "context.json").read_text()))


def _vector_call(case: str) -> Call:
    context = _context(case)
    text = (VECTORS / case / "header-signed-request.txt").read_text(encoding="utf-8")
    method, target, headers, body = _parse_signed_request(text)
    credentials = context["credentials"]
    # post-sts-header-after sends its token without signing it. We keep the token in the key:
    # like AWS, the verifier checks the token's value on its own (UnrecognizedClient when it
    # is missing or wrong) and the signature over SignedHeaders, so the vector verifies.
    key = Key(credentials["secret_access_key"], credentials.get("token"))
    return Call(
        method=method,
        target=target,
        headers=headers,
        body_sha256=hashlib.sha256(body).hexdigest(),
        keys={credentials["access_key_id"]: key},
        now=datetime.fromisoformat(context["timestamp"]),
        region=context["region"],
        service=context["service"],
    )


def _normalizing_changes_nothing(case: str) -> bool:
    text = (VECTORS / case / "header-signed-request.txt").read_text(encoding="utf-8")
    path = _parse_signed_request(text)[1].partition("?")[0]
    return bool(normalize_url_path(path) == path)


ALL_CASES = sorted(p.name for p in VECTORS.iterdir() if p.is_dir())
LAMBDA_CASES = [c for c in ALL_CASES if _context(c)["normalize"] or _normalizing_changes_nothing(c)]
S3_ONLY_CASES = [c for c in ALL_CASES if c not in LAMBDA_CASES]


def test_vector_selection_covers_the_suite() -> None:
    """The suite is all there, and only the S3-style un-normalized cases are set apart."""
    assert len(ALL_CASES) == 38
    assert len(LAMBDA_CASES) == 32  # 31 with normalize true, plus get-space-unnormalized
    assert all(case.endswith("-unnormalized") for case in S3_ONLY_CASES)


@pytest.mark.parametrize("case", LAMBDA_CASES)
def test_vector_verifies(case: str) -> None:
    """Every vector signed as non-S3 services sign is accepted, with AWS's exact strings."""
    verdict = _vector_call(case).verify()
    assert verdict.error_type is None, verdict.message
    assert verdict.ok
    assert verdict.access_key_id == "AKIDEXAMPLE"
    assert verdict.canonical_request == (VECTORS / case / "header-canonical-request.txt").read_text(
        encoding="utf-8"
    )
    assert verdict.string_to_sign == (VECTORS / case / "header-string-to-sign.txt").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize("case", S3_ONLY_CASES)
def test_unnormalized_vector_is_rejected(case: str) -> None:
    """A signature over a path left un-normalized (S3 style) fails, as Lambda normalizes."""
    verdict = _vector_call(case).verify()
    assert verdict.error_type == INVALID_SIGNATURE
    assert verdict.message.startswith("The request signature we calculated does not match")


def test_unsigned_session_token_must_still_be_right() -> None:
    """post-sts-header-after: the unsigned token is still checked; without it the key is unknown."""
    call = _vector_call("post-sts-header-after")
    assert "x-amz-security-token" not in call.header("Authorization")
    assert call.with_header("X-Amz-Security-Token", None).verify().error_type == UNRECOGNIZED_CLIENT


def _at(call: Call, delta: timedelta) -> Call:
    return dataclasses.replace(call, now=call.now + delta)


@dataclass(frozen=True)
class Tamper:
    """One change to a correctly signed vector, and what the function must answer."""

    id: str
    case: str
    change: Callable[[Call], Call]
    error_type: str | None
    message: str | None = None


TAMPERS = [
    Tamper("untouched", "get-vanilla", lambda c: c, None),
    Tamper(
        "changed path",
        "get-vanilla",
        lambda c: dataclasses.replace(c, target="/x"),
        INVALID_SIGNATURE,
    ),
    Tamper(
        "changed query value",
        "post-vanilla-query",
        lambda c: dataclasses.replace(c, target="/?Param1=value2"),
        INVALID_SIGNATURE,
    ),
    Tamper(
        "changed body, x-amz-content-sha256 left",
        "post-x-www-form-urlencoded",
        lambda c: dataclasses.replace(c, body_sha256=hashlib.sha256(b"Param1=value2").hexdigest()),
        INVALID_SIGNATURE,
        "The provided x-amz-content-sha256 header does not match what was computed.",
    ),
    Tamper(
        "changed body, no x-amz-content-sha256",
        "post-vanilla",
        lambda c: dataclasses.replace(c, body_sha256=hashlib.sha256(b"smuggled").hexdigest()),
        INVALID_SIGNATURE,
    ),
    Tamper(
        "changed signed header value",
        "get-header-value-trim",
        lambda c: c.with_header("My-Header1", "value2"),
        INVALID_SIGNATURE,
    ),
    Tamper(
        "added unsigned header",
        "get-vanilla",
        lambda c: c.with_header("Via", "1.1 abc.cloudfront.net (CloudFront)"),
        None,
    ),
    Tamper(
        "wrong secret",
        "get-vanilla",
        lambda c: dataclasses.replace(c, keys={"AKIDEXAMPLE": Key("not-the-secret")}),
        INVALID_SIGNATURE,
    ),
    Tamper(
        "unknown access key",
        "get-vanilla",
        lambda c: dataclasses.replace(c, keys={"AKIDOTHER": Key("x")}),
        UNRECOGNIZED_CLIENT,
        "The security token included in the request is invalid.",
    ),
    Tamper(
        "session token missing",
        "get-vanilla-with-session-token",
        lambda c: c.with_header("X-Amz-Security-Token", None),
        UNRECOGNIZED_CLIENT,
    ),
    Tamper(
        "session token wrong",
        "get-vanilla-with-session-token",
        lambda c: c.with_header("X-Amz-Security-Token", "forged"),
        UNRECOGNIZED_CLIENT,
    ),
    Tamper(
        "session token sent for a long-term key",
        "get-vanilla-with-session-token",
        lambda c: dataclasses.replace(c, keys={"AKIDEXAMPLE": Key(VECTOR_SECRET)}),
        UNRECOGNIZED_CLIENT,
    ),
    Tamper(
        "wrong region",
        "get-vanilla",
        lambda c: dataclasses.replace(c, region="eu-central-1"),
        INVALID_SIGNATURE,
        "Credential should be scoped to a valid region.",
    ),
    Tamper(
        "wrong service",
        "get-vanilla",
        lambda c: dataclasses.replace(c, service="lambda"),
        INVALID_SIGNATURE,
        "Credential should be scoped to correct service: 'lambda'.",
    ),
    Tamper(
        "scope date differs from X-Amz-Date",
        "get-vanilla",
        lambda c: _at(c.with_header("X-Amz-Date", "20150831T123600Z"), timedelta(days=1)),
        INVALID_SIGNATURE,
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '20150830' != '20150831', from '20150831T123600Z'.",
    ),
    Tamper("5 minutes old", "get-vanilla", lambda c: _at(c, timedelta(minutes=5)), None),
    Tamper(
        "expired by 6 minutes",
        "get-vanilla",
        lambda c: _at(c, timedelta(minutes=6)),
        INVALID_SIGNATURE,
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z "
        "(20150830T124200Z - 5 min.)",
    ),
    Tamper(
        "6 minutes in the future",
        "get-vanilla",
        lambda c: _at(c, timedelta(minutes=-6)),
        INVALID_SIGNATURE,
        "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z "
        "(20150830T123000Z + 5 min.)",
    ),
    Tamper(
        "missing Authorization",
        "get-vanilla",
        lambda c: c.with_header("Authorization", None),
        ACCESS_DENIED,
        "Forbidden",
    ),
    Tamper(
        "missing X-Amz-Date",
        "get-vanilla",
        lambda c: c.with_header("X-Amz-Date", None),
        INCOMPLETE_SIGNATURE,
    ),
    Tamper(
        "X-Amz-Date not in basic format",
        "get-vanilla",
        lambda c: c.with_header("X-Amz-Date", "2015-08-30T12:36:00Z"),
        INCOMPLETE_SIGNATURE,
    ),
    Tamper(
        "Authorization without Signature",
        "get-vanilla",
        lambda c: c.with_header("Authorization", c.header("Authorization").rsplit(",", 1)[0]),
        INCOMPLETE_SIGNATURE,
        "Authorization header requires 'Signature' parameter.",
    ),
    Tamper(
        "Authorization with another algorithm",
        "get-vanilla",
        lambda c: c.with_header("Authorization", "Bearer abc"),
        INCOMPLETE_SIGNATURE,
    ),
    Tamper(
        "credential scope too short",
        "get-vanilla",
        lambda c: c.with_header(
            "Authorization", c.header("Authorization").replace("/us-east-1/service", "")
        ),
        INCOMPLETE_SIGNATURE,
    ),
    Tamper(
        "host not signed",
        "get-vanilla",
        lambda c: c.with_header(
            "Authorization", c.header("Authorization").replace("host;x-amz-date", "x-amz-date")
        ),
        INCOMPLETE_SIGNATURE,
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    ),
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.id for t in TAMPERS])
def test_tampered_vector_gets_the_aws_error(tamper: Tamper) -> None:
    """A changed request gets the error type (and message) a Lambda function URL answers."""
    verdict = tamper.change(_vector_call(tamper.case)).verify()
    assert verdict.error_type == tamper.error_type, verdict.message
    assert verdict.ok is (tamper.error_type is None)
    if tamper.message is not None:
        assert verdict.message == tamper.message


def test_signature_mismatch_message_has_aws_shape() -> None:
    """The mismatch message quotes the canonical request and string to sign like AWS does."""
    call = dataclasses.replace(_vector_call("get-vanilla"), keys={"AKIDEXAMPLE": Key("wrong")})
    verdict = call.verify()
    canonical = (VECTORS / "get-vanilla" / "header-canonical-request.txt").read_text()
    string_to_sign = (VECTORS / "get-vanilla" / "header-string-to-sign.txt").read_text()
    assert verdict.message == (
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. "
        "Consult the service documentation for details.\n\n"
        f"The Canonical String for this request should have been\n'{canonical}'\n\n"
        f"The String-to-Sign should have been\n'{string_to_sign}'\n"
    )


def test_key_repr_hides_secrets() -> None:
    """Neither the secret nor the session token appears in a Key's repr."""
    text = repr(Key("very-secret-value", "very-secret-token"))
    assert "very-secret" not in text
    assert text == "Key(secret_access_key='***', session_token='***')"


def _botocore_signed(
    *, path: str, params: Sequence[tuple[str, str]], wire_query: str | None, method: str = "GET"
) -> Call:
    """A request signed by botocore from decoded ``params``, sent with ``wire_query``."""
    body_sha256 = hashlib.sha256(b"").hexdigest()
    request = AWSRequest(
        method=method,
        url=f"https://{FUNCTION_HOST}{path}",
        headers={"host": FUNCTION_HOST, "x-amz-content-sha256": body_sha256},
        # botocore takes a list of pairs for repeated keys; its stubs only say Mapping.
        params=cast("dict[str, Any]", list(params)),
    )
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", REGION).add_auth(request)
    headers = tuple((name, str(value)) for name, value in request.headers.items())
    signed_at = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    return Call(
        method=method,
        target=path if wire_query is None else f"{path}?{wire_query}",
        headers=headers,
        body_sha256=body_sha256,
        keys={KEY_ID: Key(SECRET)},
        now=signed_at.replace(tzinfo=UTC),
        region=REGION,
        service="lambda",
    )


QUERY_CASES = [
    # id, params botocore signs (decoded), query on the wire, canonical query, verifies
    ("space as %20", [("a", "b c")], "a=b%20c", "a=b%20c", True),
    ("plus is not a space", [("a", "b c")], "a=b+c", "a=b%2Bc", False),
    ("literal plus", [("a", "1+2")], "a=1+2", "a=1%2B2", True),
    ("encoded plus", [("a", "1+2")], "a=1%2B2", "a=1%2B2", True),
    ("lowercase %2f", [("p", "a/b")], "p=a%2fb", "p=a%2Fb", True),
    ("raw slash", [("p", "a/b")], "p=a/b", "p=a%2Fb", True),
    ("equals in value", [("a", "x=y")], "a=x=y", "a=x%3Dy", True),
    ("encoded ampersand", [("a", "x&y")], "a=x%26y", "a=x%26y", True),
    ("repeated keys sorted by value", [("a", "2"), ("a", "1")], "a=2&a=1", "a=1&a=2", True),
    ("bare key", [("a", "")], "a", "a=", True),
    ("empty parts dropped", [("b", "2"), ("a", "1")], "b=2&&a=1&", "a=1&b=2", True),
    (
        "sorted by encoded key",
        [("b", "1"), ("a", "2"), ("A", "3")],
        "b=1&a=2&A=3",
        "A=3&a=2&b=1",
        True,
    ),
    ("utf-8", [("ሴ", "é")], "%E1%88%B4=%C3%A9", "%E1%88%B4=%C3%A9", True),
    ("lowercase utf-8 escapes", [("ሴ", "é")], "%e1%88%b4=%c3%a9", "%E1%88%B4=%C3%A9", True),
    ("no query", [], None, "", True),
]


@pytest.mark.parametrize(
    ("params", "wire_query", "expected_query", "ok"),
    [case[1:] for case in QUERY_CASES],
    ids=[case[0] for case in QUERY_CASES],
)
def test_query_canonicalisation(
    params: list[tuple[str, str]], wire_query: str | None, expected_query: str, ok: bool
) -> None:
    """The wire query is decoded to bytes and re-encoded strictly before it is signed."""
    assert canonical_query(wire_query or "") == expected_query
    verdict = _botocore_signed(path="/q", params=params, wire_query=wire_query).verify()
    assert verdict.ok is ok, verdict.message
    assert verdict.canonical_request is not None
    assert verdict.canonical_request.split("\n")[2] == expected_query


PATH_CASES = [
    # id, path botocore signs, path on the wire, canonical URI, verifies
    ("encoded space is encoded again", "/a%20b", "/a%20b", "/a%2520b", True),
    ("encoded slash is encoded again", "/a%2Fb", "/a%2Fb", "/a%252Fb", True),
    ("utf-8 escapes are encoded again", "/%E1%88%B4", "/%E1%88%B4", "/%25E1%2588%25B4", True),
    ("double slashes collapse", "//a//b/", "//a//b/", "/a/b/", True),
    ("dot segments go", "/a/./b", "/a/./b", "/a/b", True),
    ("dot-dot segments go", "/a/../b", "/a/../b", "/b", True),
    ("trailing slash kept", "/a/b/", "/a/b/", "/a/b/", True),
    ("root", "/", "/", "/", True),
    ("signed once-encoded, sent encoded", "/a b", "/a%20b", "/a%2520b", False),
]


@pytest.mark.parametrize(
    ("signed_path", "wire_path", "canonical_uri", "ok"),
    [case[1:] for case in PATH_CASES],
    ids=[case[0] for case in PATH_CASES],
)
def test_path_canonicalisation(
    signed_path: str, wire_path: str, canonical_uri: str, ok: bool
) -> None:
    """The wire path is normalized and URI-encoded once more, as non-S3 services do."""
    call = _botocore_signed(path=signed_path, params=[], wire_query=None)
    verdict = dataclasses.replace(call, target=wire_path).verify()
    assert verdict.ok is ok, verdict.message
    assert verdict.canonical_request is not None
    assert verdict.canonical_request.split("\n")[1] == canonical_uri
