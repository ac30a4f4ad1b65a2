"""Pure: what to grant when a function URL or a Lambda Web Function endpoint answers
AccessDeniedException: ready-to-run ``aws lambda add-permission`` commands (function URLs) or a
resource-policy statement for ``aws lambda-web put-resource-policy`` (Web Function endpoints),
for the identity that signed (or for CloudFront)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from proxy.core.endpoints import (
    is_global_web_function_host,
    is_web_function_host,
    web_function_region,
)
from proxy.core.refusals import (
    ACCOUNT,
    DISTRIBUTION_ARN,
    ENDPOINT_NAME,
    FUNCTION_NAME,
    LIKELY_MISSING,
    PERMISSIONS,
    WEB_FUNCTION_ACTION,
    endpoint_host,
    invoke_via_url_command,
    signing_region,
    web_function_arn,
    web_function_endpoint_arn,
    web_function_statement,
)
from proxy.model import Route

_CLOUDFRONT = "cloudfront.amazonaws.com"
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
    host = endpoint_host(route)
    if is_web_function_host(host):
        return _web_function(route, signer, host)
    if route.mode == "oac":
        return _oac(route)
    if route.mode == "none" or signer is None:
        return _unsigned(route)
    who = principal(signer)
    details = (
        "the signature is valid, but the identity may not invoke the function",
        f"identity: {signer.identity_arn or 'unknown (STS could not be asked)'}",
        f"needed: {PERMISSIONS}",
        f"most likely missing: {LIKELY_MISSING}",
    )
    granted = who or _placeholder(signer)
    fixes = (
        f"grant lambda:InvokeFunction through the function URL in the function's resource "
        f"policy ({_which_function(route)}):\n" + _invoke_function(route, granted),
        "and lambda:InvokeFunctionUrl, if the policy lacks it too:\n"
        + _invoke_url(route, granted, auth_type="AWS_IAM"),
        f"or, in the function's own account, allow both actions on the function in the IAM "
        f"policy of {granted}",
    )
    return details, fixes


def _oac(route: Route) -> tuple[tuple[str, ...], tuple[str, ...]]:
    details = (
        "CloudFront's origin access control signature was missing or not allowed",
        f"needed, for {_CLOUDFRONT}: {PERMISSIONS}",
        f"most likely missing: {LIKELY_MISSING}",
    )
    fixes = (
        "attach an origin access control (origin type lambda, signing behaviour always) to the "
        "function URL origin of the distribution",
        f"allow CloudFront in the function's resource policy ({_which_function(route)}; "
        f"{ACCOUNT} and DISTRIBUTION_ID: the distribution's):\n"
        + _invoke_function(route, _CLOUDFRONT, source_arn=DISTRIBUTION_ARN)
        + "\n"
        + _invoke_url(route, _CLOUDFRONT, auth_type="AWS_IAM", source_arn=DISTRIBUTION_ARN),
    )
    return details, fixes


def _unsigned(route: Route) -> tuple[tuple[str, ...], tuple[str, ...]]:
    details = (
        "the request went unsigned (mode none): the function URL's auth type is AWS_IAM, or it "
        f"is NONE and its resource policy lacks {LIKELY_MISSING}",
    )
    fixes = (
        f"set mode: iam and function_url on route {route.name} (the proxy signs), or mode: oac "
        "(CloudFront signs), if the function URL's auth type is AWS_IAM",
        f"if it is NONE, allow everyone through the function URL ({_which_function(route)}):\n"
        + _invoke_function(route, "*")
        + "\n"
        + _invoke_url(route, "*", auth_type="NONE"),
    )
    return details, fixes


def _web_function(
    route: Route, signer: Signer | None, host: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A Web Function endpoint's denial: lambda:InvokeWebFunctionEndpoint on the endpoint's
    ARN is missing, or the request went unsigned."""
    if route.mode == "oac":
        return _web_oac(host)
    if route.mode == "none" or signer is None:
        return (
            (f"the request went unsigned (mode none) to a Web Function endpoint ({host})",),
            (
                f"set mode: iam and web_function on route {route.name} (the proxy signs), or "
                "mode: oac (CloudFront signs): an endpoint with auth type IamAuth takes only "
                "signed requests",
            ),
        )
    granted = principal(signer) or _placeholder(signer)
    identity_statement = json.dumps(
        {
            "Effect": "Allow",
            "Action": WEB_FUNCTION_ACTION,
            "Resource": web_function_endpoint_arn(host),
        },
        separators=(",", ":"),
    )
    details = (
        "the signature is valid, but the identity may not invoke the Web Function endpoint",
        f"identity: {signer.identity_arn or 'unknown (STS could not be asked)'}",
        _web_needed(host),
        _web_inferred(host),
    )
    fixes = (
        f"allow it in the Web Function's resource policy ({_web_names(host)}):\n"
        + _put_policy(host, granted),
        f"or, in the function's own account, in the IAM policy of {granted}:\n"
        f"  {identity_statement}\n"
        "(the AWS managed policy AWSLambdaInvokeWebFunctionEndpointAccess allows it on every "
        "endpoint; a caller from another account needs both policies)",
    )
    return details, fixes


