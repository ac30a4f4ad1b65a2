"""The only outbound I/O: send a request upstream, stream its reply back, map failures to ours."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict
from yarl import URL

from proxy.body import Body
from proxy.errors import UpstreamTimeoutError, UpstreamUnreachableError
from proxy.headers import reply_headers
from proxy.settings import Route, Timeouts

log = logging.getLogger("signing_proxy.upstream")

# The proxy forwards the client's headers and adds none of its own (a User-Agent or
# Accept-Encoding of aiohttp's would change what the origin sees and answers).
_SKIP_AUTO_HEADERS = frozenset(
    {hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE}
)
# Error replies are small JSON; read at most this much of one to explain it in the log.
ERROR_BODY_LIMIT = 64 * 1024


def client_session(ssl_context: ssl.SSLContext, *, limit: int = 0) -> aiohttp.ClientSession:
    """A pooled session (at most ``limit`` connections, 0: no limit): no cookies, no
    decompression, no redirects."""
    connector = aiohttp.TCPConnector(
        limit=limit,
        ttl_dns_cache=10,
        ssl=ssl_context,
        # Works around TLS transports left open by aborts, fixed in Python 3.12.7 (aiohttp
        # warns when asked for it there).
        enable_cleanup_closed=sys.version_info < (3, 12, 7),
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=_SKIP_AUTO_HEADERS,
        timeout=aiohttp.ClientTimeout(total=None),
    )


class Pools:
    """The upstream connection pools: one shared by the routes, and one of its own for each
    route with ``max_connections``, so that route never holds more connections than that."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl = ssl_context
        self.shared = client_session(ssl_context)
        # Made on a route's first request. One whose route a reload changed stays until
        # shutdown: closing it would cut the requests still using it.
        self._own: dict[tuple[str, int], aiohttp.ClientSession] = {}

    def session(self, route: Route) -> aiohttp.ClientSession:
        """The pool ``route`` sends through."""
        if route.max_connections is None:
            return self.shared
        key = (route.name, route.max_connections)
        session = self._own.get(key)
        if session is None:
            session = self._own[key] = client_session(self._ssl, limit=route.max_connections)
        return session

    async def close(self) -> None:
        for session in (self.shared, *self._own.values()):
            await session.close()


class SpooledPayload(aiohttp.payload.Payload):
    """A spooled body sent with its Content-Length; disk reads happen on a worker thread."""

    def __init__(self, body: Body) -> None:
        super().__init__(body, content_type=None)
        self._size = body.size
        self._body = body

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return "".join(chunk.decode(encoding, errors) for chunk in self._body.chunks())

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        chunks = self._body.chunks()
        while chunk := await asyncio.to_thread(next, chunks, b""):
            await writer.write(chunk)


def payload(body: Body) -> bytes | SpooledPayload | None:
    """What aiohttp sends: nothing, the bytes in memory, or the spool file streamed."""
    if body.size == 0:
        return None  # aiohttp then sends Content-Length: 0 where a method expects a body
    memory = body.in_memory
    return memory if memory is not None else SpooledPayload(body)


