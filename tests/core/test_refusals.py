"""The one classifier of an upstream refusal, on replies shaped as Lambda and CloudFront send."""

from __future__ import annotations

import json

import pytest

from proxy.config.load import parse_config
from proxy.core.endpoints import is_global_web_function_host, is_web_function_host
from proxy.core.refusals import (
    Refusal,
    before_function,
    classify,
    curable_by_fresh_credentials,
    explain_403,
    is_time,
    web_function_endpoint_arn,
)
from proxy.model import Route

# Lambda appends a namespace to x-amzn-ErrorType now and then.
NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.coral.service/"
EXPIRED = (
    "Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z "
    "(20260101T001000Z - 5 min.)"
)
NOT_YET = (
    "Signature not yet current: 20260101T002000Z is still later than 20260101T001500Z "
    "(20260101T001000Z + 5 min.)"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
FORBIDDEN = (
    "Forbidden. For troubleshooting Function URL authorization issues, see: "
    "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
)
CLOUDFRONT_PAGE = (
    b"<HTML><HEAD><TITLE>ERROR: The request could not be satisfied</TITLE></HEAD><BODY>\n"
    b"<H1>403 ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n<HR noshade size=1px>\n"
    b"Request blocked.\n</BODY></HTML>"
)


def _body(message: str, key: str = "Message") -> bytes:
    return json.dumps({key: message}).encode()


@pytest.mark.parametrize(
    ("error_type", "body"),
    [
        pytest.param("InvalidSignatureException", _body(EXPIRED, "message"), id="expired"),
        pytest.param("InvalidSignatureException", _body(NOT_YET), id="not-yet-current"),
        pytest.param("InvalidSignatureException" + NAMESPACE, _body(EXPIRED), id="namespaced"),
    ],
)
def test_a_signature_out_of_time_is_about_the_clock(error_type: str, body: bytes) -> None:
    """An expired or future signature is a time refusal, before the function, not credentials'."""
    refusal = classify(403, error_type, body)
    assert refusal is Refusal.SIGNATURE_TIME
    assert is_time(refusal)
    assert before_function(refusal)
    assert not curable_by_fresh_credentials(refusal)


def test_the_message_may_be_passed_already_read() -> None:
    """A message already read from the body classifies as the body it came from."""
    expired = classify(403, "InvalidSignatureException", EXPIRED)
    assert expired is classify(403, "InvalidSignatureException", _body(EXPIRED))
    assert classify(403, "InvalidSignatureException", MISMATCH) is Refusal.SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    ("message", "refusal"),
    [
        (MISMATCH, Refusal.SIGNATURE_MISMATCH),
        ("Credential should be scoped to a valid region. ", Refusal.WRONG_REGION),
        ("Credential should be scoped to correct service: 'lambda'. ", Refusal.WRONG_SERVICE),
    ],
)
def test_an_invalid_signature_is_told_apart_by_its_message(message: str, refusal: Refusal) -> None:
    """InvalidSignatureException is a mismatch unless its message names the scope at fault."""
    found = classify(403, "InvalidSignatureException", _body(message))
    assert found is refusal
    assert before_function(found)
    assert not is_time(found)


@pytest.mark.parametrize(
    ("error_type", "message", "curable"),
    [
        ("ExpiredTokenException", "The security token included in the request is expired", True),
        (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            True,
        ),
        ("AccessDeniedException", FORBIDDEN, False),
        ("IncompleteSignatureException", "Authorization header requires 'Signature'.", False),
    ],
)
def test_only_the_key_or_token_refused_is_cured_by_fresh_credentials(
    error_type: str, message: str, curable: bool
) -> None:
    """Fresh credentials cure an expired or unknown token, not a denial or a broken signature."""
    refusal = classify(403, error_type, _body(message, "message"))
    assert refusal is not None
    assert curable_by_fresh_credentials(refusal) is curable
    assert before_function(refusal)
    assert not is_time(refusal)


