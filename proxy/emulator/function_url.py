"""A fake Lambda function URL (auth type AWS_IAM): reads the body and judges it like Lambda."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from proxy.emulator.echo import EchoedRequest, answer, lambda_error
from proxy.emulator.verify import (
    ACCESS_DENIED,
    INVALID_SIGNATURE,
    Key,
    Verdict,
    verify_request,
)

__all__ = [
    "BODY_READ_TIMEOUT",
    "FUNCTION_CONFIG",
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
UNSIGNED_PAYLOAD_MESSAGE = (
    "Lambda doesn't support unsigned payloads. "
    "Add the x-amz-content-sha256 header with the SHA-256 of the body."
)
# How long a client may take to send the body; a stalled upload must not hold a handler.
BODY_READ_TIMEOUT = 60.0

_FUNCTION_HOST_RE = re.compile(r"[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws")
_SIGNATURE_VALUE_RE = re.compile(r"(Signature=)[^,\s]*")
_READ_CHUNK = 64 * 1024


def region_from_host(host: str) -> str:
    """The region named in a function-URL host ``<id>.lambda-url.<region>.on.aws``."""
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
    # Grows while a /stream reply is being written, so tests can observe ordering.
    stream_events_written: int = field(default=0)

    def count_stream_event(self) -> None:
        self.stream_events_written += 1


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """Everything the fake function needs to judge a request."""

    host: str
    region: str
    keys: Mapping[str, Key]
    clock: Callable[[], datetime]


FUNCTION_CONFIG = web.AppKey("function_config", FunctionConfig)
SEEN_REQUESTS = web.AppKey("seen_requests", list[SeenRequest])


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_function_app(
    *,
    function_host: str,
    keys: Mapping[str, Key],
    clock: Callable[[], datetime] | None = None,
    region: str | None = None,
    requests: list[SeenRequest] | None = None,
) -> web.Application:
    """An aiohttp app that behaves like a function URL; ``requests`` collects what it saw.

    Serve it with ``web.AppRunner(app, auto_decompress=False)`` (as ``Emulator`` does) so a
    compressed body is hashed as sent.
    """
    host = function_host.lower()
    app = web.Application()  # the body cap is enforced while reading, as Lambda's 413
    app[FUNCTION_CONFIG] = FunctionConfig(
        host=host,
        region=region or region_from_host(host),
        keys=dict(keys),
        clock=clock or _utc_now,
    )
    app[SEEN_REQUESTS] = requests if requests is not None else []
    app.router.add_route("*", r"/{tail:[\s\S]*}", _handle)
    return app


async def _handle(request: web.Request) -> web.StreamResponse:
    config = request.app[FUNCTION_CONFIG]
    request_id = str(uuid.uuid4())
    headers = tuple(request.headers.items())

    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT):
            body = await _read_body(request)
    except TimeoutError:
        message = f"The request body did not arrive within {BODY_READ_TIMEOUT:g} seconds."
        return lambda_error(408, "RequestTimeoutException", message, request_id)
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
        verdict = _decide(
            config, request=request, headers=headers, body=body, body_sha256=body_sha256
        )
    seen = SeenRequest(
        method=request.method,
        target=request.raw_path,
        headers=tuple((name, _mask(name, value)) for name, value in headers),
        body_sha256=body_sha256,
        body_length=-1 if body is None else len(body),
        verdict=verdict,
        request_id=request_id,
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
    )
    return await answer(request, echoed, on_stream_event=seen.count_stream_event)


async def _read_body(request: web.Request) -> bytes | None:
    """The whole body, or None when it is over Lambda's cap (read no further than the cap)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > LAMBDA_MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _decide(
    config: FunctionConfig,
    *,
    request: web.Request,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    body_sha256: str,
) -> Verdict:
    received_host = request.headers.get("Host", "")
    if received_host.lower() != config.host:
        # A real function URL is only reachable under its own host; CloudFront must rewrite it.
        return Verdict(
            ok=False,
            error_type=INVALID_SIGNATURE,
            message=(
                f"The Host header {received_host!r} is not this function URL's host "
                f"{config.host!r}; the request must be signed for and sent with that host."
            ),
            access_key_id=None,
        )
    verdict = verify_request(
        method=request.method,
        target=request.raw_path,
        headers=headers,
        body_sha256=body_sha256,
        keys=config.keys,
        now=config.clock(),
        region=config.region,
    )
    # Lambda refuses a body whose hash is not announced, whoever signed it (OAC in particular).
    if (
        verdict.error_type != ACCESS_DENIED
        and body
        and "x-amz-content-sha256" not in request.headers
    ):
        return Verdict(
            ok=False,
            error_type=INVALID_SIGNATURE,
            message=UNSIGNED_PAYLOAD_MESSAGE,
            access_key_id=verdict.access_key_id,
        )
    return verdict


def _mask(name: str, value: str) -> str:
    """Hide the replayable parts: the session token, and the signature inside Authorization."""
    lowered = name.lower()
    if lowered == "x-amz-security-token":
        return "***"
    if lowered == "authorization":
        return _SIGNATURE_VALUE_RE.sub(r"\1***", value) if "Signature=" in value else "***"
    return value
