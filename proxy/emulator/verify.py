"""Check a request's SigV4 Authorization header as a Lambda function URL with AWS_IAM auth does.

Pure: no I/O, no clock (``now`` is passed in). The canonical request, string to sign and
signature come from botocore's ``SigV4Auth``, which shares no code with ``proxy/sigv4.py``;
the only canonicalisation written here is the strict query form, because botocore leaves a
query that arrives inside the URL un-encoded. The key lookup, the body and target checks and the
canonical request are shared with the SigV4a verdict (``sigv4a_verify.py``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from proxy.emulator.authorization import (
    ALGORITHM,
    ParsedAuthorization,
    check_scope,
    check_skew,
    parse_amz_date,
    parse_authorization,
)

__all__ = [
    "ACCESS_DENIED",
    "EXPIRED_TOKEN",
    "INCOMPLETE_SIGNATURE",
    "INVALID_SIGNATURE",
    "SIGNATURE_MISMATCH",
    "UNRECOGNIZED_CLIENT",
    "Key",
    "ReferenceSigner",
    "SignedParts",
    "Verdict",
    "canonical_query",
    "check_body_and_target",
    "find_key",
    "first_header",
    "read_authorization",
    "reference_request",
    "refusal",
    "verify_request",
]

ACCESS_DENIED = "AccessDeniedException"
EXPIRED_TOKEN = "ExpiredTokenException"  # noqa: S105 (an error type, not a token)
INCOMPLETE_SIGNATURE = "IncompleteSignatureException"
INVALID_SIGNATURE = "InvalidSignatureException"
UNRECOGNIZED_CLIENT = "UnrecognizedClientException"

_INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105 (a message)
# AWS's wording, without a final full stop.
_EXPIRED_TOKEN = "The security token included in the request is expired"  # noqa: S105 (a message)
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details.\n\n"
    "The Canonical String for this request should have been\n'{canonical}'\n\n"
    "The String-to-Sign should have been\n'{string_to_sign}'\n"
)
# botocore reads only the path and query of the URL it is given; the host part is a
# placeholder so that a hostile Host header can never change how the URL is split.
_PLACEHOLDER_ORIGIN = "https://verifier.invalid"


@dataclass(frozen=True, slots=True, repr=False)
class Key:
    """The secret half of one credential the function accepts; unprintable.

    ``expires_at`` is when temporary credentials stop working (a naive value is taken as UTC);
    None means they never do.
    """

    secret_access_key: str
    session_token: str | None = None
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        token = "None" if self.session_token is None else "'***'"
        # The expiry is no secret and helps when a key is refused; shown only when there is one.
        expires = "" if self.expires_at is None else f", expires_at={self.expires_at!r}"
        return f"Key(secret_access_key='***', session_token={token}{expires})"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the function URL decided about one request.

    ``algorithm`` is the signing algorithm that was verified (set when ``ok``); ``region_set``
    the X-Amz-Region-Set a SigV4a signature covered.
    """

    ok: bool
    error_type: str | None
    message: str
    access_key_id: str | None = None
    canonical_request: str | None = None
    string_to_sign: str | None = None
    algorithm: str | None = None
    region_set: str | None = None


def canonical_query(raw_query: str) -> str:
    """The SigV4 canonical form of a raw (still percent-encoded) query string.

    Each part is decoded to bytes and re-encoded strictly, so ``%2f``, ``/`` and ``%2F``
    all become ``%2F``; ``+`` stays a literal plus (``%2B``), never a space.
    """
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_strict_encode(key), _strict_encode(value)))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _strict_encode(component: str) -> str:
    # quote() leaves exactly A-Za-z0-9-_.~ alone when safe is empty.
    return quote(unquote_to_bytes(component), safe="")


