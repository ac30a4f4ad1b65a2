"""The only outbound I/O: send a request upstream, stream its reply back, map failures to ours."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
import struct
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from proxy.core.headers import reply_headers
from proxy.errors import (
    UpstreamHeaderTooLargeError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)
from proxy.http11.errors import (
    CertificateRejected,
    ClientError,
    ConnectFailed,
    ConnectTimeout,
    HeadTooLarge,
)
from proxy.http11.pool import Pool
from proxy.http11.reply import FIELD_LIMIT, HEAD_LIMIT, Reply
from proxy.http11.wire import Content, ForwardProxy, Streamed
from proxy.model import Route, Upstream
from proxy.serve.body import Body

log = logging.getLogger("signing_proxy.upstream")

# Error replies are small JSON; read at most this much of one to explain it in the log.
ERROR_BODY_LIMIT = 64 * 1024


class Pools:
    """The upstream connection pools: one shared by the routes, and one of its own for each
    route with ``max_connections``, so that route never holds more connections than that."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl = ssl_context
        self.shared = Pool(ssl_context)
        # Made on a route's first request. One whose route a reload changed stays until
        # shutdown: closing it would cut the requests still using it.
        self._own: dict[tuple[str, int], Pool] = {}

    def pool(self, route: Route) -> Pool:
        """The pool ``route`` sends through."""
        if route.max_connections is None:
            return self.shared
        key = (route.name, route.max_connections)
        pool = self._own.get(key)
        if pool is None:
            pool = self._own[key] = Pool(self._ssl, limit=route.max_connections)
        return pool

    async def close(self) -> None:
        for pool in (self.shared, *self._own.values()):
            await pool.close()


def content(body: Body) -> Content | None:
    """What is sent: nothing, the bytes in memory, or the spool file: read on the event loop
    while the page cache holds it (a file just written), else on a worker thread."""
    if body.size == 0:
        return None  # the client then sends Content-Length: 0 where a method expects a body
    memory = body.in_memory
    if memory is not None:
        return memory

    async def spooled() -> AsyncIterator[bytes | bytearray]:
        offset = 0
        while offset < body.size:
            chunk: bytes | bytearray | None = body.cached_chunk(offset)
            if chunk is None:
                chunk = await asyncio.to_thread(body.chunk, offset)
            if not chunk:
                break  # shorter than its size: the upload closes the connection
            offset += len(chunk)
            yield chunk

    return Streamed(body.size, spooled)


async def exchange(
    pool: Pool,
    *,
    route: Route,
    method: str,
    target: str,
    headers: CIMultiDict[str],
    body: Body,
    deadline: float | None,
) -> Reply:
    """Send one request and return the reply once its headers arrived; the caller releases
    it (``Reply.release``: the connection goes back to the pool, or is closed if the reply
    was not read to its end).

    ``target`` is the path and query as signed (normalised by routing: sent as it is).
    ``deadline`` is the loop time by which the whole exchange must end (timeouts.total).
    """
    timeouts = route.timeouts
    upstream = route.upstream
    now = asyncio.get_running_loop().time()
    try:
        return await pool.request(
            upstream,
            method,
            target,
            headers.items(),
            content(body),
            connect_by=_earliest(now + timeouts.connect, deadline),
            reply_by=_earliest(now + timeouts.first_byte, deadline),
            proxy=_forward_proxy(upstream, route.name),
        )
    except ConnectTimeout as exc:
        if _past(deadline):
            raise _no_reply(route, "total") from exc
        # With a pool limit, the time spent waiting for a free connection counts too.
        busy = (
            f", or all max_connections ({route.max_connections}) were in use"
            if route.max_connections
            else ""
        )
        raise UpstreamTimeoutError(
            f"could not connect to the upstream {upstream.origin} within "
            f"{timeouts.connect:g}s (timeouts.connect{busy})",
            route=route.name,
            nothing_sent=True,
        ) from exc
    except TimeoutError as exc:
        raise _no_reply(route, "total" if _past(deadline) else "first_byte") from exc
    except CertificateRejected as exc:
        raise UpstreamUnreachableError(
            f"the TLS certificate of {upstream.origin} was not accepted: {exc.reason}",
            route=route.name,
        ) from exc
    except ConnectFailed as exc:
        raise UpstreamUnreachableError(
            f"could not connect to the upstream {upstream.origin}: {exc.reason}",
            route=route.name,
            nothing_sent=True,
        ) from exc
    except HeadTooLarge as exc:
        # Not a connect failure: the request was sent, so it is not tried again.
        raise UpstreamHeaderTooLargeError(
            f"the upstream {upstream.origin} sent a reply head over "
            f"{HEAD_LIMIT // 1024} KiB or {FIELD_LIMIT} header fields; "
            "refused",
            route=route.name,
        ) from exc
    except ClientError as exc:
        raise UpstreamUnreachableError(
            f"the upstream {upstream.origin} closed the connection before replying ({exc})",
            route=route.name,
        ) from exc


