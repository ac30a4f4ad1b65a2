"""Judge one received request as a function URL with AWS_IAM auth does: host, key, signature, body.

The keys the function was given are checked first; a key id they do not hold is looked up
among the credentials the local STS issued, when there is one. A valid signature is then
authorised: an identity in ``denied`` is refused as Lambda refuses one without permission.
A Web Function endpoint is judged by its own rules: SigV4a (only SigV4a when multi-region),
x-amz-content-sha256 on every request, lambda:InvokeWebFunctionEndpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from proxy.emulator.authorization import ASYMMETRIC_ALGORITHM
from proxy.emulator.key_lookup import MotoIssuedKeys, StsUnreachableError, mask_key_id
from proxy.emulator.sigv4a_verify import verify_sigv4a_request
from proxy.emulator.verify import (
    ACCESS_DENIED,
    INVALID_SIGNATURE,
    UNRECOGNIZED_CLIENT,
    Key,
    Verdict,
    verify_request,
)
from proxy.emulator.web_function import (
    CONTENT_SHA256_REQUIRED_MESSAGE,
    WebFunctionEndpoint,
    denied_message,
)

__all__ = ["DENIED_MESSAGE", "DENY_ALL", "UNSIGNED_PAYLOAD_MESSAGE", "Judgement", "judge"]

UNSIGNED_PAYLOAD_MESSAGE = (
    "Lambda doesn't support unsigned payloads. "
    "Add the x-amz-content-sha256 header with the SHA-256 of the body."
)
# What a function URL answers a valid signature whose identity its policies do not allow.
DENIED_MESSAGE = (
    "Forbidden. For troubleshooting Function URL authorization issues, see: "
    "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
)
# In ``denied``: every identity is refused (no policy allows anyone).
DENY_ALL = "*"

log = logging.getLogger("signing_proxy.emulator")


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict on one request, and the role whose STS-issued key signed it, when known."""

    verdict: Verdict
    role_arn: str | None = None


async def judge(
    *,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    body_sha256: str,
    function_host: str,
    region: str,
    keys: Mapping[str, Key],
    issued: MotoIssuedKeys | None,
    clock: Callable[[], datetime],
    denied: Container[str] = (),
    web_function: WebFunctionEndpoint | None = None,
) -> Judgement:
    """Decide one request; ``headers`` as received, ``target`` the raw ``/path?query``.

    ``denied`` holds access key ids and role ARNs whose valid signatures are refused, or
    DENY_ALL. With ``web_function`` the request is judged as that Web Function endpoint
    judges it; ``region`` is then the region that serves it (a SigV4a region set must cover it).
    """
    received_host = _first(headers, "host") or ""
    if received_host.lower() != function_host:
        # A real function URL is only reachable under its own host; CloudFront must rewrite it.
        return Judgement(
            _refuse(
                INVALID_SIGNATURE,
                f"The Host header {received_host!r} is not this function URL's host "
                f"{function_host!r}; the request must be signed for and sent with that host.",
            )
        )

    asymmetric = web_function is not None and (
        web_function.is_global or _algorithm(headers) == ASYMMETRIC_ALGORITHM
    )

    def verify(with_keys: Mapping[str, Key]) -> Verdict:
        return (verify_sigv4a_request if asymmetric else verify_request)(
            method=method,
            target=target,
            headers=headers,
            body_sha256=body_sha256,
            keys=with_keys,
            now=clock(),
            region=region,
        )

    judgement = Judgement(verify(keys))
    key_id = judgement.verdict.access_key_id
    # The STS is asked only about a key id nobody gave the function, and only once the request
    # got as far as the key check: an unsigned or malformed request costs no lookup.
    if (
        judgement.verdict.error_type == UNRECOGNIZED_CLIENT
        and issued is not None
        and key_id is not None
        and key_id not in keys
    ):
        try:
            found = await issued.find(key_id)
        except StsUnreachableError as exc:
            log.warning("access key %s: %s", mask_key_id(key_id), exc)
            message = f"The security token included in the request could not be checked: {exc}."
            return Judgement(_refuse(UNRECOGNIZED_CLIENT, message, access_key_id=key_id))
        if found is not None:
            judgement = Judgement(verify({key_id: found.key}), role_arn=found.role_arn)

    # Lambda refuses a body whose hash is not announced, whoever signed it (OAC in particular);
    # a Web Function endpoint wants the header on every request, bodiless ones too.
    if (
        judgement.verdict.error_type != ACCESS_DENIED
        and (body or web_function is not None)
        and _first(headers, "x-amz-content-sha256") is None
    ):
        message = (
            UNSIGNED_PAYLOAD_MESSAGE if web_function is None else CONTENT_SHA256_REQUIRED_MESSAGE
        )
        verdict = _refuse(INVALID_SIGNATURE, message, access_key_id=judgement.verdict.access_key_id)
        return Judgement(verdict, role_arn=judgement.role_arn)
    if judgement.verdict.ok and _denied(denied, key_id, judgement.role_arn):
        message = DENIED_MESSAGE
        if web_function is not None:
            message = denied_message(judgement.role_arn or key_id or "anonymous", function_host)
        verdict = _refuse(ACCESS_DENIED, message, access_key_id=key_id)
        return Judgement(verdict, role_arn=judgement.role_arn)
    return judgement


def _algorithm(headers: Sequence[tuple[str, str]]) -> str:
    """The first word of Authorization: the signing algorithm the client claims."""
    return (_first(headers, "authorization") or "").strip().partition(" ")[0]


def _denied(denied: Container[str], key_id: str | None, role_arn: str | None) -> bool:
    return any(who is not None and who in denied for who in (DENY_ALL, key_id, role_arn))


def _refuse(error_type: str, message: str, *, access_key_id: str | None = None) -> Verdict:
    return Verdict(ok=False, error_type=error_type, message=message, access_key_id=access_key_id)


def _first(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for header_name, value in headers:
        if header_name.lower() == name:
            return value
    return None
