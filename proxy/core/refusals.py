"""Pure: explain a 403 from Lambda or CloudFront in one line a user can act on."""

from __future__ import annotations

import json

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


def explain_403(*, route: Route, error_type: str | None, body: bytes) -> str:
    """Why a 403 happened and what to change, for the log line that follows it."""
    message = message_of(body)
    # Lambda sometimes appends a namespace: "InvalidSignatureException:http://internal…".
    kind = (error_type or "").partition(":")[0]
    signing = route.signing
    where = (
        f"host {signing.host}, region {signing.region}, service {signing.service}"
        if signing
        else "no signing target"
    )
    if not kind:
        return (
            "403 from CloudFront itself (no x-amzn-ErrorType): check the distribution's WAF "
            "rules and geo restriction; a GET or HEAD with a body is refused; with OAC, "
            "check that the origin access control belongs to this origin"
        )
    if "should be scoped to a valid region" in message:
        return (
            f"wrong region in the signature scope ({where}): set sign.region to the "
            "function's region, or use function_url so it is taken from the host"
        )
    if "should be scoped to correct service" in message:
        return f"wrong service in the signature scope ({where}): Lambda function URLs use lambda"
    if "Signature expired" in message or "not yet current" in message:
        return (
            "the request's X-Amz-Date is more than 5 minutes off AWS's clock: "
            "synchronise this machine's clock (NTP)"
        )
    if kind in ("InvalidSignatureException", "SignatureDoesNotMatch"):
        return (
            f"signature mismatch (signed for {where}): the signing host must be the function "
            f"URL's own host (the route's function_url). {ORIGIN_REQUEST_POLICY}. "
            f"`signing-proxy check --route {route.name}` shows how AWS's canonical request "
            "differs"
        )
    if kind == "IncompleteSignatureException":
        return (
            "the signature did not arrive complete: CloudFront must forward Authorization, "
            "X-Amz-Date, X-Amz-Content-Sha256 and X-Amz-Security-Token "
            "(origin request policy AllViewerExceptHostHeader)"
        )
    if kind == "AccessDeniedException":
        return (
            f"the signature is valid but credential set {route.credentials!r} may not invoke "
            f"the function: it needs {PERMISSIONS} (`signing-proxy check --route {route.name}` "
            "prints the add-permission commands)"
        )
    if kind in ("UnrecognizedClientException", "InvalidClientTokenId"):
        return (
            f"AWS does not recognise the access key or session token of credential set "
            f"{route.credentials!r}: check the keys, and that a session token is passed along"
        )
    if kind == "ExpiredTokenException":
        return f"the session token of credential set {route.credentials!r} has expired"
    return f"{kind}: {message or 'no message'}"


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
