"""A fake CloudFront distribution that forwards to the fake function URL as the real one does.

Behaviour modelled: origin request policy AllViewerExceptHostHeader with CachingDisabled
(Host replaced by the origin's domain, every other viewer header forwarded, nothing cached),
optionally Origin Access Control (CloudFront signs the origin request itself), and the requests
CloudFront refuses itself (``restrictions``: allowed methods, geographic restriction, WAF).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from yarl import URL

from proxy.emulator.cloudfront_headers import (
    POP,
    cf_id,
    origin_request_headers,
    reply_headers,
    via,
)
from proxy.emulator.dates import http_date
from proxy.emulator.oac import OAC_REPLACED, sign_as_oac
from proxy.emulator.restrictions import Restrictions, refusal
from proxy.emulator.verify import Key

__all__ = [
    "CLOUDFRONT_CONFIG",
    "MAX_VIEWER_BODY",
    "ORIGIN_CONNECT_TIMEOUT",
    "ORIGIN_READ_TIMEOUT",
    "VIEWER_BODY_TIMEOUT",
    "CloudFrontConfig",
    "create_cloudfront_app",
]

# CloudFront's default origin response timeout; also the longest pause allowed mid-reply.
ORIGIN_READ_TIMEOUT = 30.0
ORIGIN_CONNECT_TIMEOUT = 10.0
# How long a viewer may take to send its body before CloudFront gives up on it.
VIEWER_BODY_TIMEOUT = 60.0
# Big enough that an oversized body reaches the function, which answers Lambda's own 413.
MAX_VIEWER_BODY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CloudFrontConfig:
    """Where the distribution's origin is and how it talks to it."""

    origin_url: str
    function_host: str
    region: str
    oac_key_id: str | None
    oac_key: Key | None
    clock: Callable[[], datetime]
    origin_read_timeout: float
    restrictions: Restrictions


CLOUDFRONT_CONFIG = web.AppKey("cloudfront_config", CloudFrontConfig)
_ORIGIN_SESSION = web.AppKey("cloudfront_origin_session", aiohttp.ClientSession)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_cloudfront_app(
    *,
    origin_url: str,
    function_host: str,
    region: str,
    oac_key_id: str | None = None,
    oac_key: Key | None = None,
    clock: Callable[[], datetime] | None = None,
    origin_read_timeout: float = ORIGIN_READ_TIMEOUT,
    restrictions: Restrictions | None = None,
) -> web.Application:
    """An aiohttp app that forwards every request to ``origin_url`` (http://127.0.0.1:PORT).

    ``oac_key_id`` and ``oac_key`` together turn on Origin Access Control signing;
    ``restrictions`` are the requests it refuses with its own 403 page. Its own error pages are
    dated by ``clock``; relayed replies keep the origin's Date. Serve it
    with ``web.AppRunner(app, auto_decompress=False)`` (as ``Emulator`` does) so a compressed
    body is forwarded as sent.
    """
    if (oac_key_id is None) != (oac_key is None):
        raise ValueError("oac_key_id and oac_key must be given together")
    app = web.Application(client_max_size=MAX_VIEWER_BODY)
    app[CLOUDFRONT_CONFIG] = CloudFrontConfig(
        origin_url=origin_url.rstrip("/"),
        function_host=function_host.lower(),
        region=region,
        oac_key_id=oac_key_id,
        oac_key=oac_key,
        clock=clock or _utc_now,
        origin_read_timeout=origin_read_timeout,
        restrictions=restrictions or Restrictions(),
    )
    app.cleanup_ctx.append(_origin_session)
    app.router.add_route("*", r"/{tail:[\s\S]*}", _handle)
    return app


async def _origin_session(app: web.Application) -> AsyncIterator[None]:
    config = app[CLOUDFRONT_CONFIG]
    timeout = aiohttp.ClientTimeout(
        total=None,  # a streamed reply may last as long as the origin keeps sending
        connect=ORIGIN_CONNECT_TIMEOUT,
        sock_read=config.origin_read_timeout,
    )
    async with aiohttp.ClientSession(
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        # Forward what the viewer sent and nothing aiohttp would invent on its own.
        skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
    ) as session:
        app[_ORIGIN_SESSION] = session
        yield


