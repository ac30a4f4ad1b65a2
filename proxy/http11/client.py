"""The upstream HTTP/1.1 client: keep-alive pools on asyncio, replies parsed by httptools.

aiohttp's ClientSession was the largest part of a request's cost: ~40 µs of CPU per small
request, against ~10 µs for this client (``bench/parts.py``). This client does only what the
proxy needs: one request at a time per connection, the body sent as it is (bytes, or a spool
read again from its start), the reply streamed back with flow control. It adds no headers
except Host and Content-Length, follows no redirects, keeps no cookies and decodes nothing.
A reply's head is bounded while it arrives (HEAD_LIMIT bytes, FIELD_LIMIT fields): a hostile
server cannot make the proxy hold an endless one.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import unquote, urlsplit

import httptools
from multidict import CIMultiDict

# A reply body buffered beyond this makes the connection stop reading until the client of the
# proxy catches up: a slow reader must not make the proxy hold the whole reply.
_HIGH_WATER = 256 * 1024
# Idle pooled connections older than this are closed rather than reused: servers close their
# idle connections after a while (nginx after 75 s), and one they close just as it is reused
# fails the request sent on it (aiohttp's pool keeps them as long).
KEEPALIVE_SECONDS = 15.0
# Methods that may be sent again when a reused connection turns out closed before any reply
# (RFC 9110 §9.2.2); what browsers, Go's net/http and aiohttp do too.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# A request with one of these methods says Content-Length: 0 when it has no body.
_BODY_EXPECTED = frozenset({"POST", "PUT", "PATCH"})
# The most a reply's head may take: bytes before the body (status lines and header fields of
# the interim replies and the final one, all together), and header fields in any one head.
# Envoy's bounds; a hostile upstream must not make the proxy hold an endless header.
HEAD_LIMIT = 64 * 1024
FIELD_LIMIT = 100


class ClientError(Exception):
    """The exchange failed; ``nothing_sent`` when the request surely never reached the server."""

    nothing_sent = False


class ConnectFailed(ClientError):
    """No connection could be made (refused, unreachable, name not found, TLS failure)."""

    nothing_sent = True

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectTimeout(ClientError):
    """No connection within the connect deadline; ``pool_full`` when waiting for a free one."""

    nothing_sent = True

    def __init__(self, *, pool_full: bool) -> None:
        super().__init__("connect timeout")
        self.pool_full = pool_full


class CertificateRejected(ConnectFailed):
    """The server's TLS certificate did not verify."""


class Disconnected(ClientError):
    """The server closed the connection before the reply reached its end."""


class MalformedReply(ClientError):
    """The server's reply is not valid HTTP/1.1."""


class HeadTooLarge(MalformedReply):
    """The server's reply head grew past HEAD_LIMIT bytes (interim replies included) or
    FIELD_LIMIT header fields (or its trailers past FIELD_LIMIT fields): refused as soon as it
    did, and the connection closed, instead of holding the rest in memory."""