def _web_oac(host: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    details = [
        "CloudFront's origin access control signature was missing or not allowed",
        _web_needed(host),
    ]
    if is_global_web_function_host(host):
        details.append(
            "CloudFront cannot sign for a global endpoint that routes to an opt-in Region: "
            "every Region of the endpoint must be one enabled by default"
        )
    details.append(_web_inferred(host, condition=True))
    fixes = (
        "attach an origin access control (signing behaviour always) to the Web Function origin "
        "of the distribution",
        f"allow CloudFront in the Web Function's resource policy ({_web_names(host)}; "
        "DISTRIBUTION_ID: the distribution's):\n" + _put_policy(host, _CLOUDFRONT),
    )
    return tuple(details), fixes


def _web_needed(host: str) -> str:
    arn = web_function_endpoint_arn(host)
    return (
        f"needed: {WEB_FUNCTION_ACTION} on the endpoint's ARN {arn}, not the function URL "
        "actions lambda:InvokeFunctionUrl and lambda:InvokeFunction"
    )


def _web_names(host: str) -> str:
    region = "; REGION: the function's home region" if is_global_web_function_host(host) else ""
    return (
        f"{FUNCTION_NAME}: the Web Function's name; {ENDPOINT_NAME}: the endpoint's name, not "
        f"the id in its host; {ACCOUNT}: the function's account{region}"
    )


def _web_inferred(host: str, *, condition: bool = False) -> str:
    """What the printed policy takes from AWS's pages by inference, not as they state it."""
    parts = [
        "that put-resource-policy replaces the whole policy (the API keeps one document "
        "per Web Function)"
    ]
    if is_global_web_function_host(host):
        parts.append("that a global endpoint's ARN names the function's home region")
    if condition:
        parts.append("the condition on AWS:SourceArn, as for function URLs")
    return "inferred, not stated by AWS's pages: " + "; ".join(parts)


def _put_policy(host: str, granted: str) -> str:
    """The Web Function's resource policy holding one statement for ``granted``, put with the
    CLI after merging in what get-resource-policy shows, on continued lines."""
    function = web_function_arn(host)
    region = web_function_region(host) or "REGION"
    policy = json.dumps(
        {"Version": "2012-10-17", "Statement": [web_function_statement(granted, host)]},
        separators=(",", ":"),
    )
    where = ["--region", region, "--resource-arn", function]
    get = ["aws", "lambda-web", "get-resource-policy", *where]
    put = ["aws", "lambda-web", "put-resource-policy", *where]
    return (
        f"# the policy is one document: add this statement to what {shlex.join(get)} shows\n"
        + _continued(put[:3], put[3:], ["--policy", policy])
    )


def _which_function(route: Route) -> str:
    host = route.signing.host if route.signing else "the function URL"
    return f"{FUNCTION_NAME}: the function whose URL is https://{host}"


def _placeholder(signer: Signer) -> str:
    return f"ARN_OF_CREDENTIAL_SET_{signer.credential_set.upper()}"


def _invoke_function(route: Route, granted: str, *, source_arn: str | None = None) -> str:
    """lambda:InvokeFunction through the function URL only, on continued lines that paste into
    a shell: what function URLs need since 2026-11-01 besides lambda:InvokeFunctionUrl."""
    region = signing_region(route)
    words = invoke_via_url_command(granted, region=region, source_arn=source_arn)
    statement = words.index("--statement-id")
    grantee = words.index("--principal")
    return _continued(words[:statement], words[statement:grantee], words[grantee:])


def _invoke_url(
    route: Route, granted: str, *, auth_type: str, source_arn: str | None = None
) -> str:
    """lambda:InvokeFunctionUrl for the URL's auth type, on continued lines."""
    head = ["aws", "lambda", "add-permission", "--function-name", FUNCTION_NAME]
    if region := signing_region(route):
        head += ["--region", region]
    url = ["--statement-id", "signing-proxy-invoke-url", "--action", "lambda:InvokeFunctionUrl"]
    who = ["--principal", granted, *(["--source-arn", source_arn] if source_arn else [])]
    return _continued(head, url, [*who, "--function-url-auth-type", auth_type])


def _continued(*parts: list[str]) -> str:
    return " \\\n  ".join(shlex.join(part) for part in parts)
