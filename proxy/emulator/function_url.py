"""A fake Lambda function URL (auth type AWS_IAM): reads the body and judges it like Lambda.

Its replies are dated by its clock, as AWS's carry AWS's time; identities listed in ``denied``
sign validly but are refused, as Lambda refuses one its policies do not allow. Given a Web
Function endpoint host (``web_function.py``) it judges as that endpoint does instead.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from proxy.emulator.dates import dated_by
from proxy.emulator.echo import EchoedRequest, answer, lambda_error
from proxy.emulator.judge import UNSIGNED_PAYLOAD_MESSAGE, judge
from proxy.emulator.key_lookup import STS_LOOKUP_TIMEOUT, MotoIssuedKeys, check_sts_url
from proxy.emulator.streams import read_capped
from proxy.emulator.verify import INVALID_SIGNATURE, Key, Verdict
from proxy.emulator.web_function import (
    DEFAULT_SERVING_REGION,
    WebFunctionEndpoint,
    web_function_endpoint,
)

__all__ = [
    "BODY_READ_TIMEOUT",
    "FUNCTION_CONFIG",
    "ISSUED_KEYS",
    "LAMBDA_MAX_BODY",
    "SEEN_REQUESTS",
    "UNSIGNED_PAYLOAD_MESSAGE",
    "FunctionConfig",
    "SeenRequest",
    "create_function_app",
    "region_from_host",
]

# Lambda's cap on a buffered request payload; bigger bodies are refused before the function runs.
LAMBDA_MAX_BODY = 6 * 1024 * 1024
# How long a client may take to send the body; a stalled upload must not hold a handler.
BODY_READ_TIMEOUT = 60.0

_FUNCTION_HOST_RE = re.compile(r"[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws")
_SIGNATURE_VALUE_RE = re.compile(r"(Signature=)[^,\s]*")


def region_from_host(host: str) -> str:
    """The region named in a function-URL host ``<id>.lambda-url.<region>.on.aws`` or a
    regional Web Function endpoint ``<id>.<shard>.lambda-web.<region>.on.aws``."""
    endpoint = web_function_endpoint(host)
    if endpoint is not None and endpoint.region is not None:
        return endpoint.region
    if endpoint is not None:
        raise ValueError(
            f"host {host!r} is a multi-region Lambda Web Function endpoint, which names no "
            "region; pass region= (the region that serves it) explicitly"
        )
    match = _FUNCTION_HOST_RE.fullmatch(host.lower())
    if match is None:
        raise ValueError(
            f"function host {host!r} is not a Lambda function-URL host "
            "(expected e.g. abc123xyz.lambda-url.eu-central-1.on.aws); pass region= explicitly"
        )
    return match.group(1)


@dataclass(slots=True)
class SeenRequest:
    """One request the function received, with secrets masked, and what it decided."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body_sha256: str
    body_length: int  # -1 when the body was over Lambda's cap and was not read to the end
    verdict: Verdict
    request_id: str
    # The role whose assumed-role keys signed the request, when an STS issued them.
    role_arn: str | None = None
    # Grows while a /stream reply is being written, so tests can observe ordering.
    stream_events_written: int = field(default=0)

    def count_stream_event(self) -> None:
        self.stream_events_written += 1


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """Everything the fake function needs to judge a request.

    ``keys`` and ``denied`` are the caller's own objects, read on every request, never copies.
    ``web_function`` is set when the host is a Web Function endpoint's; ``region`` is then the
    region that serves it.
    """

    host: str
    region: str
    keys: Mapping[str, Key]
    clock: Callable[[], datetime]
    denied: Container[str] = ()
    web_function: WebFunctionEndpoint | None = None