class ReferenceSigner(SigV4Auth):
    """botocore's SigV4, limited to the headers the client says it signed.

    Its ``canonical_request`` is also SigV4a's, whose canonical request is SigV4's.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        region: str,
        service: str,
        signed_names: Sequence[str],
        body_sha256: str,
    ) -> None:
        super().__init__(credentials, service, region)
        self._signed_names = signed_names
        self._body_sha256 = body_sha256

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        # botocore would pick every header except its own blacklist; the verifier must use
        # exactly the client's SignedHeaders list. A listed header that never arrived is
        # canonicalised with an empty value, so the mismatch message shows it.
        selected = HTTPHeaders()
        for name in self._signed_names:
            for value in request.headers.get_all(name) or [""]:
                selected[name] = value
        return selected

    def payload(self, request: AWSRequest) -> str:
        # The body itself is not handed to botocore; its hash is all SigV4 needs.
        return self._body_sha256


def verify_request(
    *,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body_sha256: str,
    keys: Mapping[str, Key],
    now: datetime,
    region: str,
    service: str = "lambda",
) -> Verdict:
    """Decide whether one received request is correctly signed with SigV4 for ``service``.

    ``target`` is the raw request target as received (``/path?query``, still encoded).
    """
    signed = read_authorization(headers)
    if isinstance(signed, Verdict):
        return signed
    parsed, amz_date = signed.parsed, signed.amz_date
    key_id = parsed.access_key_id
    key = find_key(keys, key_id=key_id, headers=headers, now=now)
    if isinstance(key, Verdict):
        return key

    problem = check_scope(parsed, amz_date=amz_date, region=region, service=service)
    problem = problem or check_skew(signed_at=signed.signed_at, now=now)
    problem = problem or check_body_and_target(
        target=target, headers=headers, body_sha256=body_sha256
    )
    if problem is not None:
        return refusal(INVALID_SIGNATURE, problem, access_key_id=key_id)

    request = reference_request(method=method, target=target, headers=headers, amz_date=amz_date)
    signer = ReferenceSigner(
        Credentials(key_id, key.secret_access_key, key.session_token),
        region=region,
        service=service,
        signed_names=parsed.signed_headers,
        body_sha256=body_sha256,
    )
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)

    provided = parsed.signature.encode("utf-8", "backslashreplace")
    if not hmac.compare_digest(expected.encode("ascii"), provided):
        message = SIGNATURE_MISMATCH.format(canonical=canonical, string_to_sign=string_to_sign)
        return refusal(
            INVALID_SIGNATURE,
            message,
            access_key_id=key_id,
            canonical_request=canonical,
            string_to_sign=string_to_sign,
        )
    return Verdict(
        ok=True,
        error_type=None,
        message="Signature verified.",
        access_key_id=key_id,
        canonical_request=canonical,
        string_to_sign=string_to_sign,
        algorithm=ALGORITHM,
    )


@dataclass(frozen=True, slots=True)
class SignedParts:
    """What a well-formed signed request announces: its Authorization and its X-Amz-Date."""

    parsed: ParsedAuthorization
    amz_date: str
    signed_at: datetime


def read_authorization(
    headers: Sequence[tuple[str, str]], *, algorithm: str = ALGORITHM
) -> SignedParts | Verdict:
    """The Authorization header (of ``algorithm``) and X-Amz-Date, or the refusal of a request
    without them or with a malformed one, or one whose signature does not cover Host."""
    authorization = first_header(headers, "authorization")
    if authorization is None:
        return refusal(ACCESS_DENIED, "Forbidden")
    parsed = parse_authorization(authorization, algorithm=algorithm)
    if isinstance(parsed, str):
        return refusal(INCOMPLETE_SIGNATURE, parsed)
    amz_date = first_header(headers, "x-amz-date")
    if amz_date is None:
        return refusal(
            INCOMPLETE_SIGNATURE,
            "Authorization header requires existence of a 'X-Amz-Date' header.",
        )
    signed_at = parse_amz_date(amz_date)
    if isinstance(signed_at, str):
        return refusal(INCOMPLETE_SIGNATURE, signed_at)
    if "host" not in parsed.signed_headers:
        return refusal(
            INCOMPLETE_SIGNATURE,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            access_key_id=parsed.access_key_id,
        )
    return SignedParts(parsed=parsed, amz_date=amz_date, signed_at=signed_at)


def find_key(
    keys: Mapping[str, Key],
    *,
    key_id: str,
    headers: Sequence[tuple[str, str]],
    now: datetime,
) -> Key | Verdict:
    """The key that ``key_id`` names, or the refusal when it is unknown, its session token
    is not the one sent, or it has expired."""
    key = keys.get(key_id)
    if key is None or not _token_matches(key, first_header(headers, "x-amz-security-token")):
        return refusal(UNRECOGNIZED_CLIENT, _INVALID_TOKEN, access_key_id=key_id)
    # The credentials are judged before the signature made with them, as AWS does: an
    # expired key is refused however well it signed.
    if key.expires_at is not None and _as_utc(key.expires_at) <= _as_utc(now):
        return refusal(EXPIRED_TOKEN, _EXPIRED_TOKEN, access_key_id=key_id)
    return key


def check_body_and_target(
    *, target: str, headers: Sequence[tuple[str, str]], body_sha256: str
) -> str | None:
    """The InvalidSignatureException message when the announced body hash is not the body's
    or the target is not ``/path?query``, else None."""
    content_sha256 = first_header(headers, "x-amz-content-sha256")
    if content_sha256 is not None and content_sha256 != body_sha256:
        return "The provided x-amz-content-sha256 header does not match what was computed."
    if not target.startswith("/") or "#" in target:
        # Only origin-form targets reach a function URL; a fragment would also make
        # botocore's URL split disagree with what was on the wire.
        return f"The request target must be '/path?query' without a fragment, got '{target}'."
    return None


def reference_request(
    *, method: str, target: str, headers: Sequence[tuple[str, str]], amz_date: str
) -> AWSRequest:
    """The received request as botocore's signers read it: the strict canonical query, every
    header (repeats kept) and the signing time; ``target`` must be checked already."""
    path, _, raw_query = target.partition("?")
    query = canonical_query(raw_query)
    request = AWSRequest(
        method=method, url=_PLACEHOLDER_ORIGIN + path + (f"?{query}" if query else "")
    )
    for name, value in headers:
        request.headers[name] = value  # HTTPHeaders appends: repeated headers stay repeated
    request.context["timestamp"] = amz_date
    return request


def refusal(
    error_type: str,
    message: str,
    *,
    access_key_id: str | None = None,
    canonical_request: str | None = None,
    string_to_sign: str | None = None,
) -> Verdict:
    """A verdict refusing the request (``message`` is what Lambda's JSON error says)."""
    return Verdict(
        ok=False,
        error_type=error_type,
        message=message,
        access_key_id=access_key_id,
        canonical_request=canonical_request,
        string_to_sign=string_to_sign,
    )


def first_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (lower case), stripped; None when it is absent."""
    for header_name, value in headers:
        if header_name.lower() == name:
            return value.strip()
    return None


def _as_utc(moment: datetime) -> datetime:
    # A naive time is taken to be UTC, as the skew check does.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _token_matches(key: Key, provided: str | None) -> bool:
    # A long-term key must not come with a token, and a temporary one must come with its own.
    if key.session_token is None or provided is None:
        return key.session_token is None and provided is None
    return hmac.compare_digest(
        key.session_token.encode("utf-8"), provided.encode("utf-8", "backslashreplace")
    )
