"""What the fake function answers once a request is verified: an echo, /stream, /status/<code>."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

__all__ = [
    "MAX_STREAM_CHUNKS",
    "MAX_STREAM_DELAY",
    "EchoedRequest",
    "answer",
    "lambda_error",
]

# Bounds for the /stream stand-in, so a typo in a query cannot hold a test for hours.
MAX_STREAM_CHUNKS = 10_000
MAX_STREAM_DELAY = 120.0

_STATUS_PATH_RE = re.compile(r"/status/(\d{3})")


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoedRequest:
    """What the echo reports about a verified request (headers already masked)."""

    request_id: str
    headers: Sequence[tuple[str, str]]
    body_sha256: str
    body_length: int
    access_key_id: str | None
    role_arn: str | None = None  # the role whose STS-issued keys signed, when known
    algorithm: str | None = None  # AWS4-HMAC-SHA256, or AWS4-ECDSA-P256-SHA256 for SigV4a
    region_set: str | None = None  # the X-Amz-Region-Set a SigV4a signature covered


def lambda_error(status: int, error_type: str, message: str, request_id: str) -> web.Response:
    """An error in Lambda's shape: JSON {"Message"}, x-amzn-ErrorType, x-amzn-RequestId."""
    return web.json_response(
        {"Message": message},
        status=status,
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id},
    )


async def answer(
    request: web.Request, echoed: EchoedRequest, *, on_stream_event: Callable[[], None]
) -> web.StreamResponse:
    """Route a verified request: /stream, /status/<code>, or else the JSON echo."""
    path, _, query = request.raw_path.partition("?")
    if path == "/stream":
        return await _stream(request, echoed.request_id, on_event=on_stream_event)
    status_match = _STATUS_PATH_RE.fullmatch(path)
    if status_match is not None:
        return _status(request, int(status_match.group(1)), echoed.request_id)
    return web.json_response(
        {
            "verified": True,
            "method": request.method,
            "target": request.raw_path,
            "path": path,
            "query": query,
            "headers": _joined(echoed.headers),
            "body_sha256": echoed.body_sha256,
            "body_length": echoed.body_length,
            "access_key_id": echoed.access_key_id,
            "role_arn": echoed.role_arn,
            "algorithm": echoed.algorithm,
            "region_set": echoed.region_set,
        },
        headers={"x-amzn-RequestId": echoed.request_id},
    )


async def _stream(
    request: web.Request, request_id: str, *, on_event: Callable[[], None]
) -> web.StreamResponse:
    """Server-sent events written and flushed one at a time, like Lambda response streaming."""
    try:
        chunks = min(int(request.query.get("chunks", "5")), MAX_STREAM_CHUNKS)
        delay = min(float(request.query.get("delay", "0.2")), MAX_STREAM_DELAY)
    except ValueError:
        message = "chunks and delay must be numbers"
        return lambda_error(400, "InvalidRequestContentException", message, request_id)
    if request.method == "HEAD":
        chunks = 0
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "x-amzn-RequestId": request_id,
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    for index in range(max(chunks, 0)):
        if index:
            await asyncio.sleep(max(delay, 0.0))
        await response.write(f"data: {index}\n\n".encode())
        on_event()
    await response.write_eof()
    return response


def _status(request: web.Request, status: int, request_id: str) -> web.Response:
    """Answer ``status``; each ``set-cookie`` query value comes back as its own Set-Cookie."""
    if not 200 <= status <= 599:
        message = f"status {status} is not 200-599"
        return lambda_error(400, "InvalidRequestContentException", message, request_id)
    headers = CIMultiDict({"x-amzn-RequestId": request_id})
    for cookie in request.query.getall("set-cookie", ()):
        headers.add("Set-Cookie", cookie)
    if status in (204, 304) or request.method == "HEAD":
        return web.Response(status=status, headers=headers)
    return web.json_response({"status": status}, status=status, headers=headers)


def _joined(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ", "."""
    joined: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        joined[lowered] = f"{joined[lowered]}, {value}" if lowered in joined else value
    return joined