FUNCTION_CONFIG = web.AppKey("function_config", FunctionConfig)
# The most recent requests are kept for tests and users to look at; a long-running emulator
# must not grow without bound.
KEEP_SEEN = 1000
SEEN_REQUESTS = web.AppKey("seen_requests", collections.deque[SeenRequest])
# Present only while the app runs with an sts_url.
ISSUED_KEYS = web.AppKey("issued_keys", MotoIssuedKeys)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_function_app(
    *,
    function_host: str,
    keys: Mapping[str, Key],
    clock: Callable[[], datetime] | None = None,
    region: str | None = None,
    requests: collections.deque[SeenRequest] | None = None,
    sts_url: str | None = None,
    sts_timeout: float = STS_LOOKUP_TIMEOUT,
    denied: Container[str] = (),
) -> web.Application:
    """An aiohttp app that behaves like a function URL; ``requests`` collects what it saw.

    ``keys`` is consulted live. An access key id it does not hold is looked up among the
    credentials the moto server at ``sts_url`` issued, when one is given, waiting at most
    ``sts_timeout`` seconds. A valid signature by an access key id or role ARN in ``denied``
    (consulted live; ``"*"`` denies everyone) gets AccessDeniedException. Serve it with
    ``web.AppRunner(app, auto_decompress=False)`` (as ``Emulator`` does) so a compressed body
    is hashed as sent.

    A Web Function endpoint host (``<id>.<shard>.lambda-web.<region>.on.aws``, or the
    multi-region ``<id>.lambda-web.global.on.aws``, which serves in ``region``, default
    us-east-1) is judged by that endpoint's rules.
    """
    host = function_host.lower()
    endpoint = web_function_endpoint(host)
    if region is None:
        global_endpoint = endpoint is not None and endpoint.is_global
        region = DEFAULT_SERVING_REGION if global_endpoint else region_from_host(host)
    app = web.Application()  # the body cap is enforced while reading, as Lambda's 413
    checked_sts_url = None if sts_url is None else check_sts_url(sts_url)
    app[FUNCTION_CONFIG] = FunctionConfig(
        host=host,
        region=region,
        keys=keys,
        clock=clock or _utc_now,
        denied=denied,
        web_function=endpoint,
    )
    app.on_response_prepare.append(dated_by(app[FUNCTION_CONFIG].clock))
    app[SEEN_REQUESTS] = requests if requests is not None else collections.deque(maxlen=KEEP_SEEN)
    if checked_sts_url is not None:
        app.cleanup_ctx.append(_sts_session(sts_url=checked_sts_url, timeout=sts_timeout))
    app.router.add_route("*", r"/{tail:[\s\S]*}", _handle)
    return app


def _sts_session(
    *, sts_url: str, timeout: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context owning the one client session that asks the STS while the app runs."""

    async def owner(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout), cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            app[ISSUED_KEYS] = MotoIssuedKeys(sts_url=sts_url, session=session, timeout=timeout)
            yield

    return owner


async def _handle(request: web.Request) -> web.StreamResponse:
    config = request.app[FUNCTION_CONFIG]
    request_id = str(uuid.uuid4())
    headers = tuple(request.headers.items())

    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT):
            body = await read_capped(request.content, limit=LAMBDA_MAX_BODY)
    except TimeoutError:
        message = f"The request body did not arrive within {BODY_READ_TIMEOUT:g} seconds."
        return lambda_error(408, "RequestTimeoutException", message, request_id)
    role_arn: str | None = None
    if body is None:
        body_sha256 = ""
        verdict = Verdict(
            ok=False,
            error_type="RequestEntityTooLargeException",
            message=(
                f"Request must be smaller than {LAMBDA_MAX_BODY} bytes "
                "for the InvokeFunction operation"
            ),
            access_key_id=None,
        )
    else:
        body_sha256 = hashlib.sha256(body).hexdigest()
        judgement = await judge(
            method=request.method,
            target=request.raw_path,
            headers=headers,
            body=body,
            body_sha256=body_sha256,
            function_host=config.host,
            region=config.region,
            keys=config.keys,
            issued=request.app.get(ISSUED_KEYS),
            clock=config.clock,
            denied=config.denied,
            web_function=config.web_function,
        )
        verdict, role_arn = judgement.verdict, judgement.role_arn
    seen = SeenRequest(
        method=request.method,
        target=request.raw_path,
        headers=tuple((name, _mask(name, value)) for name, value in headers),
        body_sha256=body_sha256,
        body_length=-1 if body is None else len(body),
        verdict=verdict,
        request_id=request_id,
        role_arn=role_arn,
    )
    request.app[SEEN_REQUESTS].append(seen)
    if body is None:
        return lambda_error(413, "RequestEntityTooLargeException", verdict.message, request_id)
    if not verdict.ok:
        error_type = verdict.error_type or INVALID_SIGNATURE
        return lambda_error(403, error_type, verdict.message, request_id)
    echoed = EchoedRequest(
        request_id=request_id,
        headers=seen.headers,
        body_sha256=body_sha256,
        body_length=len(body),
        access_key_id=verdict.access_key_id,
        role_arn=role_arn,
        algorithm=verdict.algorithm,
        region_set=verdict.region_set,
    )
    return await answer(request, echoed, on_stream_event=seen.count_stream_event)


def _mask(name: str, value: str) -> str:
    """Hide the replayable parts: the session token, and the signature inside Authorization."""
    lowered = name.lower()
    if lowered == "x-amz-security-token":
        return "***"
    if lowered == "authorization":
        return _SIGNATURE_VALUE_RE.sub(r"\1***", value) if "Signature=" in value else "***"
    return value
