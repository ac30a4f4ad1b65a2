"""The one classifier of an upstream refusal, on replies shaped as Lambda and CloudFront send."""

from __future__ import annotations

import json

import pytest

from proxy.core.refusals import (
    Refusal,
    before_function,
    classify,
    curable_by_fresh_credentials,
    is_time,
)

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
