"""Keep-alive pools of connections, and what opens a connection: TCP, TLS with the origin,
and through a forward proxy (absolute-form targets for http, a CONNECT tunnel for https).

``Pool.request`` is the client's entry point: it sends a request on a pooled connection (or a
new one) and returns its ``Reply`` once the headers arrived; an idempotent request that meets a
reused connection the server closed meanwhile is sent once more on a new one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable
from typing import cast

from proxy.http11.connection import Connection, expire, send
from proxy.http11.errors import (
    CertificateRejected,
    ClientError,
    ConnectFailed,
    ConnectTimeout,
    Disconnected,
)
from proxy.http11.reply import Reply
from proxy.http11.wire import Content, ForwardProxy, Origin, bracketed, encode_head, request_head

# Idle pooled connections older than this are closed rather than reused: servers close their
# idle connections after a while (nginx after 75 s), and one they close just as it is reused
# fails the request sent on it (aiohttp's pool keeps them as long).
KEEPALIVE_SECONDS = 15.0
# Methods that may be sent again when a reused connection turns out closed before any reply
# (RFC 9110 §9.2.2); what browsers, Go's net/http and aiohttp do too.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class Pool:
    """Keep-alive connections, by origin (and forward proxy); with ``limit``, at most that many
    open at once, a request waiting for a free one until its connect deadline."""

    def __init__(self, ssl_context: ssl.SSLContext, *, limit: int | None = None) -> None:
        self._ssl = ssl_context
        self._limit = limit
        self._idle: dict[object, list[Connection]] = {}
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        content: Content | None = None,
        *,
        connect_by: float | None = None,
        reply_by: float | None = None,
        proxy: ForwardProxy | None = None,
    ) -> Reply:
        """Send a request and return its reply once the headers arrived. ``target`` is sent
        as it is (path and query, already encoded); deadlines are loop times."""
        head = request_head(method, target, origin, headers, content, proxy)
        again = method in _IDEMPOTENT
        while True:
            connection = await self._acquire(origin, proxy, connect_by)
            reply = Reply(self, connection, head_only=method == "HEAD")
            try:
                reply._upload = send(connection, head, content)
                await reply._head(reply_by)
            except Disconnected:
                reply.release()
                # A pooled connection the server closed meanwhile: once more on a new one.
                if again and connection.reused and not reply.received_anything:
                    again = False
                    continue
                raise
            except BaseException:
                reply.release()
                raise
            return reply

    def put_back(self, connection: Connection, *, reusable: bool) -> None:
        """A reply is done with ``connection``: keep it for the next request, or close it."""
        if reusable and not connection.closed and not self._closed:
            connection.reused = True
            connection.idle_since = connection.loop.time()
            self._idle.setdefault(connection.key, []).append(connection)
        else:
            connection.close()
        self._wake_one()

    async def close(self) -> None:
        """Close the idle connections; ones in use close when their reply is released."""
        self._closed = True
        idle, self._idle = self._idle, {}  # emptied first: closing one removes it from there
        for connections in idle.values():
            for connection in connections:
                connection.close()

    async def _acquire(
        self, origin: Origin, proxy: ForwardProxy | None, connect_by: float | None
    ) -> Connection:
        key = (origin, proxy)
        loop = asyncio.get_running_loop()
        while True:
            idle = self._idle.get(key)
            while idle:
                connection = idle.pop()  # the most recently used: the least likely closed
                if (
                    not connection.closed
                    and loop.time() - connection.idle_since < KEEPALIVE_SECONDS
                ):
                    return connection
                connection.close()
            if self._limit is None or self._open < self._limit:
                break
            if not self._close_an_idle_one():
                await self._wait_for_a_slot(loop, connect_by)
        self._open += 1
        try:
            connection = await self._connect(loop, key, origin, proxy, connect_by)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        connection.on_gone = self._gone
        return connection

    def _close_an_idle_one(self) -> bool:
        """At the limit, an idle connection to another origin (one a reload replaced, say)
        makes room for a new one."""
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()
                return True
        return False

    async def _wait_for_a_slot(
        self, loop: asyncio.AbstractEventLoop, connect_by: float | None
    ) -> None:
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = None if connect_by is None else loop.call_at(connect_by, expire, waiter)
        try:
            await waiter
        except TimeoutError:
            raise ConnectTimeout(pool_full=True) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, then cancelled: the next in line gets the slot
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _gone(self, connection: Connection) -> None:
        self._open -= 1
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)
        self._wake_one()

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        key: object,
        origin: Origin,
        proxy: ForwardProxy | None,
        connect_by: float | None,
    ) -> Connection:
        tls = origin.scheme == "https"
        connection = Connection(loop, key)
        try:
            async with asyncio.timeout_at(connect_by):
                if proxy is None:
                    await loop.create_connection(
                        lambda: connection,
                        origin.host,
                        origin.port,
                        ssl=self._ssl if tls else None,
                        server_hostname=origin.host if tls else None,
                    )
                else:
                    await loop.create_connection(lambda: connection, proxy.host, proxy.port)
                    if tls:
                        await _tunnel(connection, origin, proxy, self._ssl, connect_by)
        except TimeoutError:
            connection.close()
            raise ConnectTimeout(pool_full=False) from None
        except ssl.SSLCertVerificationError as exc:
            connection.close()
            raise CertificateRejected(exc.verify_message or str(exc)) from exc
        except OSError as exc:
            connection.close()
            raise ConnectFailed(exc.strerror or str(exc) or type(exc).__name__) from exc
        except BaseException:
            connection.close()
            raise
        return connection


async def _tunnel(
    connection: Connection,
    origin: Origin,
    proxy: ForwardProxy,
    context: ssl.SSLContext,
    connect_by: float | None,
) -> None:
    """CONNECT through the forward proxy, then TLS with the origin inside the tunnel."""
    authority = f"{bracketed(origin.host)}:{origin.port}"
    headers = [("Host", authority)]
    if proxy.authorization is not None:
        headers.append(("Proxy-Authorization", proxy.authorization))
    head = encode_head(f"CONNECT {authority} HTTP/1.1", headers)
    reply = Reply(None, connection, head_only=True)
    assert connection.transport is not None  # noqa: S101 - connected above
    connection.transport.write(head)
    try:
        await reply._head(connect_by)
    except ClientError as exc:
        raise ConnectFailed(f"the forward proxy {proxy.host}:{proxy.port} failed: {exc}") from exc
    finally:
        connection.reply = None
    if not 200 <= reply.status < 300:
        raise ConnectFailed(
            f"the forward proxy {proxy.host}:{proxy.port} refused the tunnel to {authority} "
            f"({reply.status} {reply.reason})"
        )
    transport = await connection.loop.start_tls(
        connection.transport, connection, context, server_hostname=origin.host
    )
    connection.transport = cast(asyncio.Transport, transport)