class Origin(Protocol):
    """Where requests go: ``host`` without brackets, ``host_header`` as the Host header says
    it. Hashable: connections are pooled by origin."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def host_header(self) -> str: ...
    def __hash__(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ForwardProxy:
    """An HTTP forward proxy (HTTP_PROXY / HTTPS_PROXY): CONNECT tunnels for https origins,
    absolute-form targets for http ones."""

    host: str
    port: int
    authorization: str | None  # Proxy-Authorization, from user:password in the URL

    @classmethod
    def parse(cls, url: str) -> ForwardProxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// forward proxies are supported, not {parts.scheme!r}")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, parts.port or 80, authorization)

    def __repr__(self) -> str:  # the password must never reach a log
        return f"ForwardProxy({self.host}:{self.port})"


@dataclass(frozen=True, slots=True)
class Streamed:
    """A body sent from its source in chunks (a spool file), with its length; ``chunks`` reads
    it from the start on every call, so the request can be sent again."""

    length: int
    chunks: Callable[[], AsyncIterator[bytes]]


Content = bytes | Streamed


class Reply:
    """The reply to one request: status, reason and headers once they arrived, then the body
    in chunks. ``release()`` returns the connection to its pool or closes it."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_close_delimited",
        "_complete",
        "_connection",
        "_error",
        "_head_bytes",
        "_head_only",
        "_keep_alive",
        "_parser",
        "_pool",
        "_raw_headers",
        "_reason",
        "_received",
        "_upload",
        "headers",
        "reason",
        "status",
    )

    def __init__(self, pool: Pool | None, connection: _Connection, *, head_only: bool) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self._parser = connection.receive(self)
        self._head_only = head_only  # a HEAD (or CONNECT): the reply ends with its headers
        self._head_bytes = 0  # fed to the parser before the final head was complete
        self._raw_headers: list[tuple[str, str]] = []
        self._reason = b""
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._received = False  # any byte of the reply arrived
        self._complete = False
        self._close_delimited = False
        self._keep_alive = False
        self._error: ClientError | None = None
        self._upload: asyncio.Task[None] | None = None
        self.status = 0
        self.reason = ""
        self.headers: CIMultiDict[str] = CIMultiDict()

    # httptools calls these (through the connection) while it parses what arrived.

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        raw = self._raw_headers
        if len(raw) == FIELD_LIMIT:  # each field costs a tuple and two strings, however short
            raise HeadTooLarge(f"more than {FIELD_LIMIT} header fields")
        # As aiohttp's server reads them: UTF-8 text as text, other bytes kept as surrogates.
        raw.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        if self._complete:  # a second reply in the same bytes: not ours, and not to be reused
            self._keep_alive = False
            return
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: an interim reply, the real one follows
            if status == 101:
                raise MalformedReply("the server switched protocols unasked (101)")
            self._raw_headers, self._reason = [], b""
            return
        self.status = status
        self.reason = self._reason.decode("latin-1")
        self.headers = headers = CIMultiDict(self._raw_headers)
        # Trailers of a chunked body arrive through on_header too: FIELD_LIMIT more at most.
        self._raw_headers = []
        self._close_delimited = (
            not self._head_only
            and status not in (204, 304)
            and "Content-Length" not in headers
            and "Transfer-Encoding" not in headers
        )
        if self._head_only:
            self._finish()
            # The parser would take what follows for a body: the next reply gets a new one.
            if self._connection is not None:
                self._connection.parser = None
        self._wake()

    def on_body(self, data: bytes) -> None:
        if self._complete:  # bytes after a reply that had none: the connection is unusable
            self._keep_alive = False
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and self._connection is not None:
            self._connection.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status and not self._complete:  # not the end of an interim reply
            self._finish()
            self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()

    # The connection tells the reply what happened to it.

    def _feed(self, data: bytes) -> None:
        if self._complete:  # more than the reply: the connection cannot be trusted again
            self._keep_alive = False
            if self._connection is not None:
                self._connection.close()
            return
        self._received = True
        try:
            if self.status:  # the head is in: what follows is body
                self._parser.feed_data(data)
                return
            # httptools keeps a header's name and value until their end, however long they
            # grow, and on_header only sees them then: the head is bounded by what is fed.
            head_bytes = self._head_bytes + len(data)
            if head_bytes < HEAD_LIMIT:
                self._head_bytes = head_bytes
                self._parser.feed_data(data)
            else:
                self._feed_to_the_bound(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__ or exc.__cause__
            self._fail(cause if isinstance(cause, ClientError) else MalformedReply(str(exc)))
        except httptools.HttpParserError as exc:
            self._fail(MalformedReply(f"the server's reply is not valid HTTP ({exc})"))

    def _feed_to_the_bound(self, data: bytes) -> None:
        """Feed what ``data`` holds of the head up to HEAD_LIMIT; the rest only if the head
        ended within that (a big reply's first read brings its head and body at once)."""
        room = HEAD_LIMIT - self._head_bytes
        self._head_bytes = HEAD_LIMIT
        view = memoryview(data)  # slices without copying
        self._parser.feed_data(view[:room])
        if not self.status:
            self._fail(HeadTooLarge(f"the reply head is over {HEAD_LIMIT // 1024} KiB"))
        elif len(data) > room:
            self._parser.feed_data(view[room:])

    def _lost(self) -> None:
        """The connection closed: the end of a close-delimited body, else a failure."""
        if self.status and self._close_delimited and not self._complete:
            self._complete = True  # keep_alive stays False
            self._wake()
        elif not self._complete:
            self._fail(Disconnected("the server closed the connection"))

    def _fail(self, error: ClientError) -> None:
        if self._error is None:
            self._error = error
        self._keep_alive = False
        if self._connection is not None:
            self._connection.close()
        self._wake()

    def _wake(self) -> None:
        if self._connection is not None:
            self._connection.wake()

    # What the user of the reply calls.

    @property
    def received_anything(self) -> bool:
        return self._received

    @property
    def complete(self) -> bool:
        """The whole reply is here: ``buffered()`` holds all of its body."""
        return self._complete and self._error is None

    def buffered(self) -> bytes:
        """The body bytes received and not yet read, without waiting."""
        chunks = self._chunks
        body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        chunks.clear()
        self._buffered = 0
        if self._connection is not None:
            self._connection.resume_reading()
        return body

    async def _head(self, until: float | None) -> None:
        """Wait for the status line and headers."""
        while not self.status:
            if self._error is not None:
                raise self._error
            assert self._connection is not None  # noqa: S101 - released replies are not read
            await self._connection.wait(until)

    async def read_chunk(self, until: float | None = None) -> bytes:
        """The body bytes received so far (waiting, up to loop time ``until``, for some), or
        b"" at its end. TimeoutError when ``until`` passes first; ClientError on a failure."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            assert self._connection is not None  # noqa: S101 - released replies are not read
            await self._connection.wait(until)
        return self.buffered()  # what arrived in pieces meanwhile goes on in one write

    def unread(self, chunk: bytes) -> None:
        """Put ``chunk`` back to be read first."""
        if chunk:
            self._chunks.appendleft(chunk)
            self._buffered += len(chunk)

    def release(self) -> None:
        """Give the connection back when the reply was read to its end and the server keeps
        it open; close it otherwise (an unread reply would be read by the next request)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        upload = self._upload
        reusable = self._complete and self._keep_alive and self._error is None
        if upload is not None and not upload.done():
            upload.cancel()  # the reply ended (or failed) before the body was all sent
            reusable = False
        connection.reply = None
        if self._pool is not None:
            self._pool.put_back(connection, reusable=reusable)
        elif not reusable:
            connection.close()


class _Connection(asyncio.Protocol):
    """One connection to a server; ``reply`` is the reply being received, if any."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: object) -> None:
        self.loop = loop
        self.key = key  # the pool's key: origin and forward proxy
        self.transport: asyncio.Transport | None = None
        self.reply: Reply | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        # Kept from reply to reply: making a parser costs more than parsing a small reply.
        self.parser: httptools.HttpResponseParser | None = None
        # Tells the pool, once, that this connection is gone (its slot is free).
        self.on_gone: Callable[[_Connection], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def receive(self, reply: Reply) -> httptools.HttpResponseParser:
        """Make ``reply`` the one the next bytes are parsed into; returns the parser."""
        self.reply = reply
        if self.parser is None:
            self.parser = httptools.HttpResponseParser(self)
        return self.parser

    def on_status(self, reason: bytes) -> None:
        if (reply := self.reply) is not None:
            reply.on_status(reason)

    def on_header(self, name: bytes, value: bytes) -> None:
        if (reply := self.reply) is not None:
            reply.on_header(name, value)

    def on_headers_complete(self) -> None:
        if (reply := self.reply) is not None:
            reply.on_headers_complete()

    def on_body(self, data: bytes) -> None:
        if (reply := self.reply) is not None:
            reply.on_body(data)

    def on_message_complete(self) -> None:
        if (reply := self.reply) is not None:
            reply.on_message_complete()

    def data_received(self, data: bytes) -> None:
        reply = self.reply
        if reply is None:  # nothing was asked: a server speaking out of turn
            self.close()
        else:
            reply._feed(data)

    def eof_received(self) -> bool:
        return False  # close the transport: a half-closed upstream connection is not reused

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.reply is not None:
            self.reply._lost()
        self.wake()
        self.resume_writing()  # a writer waiting in drain() learns of it there
        self._gone()

    def pause_writing(self) -> None:
        self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is full."""
        if self._writable is not None and not self.closed:
            await self._writable
        if self.closed:
            raise Disconnected("the server closed the connection")

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, until: float | None) -> None:
        """Until the reply has news (or loop time ``until``: TimeoutError)."""
        waiter = self._waiter = self.loop.create_future()
        timer = None if until is None else self.loop.call_at(until, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self._gone()

    def _gone(self) -> None:
        on_gone, self.on_gone = self.on_gone, None
        if on_gone is not None:
            on_gone(self)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Pool:
    """Keep-alive connections, by origin (and forward proxy); with ``limit``, at most that many
    open at once, a request waiting for a free one until its connect deadline."""

    def __init__(self, ssl_context: ssl.SSLContext, *, limit: int | None = None) -> None:
        self._ssl = ssl_context
        self._limit = limit
        self._idle: dict[object, list[_Connection]] = {}
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
        head = _request_head(method, target, origin, headers, content, proxy)
        again = method in _IDEMPOTENT
        while True:
            connection = await self._acquire(origin, proxy, connect_by)
            reply = Reply(self, connection, head_only=method == "HEAD")
            try:
                await _send(connection, reply, head, content)
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

    def put_back(self, connection: _Connection, *, reusable: bool) -> None:
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
    ) -> _Connection:
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
        timer = None if connect_by is None else loop.call_at(connect_by, _expire, waiter)
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

    def _gone(self, connection: _Connection) -> None:
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
    ) -> _Connection:
        tls = origin.scheme == "https"
        connection = _Connection(loop, key)
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
    connection: _Connection,
    origin: Origin,
    proxy: ForwardProxy,
    context: ssl.SSLContext,
    connect_by: float | None,
) -> None:
    """CONNECT through the forward proxy, then TLS with the origin inside the tunnel."""
    authority = f"{_bracketed(origin.host)}:{origin.port}"
    headers = [("Host", authority)]
    if proxy.authorization is not None:
        headers.append(("Proxy-Authorization", proxy.authorization))
    head = _encode_head(f"CONNECT {authority} HTTP/1.1", headers)
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


