"""Pure: the one classifier of an upstream refusal (Lambda's x-amzn-ErrorType and message, or
CloudFront's own reply), what each kind implies, and the one line a user can act on for a 403.

``classify`` names the kind of refusal; the proxy (credential refresh, clock correction, the
403 log line) and `signing-proxy check` (probes, verdicts) decide by that kind alone.
"""

from __future__ import annotations

import json
from enum import Enum, auto
from typing import assert_never

from proxy.model import Route

# Shared with `signing-proxy check`, which says the same things at more length.
PERMISSIONS = (
    "lambda:InvokeFunctionUrl on the function, and lambda:InvokeFunction too for function "
    "URLs created since October 2025"
)
ORIGIN_REQUEST_POLICY = (
    "CloudFront: use the origin request policy AllViewerExceptHostHeader "
    "(b689b0a8-53d0-40ab-baf2-68738e2966ac), not AllViewer: the function URL must receive its "
    "own Host, and this policy forwards Authorization, X-Amz-Date, X-Amz-Content-Sha256 and "
    "X-Amz-Security-Token; no origin access control on this origin (or one with signing "
    "behaviour no-override), so that CloudFront keeps the proxy's signature"
)


class Refusal(Enum):
    """A kind of refusal by the upstream: by Lambda (it sent x-amzn-ErrorType) or by CloudFront."""

    CLOUDFRONT = auto()  # CloudFront's own 403 (its page, no x-amzn-ErrorType)
    ORIGIN_UNREACHABLE = auto()  # CloudFront's own 502/503/504: no answer from the function URL
    SIGNATURE_TIME = auto()  # X-Amz-Date is too far from AWS's clock (expired, not yet valid)
    WRONG_REGION = auto()  # the credential scope names another region than the function's
    WRONG_SERVICE = auto()  # the credential scope names another service than lambda
    SIGNATURE_MISMATCH = auto()  # AWS computed another signature
    INCOMPLETE_SIGNATURE = auto()  # part of the signature did not reach the function URL
    ACCESS_DENIED = auto()  # a valid signature, but no permission to invoke
    UNKNOWN_CREDENTIALS = auto()  # AWS does not know the access key or session token
    EXPIRED_TOKEN = auto()  # the session token has expired
    UNEXPLAINED = auto()  # a 403 with an error type the proxy knows nothing specific about


# Lambda's (and other SigV4 services') error types → the refusal each one is; the message is
# read first, as it may say more (the time, for the _SIGNATURE_KINDS; the scope, for any type).
_SIGNATURE_KINDS = frozenset({"InvalidSignatureException", "SignatureDoesNotMatch"})
_BY_ERROR_TYPE = {
    **dict.fromkeys(_SIGNATURE_KINDS, Refusal.SIGNATURE_MISMATCH),
    "IncompleteSignatureException": Refusal.INCOMPLETE_SIGNATURE,
    "AccessDeniedException": Refusal.ACCESS_DENIED,
    "UnrecognizedClientException": Refusal.UNKNOWN_CREDENTIALS,
    "InvalidClientTokenId": Refusal.UNKNOWN_CREDENTIALS,
    "ExpiredTokenException": Refusal.EXPIRED_TOKEN,
}
# What AWS's message says when the signature's time is off: "Signature expired: 20260101T000000Z
# is now earlier than …", "Signature not yet current: … is still later than …".
_TIME_WORDS = ("Signature expired", "not yet current")
# What it says when the credential scope names the wrong region or service; whatever the type.
_SCOPE_WORDS = (
    ("should be scoped to a valid region", Refusal.WRONG_REGION),
    ("should be scoped to correct service", Refusal.WRONG_SERVICE),
)
# Lambda's authorisation refused these: the function did not run, whatever the method.
_BEFORE_FUNCTION = frozenset(
    {
        Refusal.SIGNATURE_TIME,
        Refusal.WRONG_REGION,
        Refusal.WRONG_SERVICE,
        Refusal.SIGNATURE_MISMATCH,
        Refusal.INCOMPLETE_SIGNATURE,
        Refusal.ACCESS_DENIED,
        Refusal.UNKNOWN_CREDENTIALS,
        Refusal.EXPIRED_TOKEN,
    }
)
# AWS refused the key or the token itself, not what was signed with it.
_CREDENTIALS = frozenset({Refusal.UNKNOWN_CREDENTIALS, Refusal.EXPIRED_TOKEN})