def test_a_403_without_an_error_type_is_cloudfronts_own() -> None:
    """CloudFront's page (no x-amzn-ErrorType, no Lambda request id) is CloudFront's refusal."""
    refusal = classify(403, None, CLOUDFRONT_PAGE)
    assert refusal is Refusal.CLOUDFRONT
    # Whether CloudFront refuses depends on the method: a GET might reach the function.
    assert not before_function(refusal)
    assert not curable_by_fresh_credentials(refusal)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_cloudfronts_own_gateway_errors_mean_the_origin_did_not_answer(status: int) -> None:
    """A 502/503/504 CloudFront made itself says the function URL gave it no answer."""
    assert classify(status, None, b"<HTML>...</HTML>") is Refusal.ORIGIN_UNREACHABLE


@pytest.mark.parametrize("status", [200, 403, 502])
def test_what_the_function_answered_itself_is_no_refusal(status: int) -> None:
    """A reply with Lambda's request id and no error type is the function's own answer."""
    assert classify(status, None, b'{"ok": false}', from_lambda=True) is None


def test_an_unknown_error_type_is_a_refusal_only_in_a_403() -> None:
    """An error type the proxy knows nothing of is an unexplained refusal in a 403, else none."""
    throttled = classify(403, "ThrottlingException" + NAMESPACE, _body("Rate exceeded"))
    assert throttled is Refusal.UNEXPLAINED
    assert not before_function(throttled)
    assert classify(408, "RequestTimeoutException", _body("Request timed out")) is None


def test_nothing_is_no_refusal() -> None:
    """The predicates say no to a reply that is no refusal."""
    assert classify(200, None, b"hello") is None
    assert not before_function(None)
    assert not curable_by_fresh_credentials(None)
    assert not is_time(None)


WEB_HOST = "abc123xyz.a1.lambda-web.eu-central-1.on.aws"
GLOBAL_HOST = "abc123xyz.lambda-web.global.on.aws"
URL_HOST = "abc123xyz.lambda-url.eu-central-1.on.aws"


@pytest.mark.parametrize(
    ("host", "web", "global_"),
    [
        pytest.param(WEB_HOST, True, False, id="regional"),
        pytest.param("abcd1234.lambda-web.us-west-2.on.aws", True, False, id="regional-one-label"),
        pytest.param(GLOBAL_HOST, True, True, id="global"),
        pytest.param("ABC123XYZ.Lambda-Web.Global.On.Aws.", True, True, id="case-and-final-dot"),
        pytest.param(f"{WEB_HOST}:443", True, False, id="with-port"),
        pytest.param(URL_HOST, False, False, id="function-url"),
        pytest.param("d111111abcdef8.cloudfront.net", False, False, id="cloudfront"),
        pytest.param("lambda-web.eu-central-1.on.aws", False, False, id="no-endpoint-id"),
        pytest.param(f"{WEB_HOST}.example.com", False, False, id="suffix-elsewhere"),
    ],
)
def test_web_function_hosts_are_recognised(host: str, web: bool, global_: bool) -> None:
    """Regional and global Web Function endpoint hosts are told from function URLs and others."""
    assert is_web_function_host(host) is web
    assert is_global_web_function_host(host) is global_


def test_a_web_function_endpoint_arn_names_what_the_host_tells() -> None:
    """A regional host gives the ARN's region; a global one leaves it, like the names, a
    placeholder."""
    assert web_function_endpoint_arn(WEB_HOST) == (
        "arn:aws:lambda:eu-central-1:ACCOUNT:web-function/FN/endpoint/ENDPOINT"
    )
    assert web_function_endpoint_arn(GLOBAL_HOST) == (
        "arn:aws:lambda:REGION:ACCOUNT:web-function/FN/endpoint/ENDPOINT"
    )


def _route(**fields: object) -> Route:
    route = {"name": "orders", "upstream": "https://d111111abcdef8.cloudfront.net", **fields}
    return parse_config({"listen": "127.0.0.1:0", "routes": [route]}).routes[0]


def _denial(route: Route) -> str:
    return explain_403(route=route, error_type="AccessDeniedException", body=_body(FORBIDDEN))