async def _send(
    connection: _Connection, reply: Reply, head: bytes, content: Content | None
) -> None:
    """Write the request. A spooled body is written by a task of its own while the reply is
    awaited: a server may answer (413, 403) before it has read the whole body."""
    transport = connection.transport
    if transport is None or connection.closed:
        raise Disconnected("the server closed the connection")
    if not content:
        transport.write(head)
        return
    if isinstance(content, bytes):
        if len(content) < 65536:
            transport.write(head + content)  # one write: one segment on the wire
        else:
            transport.writelines((head, content))  # not copied to join them
        return
    transport.write(head)
    upload = reply._upload = asyncio.ensure_future(_upload(connection, content))
    # A failed upload closes the connection, which the reply reports; not again here.
    upload.add_done_callback(_quiet)


async def _upload(connection: _Connection, content: Streamed) -> None:
    transport = connection.transport
    assert transport is not None  # noqa: S101 - sent on an open connection
    sent = 0
    try:
        async for chunk in content.chunks():
            await connection.drain()
            transport.write(chunk)
            sent += len(chunk)
    except BaseException:
        connection.close()  # the server would wait for the rest: the reply fails instead
        raise
    if sent != content.length:
        connection.close()


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _request_head(
    method: str,
    target: str,
    origin: Origin,
    headers: Iterable[tuple[str, str]],
    content: Content | None,
    proxy: ForwardProxy | None,
) -> bytes:
    if proxy is not None and origin.scheme == "http":
        target = f"http://{origin.host_header}{target}"  # absolute-form, to a forward proxy
    lines = [("Host", origin.host_header), *headers]
    if proxy is not None and origin.scheme == "http" and proxy.authorization is not None:
        lines.append(("Proxy-Authorization", proxy.authorization))
    if content is not None:
        length = len(content) if isinstance(content, bytes) else content.length
        lines.append(("Content-Length", str(length)))
    elif method in _BODY_EXPECTED:
        lines.append(("Content-Length", "0"))
    return _encode_head(f"{method} {target} HTTP/1.1", lines)


def _encode_head(start: str, headers: list[tuple[str, str]]) -> bytes:
    text = start + "\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    # A CR or LF inside a name, value or target would start a header or request of its own.
    if text.count("\n") != len(headers) + 2 or text.count("\r") != len(headers) + 2:
        raise ValueError("a header or the request target contains a line break")
    # Header bytes that were not UTF-8 arrived as surrogates; they leave as they came.
    return text.encode("utf-8", "surrogateescape")


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
