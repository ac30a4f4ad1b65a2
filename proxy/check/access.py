"""Pure: what to grant when a function URL answers AccessDeniedException, as ready-to-run
``aws lambda add-permission`` commands for the identity that signed (or for CloudFront)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from proxy.core.refusals import PERMISSIONS
from proxy.model import Route

# Since October 2025 a new function URL needs both; older ones only the first.
# A function URL does not name its function; the user fills this in.
FUNCTION_NAME = "FUNCTION_NAME"
_ASSUMED_ROLE = re.compile(
    r"arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+"
)


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed a route's requests: its credential set, the role it assumes (if it does),
    the ARN STS reported (None when STS could not be asked), and how to refresh it."""

    credential_set: str
    role_arn: str | None
    identity_arn: str | None
    refresh: str


def principal(signer: Signer) -> str | None:
    """The ARN to grant: the configured role (its path included), the role of an assumed-role
    session, or the user STS named; None when unknown."""
    if signer.role_arn is not None:
        return signer.role_arn
    arn = signer.identity_arn
    if arn is None:
        return None
    match = _ASSUMED_ROLE.fullmatch(arn)
    if match is None:
        return arn
    # An assumed-role ARN drops the role's path; a role with a path needs it added here.
    return f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"


def denied_fixes(route: Route, signer: Signer | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(details, fixes) for an AccessDeniedException on ``route``."""
    if route.mode == "oac":
        return _oac(route)
    if route.mode == "none" or signer is None:
        return (
            ("the request went unsigned (mode none) to a function URL with auth type AWS_IAM",),
            (
                f"set mode: iam and function_url on route {route.name} (the proxy signs), or "
                "mode: oac (CloudFront signs)",
            ),
        )
    who = principal(signer)
    details = [
        "the signature is valid, but the identity may not invoke the function",
        f"identity: {signer.identity_arn or 'unknown (STS could not be asked)'}",
        f"needed: {PERMISSIONS}",
    ]
    granted = who or f"ARN_OF_CREDENTIAL_SET_{signer.credential_set.upper()}"
    host = route.signing.host if route.signing else "the function URL"
    fixes = (
        f"allow it in the function's resource policy ({FUNCTION_NAME}: the function whose URL "
        f"is https://{host}):\n" + "\n".join(_commands(route, granted)),
        f"or, in the function's own account, allow both actions on the function in the IAM "
        f"policy of {granted}",
    )
    return tuple(details), fixes


def _oac(route: Route) -> tuple[tuple[str, ...], tuple[str, ...]]:
    details = ("CloudFront's origin access control signature was missing or not allowed",)
    source = "arn:aws:cloudfront::ACCOUNT_ID:distribution/DISTRIBUTION_ID"
    fixes = (
        "attach an origin access control (origin type lambda, signing behaviour always) to the "
        "function URL origin of the distribution",
        "allow CloudFront in the function's resource policy:\n"
        + "\n".join(_commands(route, "cloudfront.amazonaws.com", source_arn=source)),
    )
    return details, fixes


def _commands(route: Route, granted: str, *, source_arn: str | None = None) -> list[str]:
    """The two add-permission commands, InvokeFunctionUrl and then InvokeFunction through the
    URL, each on continued lines that paste into a shell."""
    head = ["aws", "lambda", "add-permission", "--function-name", FUNCTION_NAME]
    if route.signing is not None:
        head += ["--region", route.signing.region]
    who = ["--principal", granted, *(["--source-arn", source_arn] if source_arn else [])]
    url = ["--statement-id", "signing-proxy-invoke-url", "--action", "lambda:InvokeFunctionUrl"]
    function = ["--statement-id", "signing-proxy-invoke-function"]
    function += ["--action", "lambda:InvokeFunction"]
    return [
        _continued(head, url, [*who, "--function-url-auth-type", "AWS_IAM"]),
        _continued(head, function, [*who, "--invoked-via-function-url"]),
    ]


def _continued(*parts: list[str]) -> str:
    return " \\\n  ".join(shlex.join(part) for part in parts)
