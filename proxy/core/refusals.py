"""Pure: the one classifier of an upstream refusal (Lambda's x-amzn-ErrorType and message, or
CloudFront's own reply), what each kind implies, and the one line a user can act on for a 403.

``classify`` names the kind of refusal; the proxy (credential refresh, clock correction, the
403 log line) and `signing-proxy check` (probes, verdicts) decide by that kind alone.
"""

from __future__ import annotations

import json
import shlex
from enum import Enum, auto
from typing import assert_never

from proxy.core.endpoints import (
    is_global_web_function_host,
    is_web_function_host,
    web_function_region,
)
from proxy.model import Route

# Shared with `signing-proxy check`, which says the same things at more length.
# Function URLs created since October 2025 need both grants; AWS gave older ones until
# 2026-11-01 to add the second. That date has passed: a denial now most likely means that the
# second grant is missing.
INVOKE_VIA_URL_DEADLINE = "2026-11-01"
PERMISSIONS = (
    "lambda:InvokeFunctionUrl and lambda:InvokeFunction (with the condition "
    f"lambda:InvokedViaFunctionUrl) on the function, both for every function URL since "
    f"{INVOKE_VIA_URL_DEADLINE}"
)
LIKELY_MISSING = (
    "lambda:InvokeFunction with the condition lambda:InvokedViaFunctionUrl, which AWS gave "
    f"function URLs until {INVOKE_VIA_URL_DEADLINE} to grant besides lambda:InvokeFunctionUrl"
)
# Placeholders in the commands and policies printed: what a host does not tell.
FUNCTION_NAME = "FN"
ENDPOINT_NAME = "ENDPOINT"
ACCOUNT = "ACCOUNT"
DISTRIBUTION_ARN = f"arn:aws:cloudfront::{ACCOUNT}:distribution/DISTRIBUTION_ID"
# Lambda Web Function endpoints (GA 2026-10-01) are invoked with their own action, on the
# endpoint's ARN, and granted in the identity's policy or the Web Function's resource policy.
WEB_FUNCTION_ACTION = "lambda:InvokeWebFunctionEndpoint"
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
# AWS refused what was signed, or how: what a signature of the wrong algorithm meets.
_SIGNATURE_REFUSALS = frozenset(
    {Refusal.WRONG_REGION, Refusal.SIGNATURE_MISMATCH, Refusal.INCOMPLETE_SIGNATURE}
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
    if (
        signing is not None
        and signing.algorithm == "sigv4"
        and is_global_web_function_host(signing.host)
        and refusal in _SIGNATURE_REFUSALS
    ):
        return (
            f"the global Web Function endpoint {signing.host} takes SigV4a only, and route "
            f"{route.name} signs SigV4 for region {signing.region}: remove sign.algorithm and "
            "sign.region (the host implies sigv4a for the region set '*')"
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
            return _denied(route)
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


def web_function_endpoint_arn(host: str) -> str:
    """The ARN to grant lambda:InvokeWebFunctionEndpoint on for the endpoint at ``host``, with
    placeholders for what a host does not tell: the function's name, the endpoint's name and
    the account; and the region for a global endpoint (the function's home region)."""
    region = web_function_region(host) or "REGION"
    return (
        f"arn:aws:lambda:{region}:{ACCOUNT}:web-function/{FUNCTION_NAME}/endpoint/{ENDPOINT_NAME}"
    )


def web_function_arn(host: str) -> str:
    """The Web Function's own ARN (what its resource policy is attached to) for ``host``."""
    return web_function_endpoint_arn(host).partition("/endpoint/")[0]


def web_function_statement(principal: str, host: str) -> dict[str, object]:
    """A resource-policy statement that lets ``principal`` (an IAM ARN, or
    cloudfront.amazonaws.com, then only for one distribution) invoke the endpoint at ``host``."""
    statement: dict[str, object] = {
        "Sid": "signing-proxy-invoke-endpoint",
        "Effect": "Allow",
        "Principal": {"Service": principal}
        if principal.endswith(".amazonaws.com")
        else {"AWS": principal},
        "Action": WEB_FUNCTION_ACTION,
        "Resource": web_function_endpoint_arn(host),
    }
    if principal == "cloudfront.amazonaws.com":
        statement["Condition"] = {"ArnLike": {"AWS:SourceArn": DISTRIBUTION_ARN}}
    return statement


def invoke_via_url_command(
    principal: str, *, region: str | None = None, source_arn: str | None = None
) -> list[str]:
    """``aws lambda add-permission`` granting lambda:InvokeFunction through the function URL
    only (the grant function URLs need since 2026-11-01), as its words."""
    command = ["aws", "lambda", "add-permission", "--function-name", FUNCTION_NAME]
    command += ["--region", region] if region else []
    command += ["--statement-id", "invoke-via-url", "--action", "lambda:InvokeFunction"]
    command += ["--principal", principal, *(["--source-arn", source_arn] if source_arn else [])]
    return [*command, "--invoked-via-function-url"]


def signing_region(route: Route) -> str | None:
    """The one region a route signs for, for the CLI's --region; None for a SigV4a region set."""
    signing = route.signing
    return signing.region if signing and signing.algorithm == "sigv4" else None


def endpoint_host(route: Route) -> str:
    """The host a route's requests are meant for: its signing host, else its upstream's."""
    return route.signing.host if route.signing else route.upstream.host


def _denied(route: Route) -> str:
    """An AccessDeniedException: what the function URL or Web Function endpoint lacks."""
    host = endpoint_host(route)
    check = f"`signing-proxy check --route {route.name}`"
    if is_web_function_host(host):
        return _denied_web_function(route, host, check)
    region = signing_region(route)
    if route.mode == "none":
        public = shlex.join(invoke_via_url_command("*", region=region))
        return (
            f"the function URL refused the unsigned request (route {route.name} has mode none): "
            f"if its auth type is NONE, it most likely lacks {LIKELY_MISSING}. Add it for "
            f"everyone: `{public}`; if its auth type is AWS_IAM, set mode: iam (the proxy "
            "signs) or mode: oac (CloudFront signs)"
        )
    if route.mode == "oac":
        who = "CloudFront's origin access control"
        principal = "cloudfront.amazonaws.com"
        command = invoke_via_url_command(principal, region=region, source_arn=DISTRIBUTION_ARN)
    else:
        who = f"credential set {route.credentials!r}"
        principal = f"ARN_OF_CREDENTIAL_SET_{route.credentials.upper()}"
        command = invoke_via_url_command(principal, region=region)
    return (
        f"the signature is valid but {who} may not invoke the function: it most likely lacks "
        f"{LIKELY_MISSING} (every function URL needs both since then). Add it: "
        f"`{shlex.join(command)}`; {check} prints both add-permission commands, for the "
        "identity that signed"
    )


def _denied_web_function(route: Route, host: str, check: str) -> str:
    arn = web_function_endpoint_arn(host)
    placeholders = (
        f"{FUNCTION_NAME}, {ENDPOINT_NAME} and {ACCOUNT} stand for the function's name, the "
        "endpoint's name and the function's account"
    )
    if web_function_region(host) is None:
        placeholders += ", REGION for its home region"
    places = (
        f"in the Web Function's resource policy (aws lambda-web put-resource-policy on "
        f"{web_function_arn(host)}, a statement whose Resource is the endpoint's ARN)"
    )
    if route.mode == "none":
        return (
            f"the Web Function endpoint {host} refused the unsigned request (route "
            f"{route.name} has mode none): its auth type is IamAuth; set mode: iam (the proxy "
            "signs) or mode: oac (CloudFront signs)"
        )
    if route.mode == "oac":
        return (
            f"CloudFront's origin access control may not invoke the Web Function endpoint "
            f"{host}: allow cloudfront.amazonaws.com {WEB_FUNCTION_ACTION} (not "
            f"lambda:InvokeFunctionUrl, a function URL's action) on {arn} {places}, with the "
            f"condition AWS:SourceArn {DISTRIBUTION_ARN}; {check} prints the statement"
        )
    return (
        f"the signature is valid but credential set {route.credentials!r} may not invoke the "
        f"Web Function endpoint {host}: it needs {WEB_FUNCTION_ACTION} on {arn}, not "
        "lambda:InvokeFunctionUrl (a function URL's action). Grant it in the identity's "
        f"IAM policy, or {places}; a caller from another account needs both. {placeholders}; "
        f"{check} prints the statement"
    )


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