def _no_reply(route: Route, which: str) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(
        f"the upstream {route.upstream.origin} sent no reply before timeouts.{which} "
        f"({_seconds(route, which)})",
        route=route.name,
    )


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
    reply: Reply,
    *,
    route: Route,
    deadline: float | None,
    request_id: str,
    error_body: bytes | None = None,
    started: Callable[[Relayed], None] | None = None,
) -> Relayed:
    """Stream the upstream's reply to the client chunk by chunk as it arrives, with
    ``request_id`` as its X-Request-Id.

    A 403's (small) body is read first (unless the caller already did: ``error_body``), so
    the caller can explain it. A failure after the reply started aborts the client
    connection: a truncated reply must not look complete.
    """
    headers = reply_headers(reply.headers, request_id=request_id)
    if reply.status == 403 and error_body is None:
        error_body = await read_error_body(reply, route=route, deadline=deadline)
    if not error_body and reply.complete:
        # All of it is here (a small reply arrives with its headers): one write to the client.
        whole = _Whole(status=reply.status, reason=reply.reason, headers=headers)
        relayed = Relayed(whole, error_body)
        if started is not None:
            started(relayed)
        body = reply.buffered()
        await whole.prepare(request)
        try:
            await whole.write_eof(body)
        except ConnectionError:
            relayed.cut = "client_gone"
            return relayed
        relayed.bytes_out, relayed.complete = len(body), True
        return relayed
    out = web.StreamResponse(status=reply.status, reason=reply.reason, headers=headers)
    relayed = Relayed(out, error_body)
    if started is not None:
        # The caller's view of what was sent, should the client leave (this task is then
        # cancelled mid-write and returns nothing).
        started(relayed)
    await out.prepare(request)
    loop = asyncio.get_running_loop()
    idle = route.timeouts.idle
    try:
        if error_body:
            await out.write(error_body)
            relayed.bytes_out += len(error_body)
        while chunk := await reply.read_chunk(_earliest(loop.time() + idle, deadline)):
            await out.write(chunk)
            relayed.bytes_out += len(chunk)
    except TimeoutError:
        which = "total" if _past(deadline) else "idle"
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
    except ClientError as exc:
        log.warning(
            "route %s: the upstream connection failed mid-reply (%s); aborting the client "
            "connection",
            route.name,
            exc,
        )
        _abort(request)
        relayed.cut = "upstream_reset"
        return relayed
    await out.write_eof()
    relayed.complete = True
    return relayed


class _Whole(web.StreamResponse):
    """A reply written in one piece: aiohttp keeps the headers until the body comes (as its
    own ``web.Response`` does), instead of writing them on their own first."""

    _send_headers_immediately = False


async def read_error_body(reply: Reply, *, route: Route, deadline: float | None) -> bytes:
    """Up to ERROR_BODY_LIMIT bytes of a 403 reply; the rest, if any, is streamed after it."""
    data = bytearray()
    until = _earliest(asyncio.get_running_loop().time() + route.timeouts.idle, deadline)
    try:
        while len(data) < ERROR_BODY_LIMIT and (chunk := await reply.read_chunk(until)):
            data += chunk
    except (TimeoutError, ClientError) as exc:
        raise UpstreamUnreachableError(
            f"the upstream {route.upstream.origin} failed while sending a 403 reply "
            f"({exc or 'timed out'})",
            route=route.name,
        ) from exc
    reply.unread(bytes(data[ERROR_BODY_LIMIT:]))
    return bytes(data[:ERROR_BODY_LIMIT])


@functools.lru_cache(maxsize=64)
def forward_proxy(scheme: str, host: str) -> str | None:
    """The HTTPS_PROXY / HTTP_PROXY for an upstream, unless NO_PROXY exempts its host: the
    usual environment variables of corporate networks (read once per upstream; on macOS and
    Windows the system's proxy settings count too, as urllib reads them)."""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


def _forward_proxy(upstream: Upstream, route: str) -> ForwardProxy | None:
    url = forward_proxy(upstream.scheme, upstream.host)
    if url is None:
        return None
    try:
        return _parsed_proxy(url)
    except ValueError as exc:
        name = f"{upstream.scheme.upper()}_PROXY"
        raise UpstreamUnreachableError(
            f"the forward proxy in {name} cannot be used: {exc}", route=route
        ) from None


@functools.lru_cache(maxsize=16)
def _parsed_proxy(url: str) -> ForwardProxy:
    return ForwardProxy.parse(url)


def _earliest(when: float, deadline: float | None) -> float:
    return when if deadline is None else min(when, deadline)


def _past(deadline: float | None) -> bool:
    return deadline is not None and asyncio.get_running_loop().time() >= deadline


def _seconds(route: Route, which: str) -> str:
    value = getattr(route.timeouts, which)
    return f"{value:g}s"


def _abort(request: web.BaseRequest) -> None:
    # Closing without the final chunk (or short of Content-Length) tells an HTTP/1.1 client
    # the reply is incomplete. An HTTP/1.0 reply without Content-Length ends where the
    # connection does, so a plain close would pass a truncated body off as whole: reset the
    # connection instead (SO_LINGER 0 makes the close send RST), for every client alike.
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