def classify(
    status: int, error_type: str | None, body: bytes | str = b"", *, from_lambda: bool = False
) -> Refusal | None:
    """Which refusal a reply is, or None when it is none (the function answered).

    ``error_type`` is x-amzn-ErrorType as received; ``body`` the reply's body (its JSON
    ``Message`` is read) or the message already read from it; ``from_lambda`` whether the reply
    carries Lambda's x-amzn-RequestId: without it and without an error type, a 403 or a
    502/503/504 is CloudFront's own. An error type AWS refuses with names its refusal whatever
    the status; one the proxy does not know is a refusal only in a 403.
    """
    kind = error_name(error_type)
    if not kind:
        if from_lambda:
            return None
        if status == 403:
            return Refusal.CLOUDFRONT
        if status in (502, 503, 504):
            return Refusal.ORIGIN_UNREACHABLE
        return None
    message = body if isinstance(body, str) else message_of(body)
    if kind in _SIGNATURE_KINDS and any(words in message for words in _TIME_WORDS):
        return Refusal.SIGNATURE_TIME
    for words, refusal in _SCOPE_WORDS:
        if words in message:
            return refusal
    found = _BY_ERROR_TYPE.get(kind)
    if found is None and status == 403:
        return Refusal.UNEXPLAINED
    return found


def before_function(refusal: Refusal | None) -> bool:
    """Whether Lambda refused it while authorising it, so that the function did not run and
    would not for another method either (CloudFront's own refusals may depend on the method)."""
    return refusal in _BEFORE_FUNCTION


def curable_by_fresh_credentials(refusal: Refusal | None) -> bool:
    """Whether AWS refused the access key or session token itself: fresh credentials can cure
    it."""
    return refusal in _CREDENTIALS


def is_time(refusal: Refusal | None) -> bool:
    """Whether AWS refused the signature for its time (expired, or not yet valid)."""
    return refusal is Refusal.SIGNATURE_TIME


def error_name(error_type: str | None) -> str:
    """x-amzn-ErrorType without its namespace; "" when there is none."""
    # Lambda sometimes appends a namespace: "InvalidSignatureException:http://internal…".
    return (error_type or "").partition(":")[0]


def explain_403(*, route: Route, error_type: str | None, body: bytes) -> str:
    """Why a 403 happened and what to change, for the log line that follows it."""
    refusal = classify(403, error_type, body)
    signing = route.signing
    where = (
        f"host {signing.host}, region {signing.region}, service {signing.service}"
        if signing
        else "no signing target"
    )
    match refusal:
        case Refusal.CLOUDFRONT:
            return (
                "403 from CloudFront itself (no x-amzn-ErrorType): check the distribution's WAF "
                "rules and geo restriction; a GET or HEAD with a body is refused; with OAC, "
                "check that the origin access control belongs to this origin"
            )
        case Refusal.WRONG_REGION:
            return (
                f"wrong region in the signature scope ({where}): set sign.region to the "
                "function's region, or use function_url so it is taken from the host"
            )
        case Refusal.WRONG_SERVICE:
            return (
                f"wrong service in the signature scope ({where}): Lambda function URLs use lambda"
            )
        case Refusal.SIGNATURE_TIME:
            return (
                "the request's X-Amz-Date is more than 5 minutes off AWS's clock: "
                "synchronise this machine's clock (NTP)"
            )
        case Refusal.SIGNATURE_MISMATCH:
            return (
                f"signature mismatch (signed for {where}): the signing host must be the function "
                f"URL's own host (the route's function_url). {ORIGIN_REQUEST_POLICY}. "
                f"`signing-proxy check --route {route.name}` shows how AWS's canonical request "
                "differs"
            )
        case Refusal.INCOMPLETE_SIGNATURE:
            return (
                "the signature did not arrive complete: CloudFront must forward Authorization, "
                "X-Amz-Date, X-Amz-Content-Sha256 and X-Amz-Security-Token "
                "(origin request policy AllViewerExceptHostHeader)"
            )
        case Refusal.ACCESS_DENIED:
            return (
                f"the signature is valid but credential set {route.credentials!r} may not invoke "
                f"the function: it needs {PERMISSIONS} (`signing-proxy check --route "
                f"{route.name}` prints the add-permission commands)"
            )
        case Refusal.UNKNOWN_CREDENTIALS:
            return (
                f"AWS does not recognise the access key or session token of credential set "
                f"{route.credentials!r}: check the keys, and that a session token is passed along"
            )
        case Refusal.EXPIRED_TOKEN:
            return f"the session token of credential set {route.credentials!r} has expired"
        case Refusal.UNEXPLAINED | Refusal.ORIGIN_UNREACHABLE | None:
            # A 403 with an error type the proxy knows nothing about: say what AWS said.
            return f"{error_name(error_type)}: {message_of(body) or 'no message'}"
        case _:
            assert_never(refusal)


def message_of(body: bytes) -> str:
    """The ``Message`` (or ``message``) of a JSON error body, else the text itself."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(parsed, dict):
        for key in ("Message", "message"):
            if isinstance(parsed.get(key), str):
                return str(parsed[key])
    return text[:500]