@pytest.mark.parametrize(
    ("mode", "principal"),
    [
        ("iam", "ARN_OF_CREDENTIAL_SET_DEFAULT"),
        (
            "oac",
            "cloudfront.amazonaws.com --source-arn "
            "arn:aws:cloudfront::ACCOUNT:distribution/DISTRIBUTION_ID",
        ),
        ("none", "'*'"),
    ],
)
def test_a_function_url_denial_names_the_invoke_via_url_grant(mode: str, principal: str) -> None:
    """Since 2026-11-01 every function URL needs lambda:InvokeFunction through the URL: the
    diagnosis says it is most likely what is missing and gives the command, for the identity,
    CloudFront or (mode none, auth type NONE) everyone."""
    explained = _denial(_route(function_url=f"https://{URL_HOST}", mode=mode))
    assert "most likely lacks lambda:InvokeFunction with the condition " in explained
    assert "lambda:InvokedViaFunctionUrl" in explained
    assert "until 2026-11-01" in explained
    assert (
        "`aws lambda add-permission --function-name FN --region eu-central-1 --statement-id "
        f"invoke-via-url --action lambda:InvokeFunction --principal {principal} "
        "--invoked-via-function-url`"
    ) in explained
    assert "InvokeWebFunctionEndpoint" not in explained


@pytest.mark.parametrize(
    ("host", "arn"),
    [
        (WEB_HOST, "arn:aws:lambda:eu-central-1:ACCOUNT:web-function/FN/endpoint/ENDPOINT"),
        (GLOBAL_HOST, "arn:aws:lambda:REGION:ACCOUNT:web-function/FN/endpoint/ENDPOINT"),
    ],
    ids=["regional", "global"],
)
def test_a_web_function_denial_names_its_own_action_on_the_endpoint(host: str, arn: str) -> None:
    """A Web Function endpoint is granted lambda:InvokeWebFunctionEndpoint on its ARN, in the
    identity's policy or the Web Function's: no add-permission for a function URL."""
    explained = _denial(_route(web_function=f"https://{host}"))
    assert explained.startswith(
        "the signature is valid but credential set 'default' may not invoke the Web Function "
        f"endpoint {host}: it needs lambda:InvokeWebFunctionEndpoint on {arn}, not "
        "lambda:InvokeFunctionUrl"
    )
    assert "aws lambda-web put-resource-policy on " + arn.partition("/endpoint/")[0] in explained
    assert "add-permission" not in explained
    assert "--invoked-via-function-url" not in explained
    assert ("REGION for its home region" in explained) is (host == GLOBAL_HOST)


def test_a_web_function_denial_through_cloudfronts_oac_grants_cloudfront() -> None:
    """With OAC, CloudFront is the one to allow, for its distribution only."""
    explained = _denial(_route(web_function=f"https://{WEB_HOST}", mode="oac"))
    assert explained.startswith(
        f"CloudFront's origin access control may not invoke the Web Function endpoint {WEB_HOST}:"
        " allow cloudfront.amazonaws.com lambda:InvokeWebFunctionEndpoint"
    )
    assert "AWS:SourceArn arn:aws:cloudfront::ACCOUNT:distribution/DISTRIBUTION_ID" in explained


def test_an_unsigned_request_to_a_web_function_endpoint_is_told_to_sign() -> None:
    """Mode none to an IamAuth endpoint: sign it, there is nothing to grant to nobody."""
    explained = _denial(_route(web_function=f"https://{WEB_HOST}", mode="none"))
    assert "refused the unsigned request (route orders has mode none)" in explained
    assert "set mode: iam (the proxy signs) or mode: oac (CloudFront signs)" in explained


@pytest.mark.parametrize(
    "error_type", ["InvalidSignatureException", "IncompleteSignatureException"]
)
def test_sigv4_to_a_global_web_function_endpoint_is_told_to_use_sigv4a(error_type: str) -> None:
    """A route that signs SigV4 for a global endpoint is told that it takes SigV4a only."""
    route = _route(sign={"host": GLOBAL_HOST, "algorithm": "sigv4", "region": "us-east-1"})
    explained = explain_403(route=route, error_type=error_type, body=_body("refused"))
    assert f"the global Web Function endpoint {GLOBAL_HOST} takes SigV4a only" in explained
    assert "route orders signs SigV4 for region us-east-1" in explained
    assert "remove sign.algorithm and sign.region" in explained