@contextlib.asynccontextmanager
async def exchange(
    session: aiohttp.ClientSession,
    *,
    route: Route,
    method: str,
    url: str,
    headers: CIMultiDict[str],
    body: Body,
    deadline: float | None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """Send one request and yield the reply once its headers arrived; the connection is
    released (or closed, if the reply was not read to its end) on exit.

    ``deadline`` is the loop time by which the whole exchange must end (timeouts.total).
    """
    timeouts = route.timeouts
    # encoded=True: the target was normalised by routing and signed as it is; yarl must not
    # re-quote it.
    target = URL(url, encoded=True)
    loop = asyncio.get_running_loop()
    # aiohttp's own read timeout bounds the wait for the reply and every later read; an
    # asyncio timeout is added only where first_byte is the tighter bound, or for total.
    head = timeouts.first_byte if timeouts.first_byte < _sock_read(timeouts) else None
    when = _earliest(None if head is None else loop.time() + head, deadline)
    try:
        request = session.request(
            method,
            target,
            headers=headers,
            data=payload(body),
            allow_redirects=False,
            proxy=forward_proxy(route.upstream.scheme, route.upstream.host),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=timeouts.connect,
                sock_connect=timeouts.connect,
                sock_read=_sock_read(timeouts),
            ),
        )
        if when is None:
            response = await request
        else:
            async with asyncio.timeout_at(when):
                response = await request
    except aiohttp.ConnectionTimeoutError as exc:
        # With a pool limit, the time spent waiting for a free connection counts too.
        busy = (
            f", or all max_connections ({route.max_connections}) were in use"
            if route.max_connections
            else ""
        )
        raise UpstreamTimeoutError(
            f"could not connect to the upstream {route.upstream.origin} within "
            f"{timeouts.connect:g}s (timeouts.connect{busy})",
            route=route.name,
            nothing_sent=True,
        ) from exc
    except TimeoutError as exc:
        which = "total" if deadline is not None and loop.time() >= deadline else "first_byte"
        raise UpstreamTimeoutError(
            f"the upstream {route.upstream.origin} sent no reply before timeouts.{which} "
            f"({_seconds(route, which)})",
            route=route.name,
        ) from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        raise UpstreamUnreachableError(
            f"the TLS certificate of {route.upstream.origin} was not accepted: "
            f"{exc.certificate_error}",
            route=route.name,
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamUnreachableError(
            f"could not connect to the upstream {route.upstream.origin}: {exc.os_error}",
            route=route.name,
            nothing_sent=True,
        ) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnreachableError(
            f"the upstream {route.upstream.origin} closed the connection before replying "
            f"({_describe(exc)})",
            route=route.name,
        ) from exc
    try:
        yield response
    finally:
        response.release()


@dataclass(slots=True)
class Relayed:
    """What relaying a reply did: the client response, a 403's body, bytes sent, whether the
    reply reached its end."""

    response: web.StreamResponse
    error_body: bytes | None
    bytes_out: int = 0
    complete: bool = False
    # Why the reply stopped short: "upstream_reset", "idle_timeout", "total_timeout" or
    # "client_gone"; None when it reached its end.
    cut: str | None = None


async def relay(
    request: web.BaseRequest,
    response: aiohttp.ClientResponse,
    *,
    route: Route,
    deadline: float | None,
    error_body: bytes | None = None,
) -> Relayed:
    """Stream the upstream's reply to the client chunk by chunk as it arrives.

    A 403's (small) body is read first (unless the caller already did: ``error_body``), so
    the caller can explain it. A failure after the reply started aborts the client
    connection: a truncated reply must not look complete.
    """
    out = web.StreamResponse(status=response.status, reason=response.reason)
    out.headers.extend(reply_headers(response.headers))
    if response.status == 403 and error_body is None:
        error_body = await read_error_body(response, route=route, deadline=deadline)
    relayed = Relayed(out, error_body)
    await out.prepare(request)
    loop = asyncio.get_running_loop()
    # Only an idle bound tighter than aiohttp's read timeout, or timeouts.total, needs an
    # asyncio timeout per read; by default aiohttp's read timeout is the idle bound.
    idle = route.timeouts.idle if route.timeouts.idle < _sock_read(route.timeouts) else None
    try:
        if error_body:
            await out.write(error_body)
            relayed.bytes_out += len(error_body)
        while True:
            when = _earliest(None if idle is None else loop.time() + idle, deadline)
            if when is None:
                chunk = await response.content.readany()
            else:
                async with asyncio.timeout_at(when):
                    chunk = await response.content.readany()
            if not chunk:
                break
            await out.write(chunk)
            relayed.bytes_out += len(chunk)
    except TimeoutError:
        which = "total" if deadline is not None and loop.time() >= deadline else "idle"
        log.warning(
            "route %s: timeouts.%s (%s) fired mid-reply; aborting the client connection",
            route.name,
            which,
            _seconds(route, which),
        )
        _abort(request)
        relayed.cut = f"{which}_timeout"
        return relayed
    except ConnectionError:
        log.info("route %s: the client closed the connection mid-reply", route.name)
        relayed.cut = "client_gone"
        return relayed
    except aiohttp.ClientError as exc:
        log.warning(
            "route %s: the upstream connection failed mid-reply (%s); aborting the client "
            "connection",
            route.name,
            _describe(exc),
        )
        _abort(request)
        relayed.cut = "upstream_reset"
        return relayed
    await out.write_eof()
    relayed.complete = True
    return relayed


async def read_error_body(
    response: aiohttp.ClientResponse, *, route: Route, deadline: float | None
) -> bytes:
    """Up to ERROR_BODY_LIMIT bytes of a 403 reply; the rest, if any, is streamed after it."""
    data = bytearray()
    when = _earliest(asyncio.get_running_loop().time() + route.timeouts.idle, deadline)
    try:
        async with asyncio.timeout_at(when):
            while len(data) < ERROR_BODY_LIMIT:
                chunk = await response.content.read(ERROR_BODY_LIMIT - len(data))
                if not chunk:
                    break
                data += chunk
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise UpstreamUnreachableError(
            f"the upstream {route.upstream.origin} failed while sending a 403 reply "
            f"({_describe(exc)})",
            route=route.name,
        ) from exc
    return bytes(data)


@functools.lru_cache(maxsize=64)
def forward_proxy(scheme: str, host: str) -> str | None:
    """The HTTPS_PROXY / HTTP_PROXY for an upstream, unless NO_PROXY exempts its host: the
    usual environment variables of corporate networks (read once per upstream; on macOS and
    Windows the system's proxy settings count too, as urllib reads them)."""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


def _sock_read(timeouts: Timeouts) -> float:
    """aiohttp's read timeout: the looser of first_byte and idle (equal by default)."""
    return max(timeouts.first_byte, timeouts.idle)


def _earliest(when: float | None, deadline: float | None) -> float | None:
    if when is None:
        return deadline
    return when if deadline is None else min(when, deadline)


def _seconds(route: Route, which: str) -> str:
    value = getattr(route.timeouts, which)
    return f"{value:g}s"


def _abort(request: web.BaseRequest) -> None:
    # Closing without the final chunk (or short of Content-Length) tells the client the reply
    # is incomplete; aiohttp then skips writing the end of the message.
    transport = request.transport
    if transport is not None:
        transport.abort()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