async def _handle(request: web.Request) -> web.StreamResponse:
    config = request.app[CLOUDFRONT_CONFIG]
    request_id = cf_id()
    try:
        async with asyncio.timeout(VIEWER_BODY_TIMEOUT):
            body = await request.read()
    except TimeoutError:
        detail = "The viewer did not send the request body in time."
        return _error_page(request, 408, detail, request_id=request_id)
    refused = refusal(
        config.restrictions,
        method=request.method,
        path=request.raw_path.partition("?")[0],
        has_body=bool(body),
    )
    if refused is not None:
        return _error_page(request, 403, refused, request_id=request_id)

    headers = origin_request_headers(
        request.headers,
        function_host=config.function_host,
        client_address=request.remote or "127.0.0.1",
        scheme=request.scheme,
        request_id=request_id,
        also_drop=OAC_REPLACED if config.oac_key is not None else (),
    )
    if config.oac_key_id is not None and config.oac_key is not None:
        sign_as_oac(
            headers,
            method=request.method,
            target=request.raw_path,
            function_host=config.function_host,
            region=config.region,
            key_id=config.oac_key_id,
            key=config.oac_key,
            now=config.clock(),
        )

    # encoded=True: the target goes to the origin byte for byte, never re-quoted.
    url = URL(config.origin_url + request.raw_path, encoded=True)
    try:
        upstream = await request.app[_ORIGIN_SESSION].request(
            request.method,
            url,
            headers=headers,
            # BytesIO, not bytes: aiohttp warns about large raw bytes bodies. Either way it
            # knows the size and sends Content-Length.
            data=io.BytesIO(body) if body else None,
            allow_redirects=False,
        )
    except TimeoutError:
        detail = "CloudFront attempted to reach the origin, but it did not answer in time."
        return _error_page(request, 504, detail, request_id=request_id)
    except aiohttp.ClientError:
        detail = "CloudFront wasn't able to connect to the origin."
        return _error_page(request, 502, detail, request_id=request_id)
    try:
        return await _relay(request, upstream, request_id=request_id)
    finally:
        upstream.release()


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse, *, request_id: str
) -> web.StreamResponse:
    """Pass the origin's reply on, chunk by chunk as it arrives."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(reply_headers(upstream.headers, request_id=request_id))
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (TimeoutError, aiohttp.ClientError):
        # The origin stalled or broke mid-reply. Ending the chunked body normally would
        # tell the viewer the reply is complete, so cut the viewer connection instead.
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


# The lines CloudFront's error pages add under the reason.
_TRY_LATER = (
    "We can't connect to the server for this app or website at this time. There might be too "
    "much traffic or a configuration error. Try again later, or contact the app or website owner."
)
_SEE_DOCS = (
    "If you provide content to customers through CloudFront, you can find steps to troubleshoot "
    "and help prevent this error by reviewing the CloudFront documentation."
)


def _error_page(request: web.Request, status: int, detail: str, *, request_id: str) -> web.Response:
    """An error CloudFront answers itself: HTML, Server: CloudFront, no x-amzn-ErrorType."""
    html = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" '
        '"http://www.w3.org/TR/html4/loose.dtd">\n'
        '<HTML><HEAD><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n'
        "<TITLE>ERROR: The request could not be satisfied</TITLE>\n"
        "</HEAD><BODY>\n"
        f"<H1>{status} ERROR</H1>\n"
        "<H2>The request could not be satisfied.</H2>\n"
        '<HR noshade size="1px">\n'
        f"{detail}\n"
        f"{_TRY_LATER}\n"
        '<BR clear="all">\n'
        f"{_SEE_DOCS}\n"
        '<BR clear="all">\n'
        '<HR noshade size="1px">\n'
        "<PRE>\n"
        "Generated by cloudfront (CloudFront)\n"
        f"Request ID: {request_id}\n"
        "</PRE>\n"
        "<ADDRESS>\n</ADDRESS>\n"
        "</BODY></HTML>"
    )
    return web.Response(
        status=status,
        text=None if request.method == "HEAD" else html,
        content_type="text/html",
        headers={
            "Server": "CloudFront",
            "X-Cache": "Error from cloudfront",
            "Via": via(),
            "X-Amz-Cf-Pop": POP,
            "X-Amz-Cf-Id": request_id,
            "Date": http_date(request.app[CLOUDFRONT_CONFIG].clock()),
        },
    )
