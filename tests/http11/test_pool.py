"""The upstream HTTP/1.1 client against raw servers that write exact bytes: keep-alive, body
framing, interim replies, failures, bounded reply heads, deadlines, TLS, forward proxies and
flow control."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import pytest
import trustme

from proxy.http11.errors import (
    CertificateRejected,
    ClientError,
    ConnectFailed,
    ConnectTimeout,
    Disconnected,
    HeadTooLarge,
    MalformedReply,
)
from proxy.http11.pool import Pool
from proxy.http11.reply import FIELD_LIMIT, HEAD_LIMIT, Reply
from proxy.http11.wire import Content, ForwardProxy, Streamed
from proxy.model import Upstream

GUARD = 30.0  # upper bound against a hung test, never a measurement
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Close:
    """An answer: write ``data``, then close the connection."""

    data: bytes = b""


# What a raw server writes for a request: bytes (the connection stays open), Close, or None
# (say nothing and keep the connection open).
Answer = bytes | Close | None


@dataclass(frozen=True)
class Received:
    """A request as the server read it: its connection, its place on it, its lines, its body."""

    connection: int
    nth: int  # 0 for the first request on its connection
    lines: list[str]  # the request line, then one "Name: value" per header
    body: bytes


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Handlers:
    """The connection handlers of a test server: each ends with its connection, and all of
    them end (their connections aborted) when the server stops; none is left running."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @asynccontextmanager
    async def serving(
        self, serve: Handler, tls: ssl.SSLContext | None = None
    ) -> AsyncIterator[int]:
        """Listen on a free port of 127.0.0.1 (the value) with ``serve`` for each connection."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            self._writers.add(writer)
            try:
                await serve(reader, writer)
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                pass  # the other side went away: the end of this connection
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            self.stopping.set()
            for writer in self._writers:
                writer.transport.abort()
            await asyncio.wait_for(asyncio.gather(*self._tasks), GUARD)
            await server.wait_closed()


@dataclass
class RawServer:
    """A server on 127.0.0.1 that reads requests (Content-Length bodies) and writes the exact
    bytes ``answer`` returns for each; it counts connections and keeps what it read."""

    answer: Callable[[Received], Answer]
    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _handlers: Handlers = field(default_factory=Handlers, init=False, repr=False)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[RawServer]:
        async with self._handlers.serving(self._serve, self.tls) as self.port:
            yield self

    def origin(self, host: str = "127.0.0.1") -> Upstream:
        return Upstream("https" if self.tls else "http", host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number, self.connections = self.connections, self.connections + 1
        nth = 0
        while request := await _read_request(reader, number, nth):
            self.requests.append(request)
            answer = self.answer(request)
            if answer is None:
                await self._handlers.stopping.wait()
                return
            if isinstance(answer, Close):
                writer.write(answer.data)
                return
            writer.write(answer)
            await writer.drain()
            nth += 1


async def _read_request(reader: asyncio.StreamReader, connection: int, nth: int) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection
    lines = head.decode("latin-1").split("\r\n")[:-2]
    length = next(
        (int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:")), 0
    )
    return Received(connection, nth, lines, await reader.readexactly(length))


def always(answer: Answer) -> Callable[[Received], Answer]:
    return lambda request: answer


def deadline(seconds: float = GUARD) -> float:
    return asyncio.get_running_loop().time() + seconds


async def read_all(reply: Reply, until: float) -> bytes:
    chunks = []
    while chunk := await reply.read_chunk(until):
        chunks.append(chunk)
    return b"".join(chunks)


async def exchange(
    pool: Pool,
    origin: Upstream,
    method: str = "GET",
    target: str = "/",
    headers: Iterable[tuple[str, str]] = (),
    content: Content | None = None,
    proxy: ForwardProxy | None = None,
    within: float = GUARD,
) -> tuple[Reply, bytes]:
    """One request, its reply read to the end and released, all ``within`` seconds."""
    by = deadline(within)
    reply = await pool.request(
        origin, method, target, headers, content, connect_by=by, reply_by=by, proxy=proxy
    )
    try:
        return reply, await read_all(reply, by)
    finally:
        reply.release()


async def eventually(check: Callable[[], bool]) -> bool:
    for _ in range(int(GUARD / 0.01)):
        if check():
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    """A pool verifying certificates against the system's authorities, closed at the end."""
    made = Pool(ssl.create_default_context())
    yield made
    await made.close()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A throwaway certificate authority, made by the test."""
    return trustme.CA()


@pytest.fixture
def trusting(authority: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test's authority."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


@dataclass
class TlsServer:
    """A TLS raw server for localhost, and the server names its clients asked for (SNI)."""

    server: RawServer
    names: list[str | None]


@pytest.fixture
async def tls_server(authority: trustme.CA) -> AsyncIterator[TlsServer]:
    """A raw server answering OK over TLS with a certificate for localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    async with RawServer(always(OK), tls=context).running() as server:
        yield TlsServer(server, names)


# Keep-alive and body framing.


async def test_keep_alive_reuses_one_connection_until_the_server_says_close(pool: Pool) -> None:
    """Sequential requests share one connection; after a Connection: close reply, a new one."""
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with RawServer(lambda r: Close(closing) if r.nth == 1 else OK).running() as server:
        for _ in range(2):
            assert (await exchange(pool, server.origin()))[1] == b"ok"
        assert server.connections == 1
        assert (await exchange(pool, server.origin()))[1] == b"ok"
        assert server.connections == 2


async def test_chunked_body_is_read_back_exactly(pool: Pool) -> None:
    """A chunked body, chunk extensions and trailers included, reads back as its bytes."""
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value\r\nhello\r\n2\r\n, \r\n6;x;y="z"\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    async with RawServer(always(chunked)).running() as server:
        reply, body = await exchange(pool, server.origin())
        assert (reply.status, body) == (200, b"hello, world!")
        assert (await exchange(pool, server.origin()))[1] == b"hello, world!"
        assert server.connections == 1


async def test_close_delimited_body_is_read_to_the_end(pool: Pool) -> None:
    """A body without length ends when the server closes; that connection is not reused."""
    data = bytes(range(256)) * 1024
    async with RawServer(always(Close(b"HTTP/1.1 200 OK\r\n\r\n" + data))).running() as server:
        assert (await exchange(pool, server.origin()))[1] == data
        assert (await exchange(pool, server.origin()))[1] == data
        assert server.connections == 2


@pytest.mark.parametrize(
    ("method", "head"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 100\r\n\r\n'),
    ],
    ids=["HEAD", "204", "304", "304-with-length"],
)
async def test_replies_without_a_body_end_at_their_headers(
    pool: Pool, method: str, head: bytes
) -> None:
    """HEAD, 204 and 304 replies end with their headers; the connection serves the next GET."""
    async with RawServer(lambda request: head if request.nth == 0 else OK).running() as server:
        reply, body = await exchange(pool, server.origin(), method)
        assert body == b""
        assert reply.status == int(head.split()[1])
        assert (await exchange(pool, server.origin()))[1] == b"ok"
        assert server.connections == 1


async def test_interim_replies_are_skipped(pool: Pool) -> None:
    """100 Continue and 103 Early Hints before the reply: status and headers are the final's."""
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nX-Final: yes\r\nContent-Length: 2\r\n\r\nok"
    )
    async with RawServer(always(interim)).running() as server:
        reply, body = await exchange(pool, server.origin(), "POST", content=b"data")
        assert (reply.status, reply.reason, body) == (201, "Created", b"ok")
        assert list(reply.headers.items()) == [("X-Final", "yes"), ("Content-Length", "2")]


# Failures.


async def test_server_closing_without_a_reply_is_disconnected(pool: Pool) -> None:
    """A fresh connection closed before any reply: Disconnected, not known to be unsent."""
    async with RawServer(always(Close())).running() as server:
        with pytest.raises(Disconnected) as caught:
            await exchange(pool, server.origin())
        assert not caught.value.nothing_sent
        assert len(server.requests) == 1  # not sent again: the connection was new


async def test_server_closing_mid_body_is_disconnected_after_what_arrived(pool: Pool) -> None:
    """A body cut short: the bytes that arrived are read first, then Disconnected."""
    short = Close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    async with RawServer(always(short)).running() as server:
        reply = await pool.request(server.origin(), "GET", "/", (), reply_by=deadline())
        try:
            assert await reply.read_chunk(deadline()) == b"abc"
            with pytest.raises(Disconnected):
                await reply.read_chunk(deadline())
        finally:
            reply.release()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_pooled_connection_closed_while_idle_is_skipped(pool: Pool, method: str) -> None:
    """An idle connection the server closed is not used: any method goes on a new one."""
    async with RawServer(always(Close(OK))).running() as server:  # keep-alive, then closed
        await exchange(pool, server.origin())
        assert await eventually(lambda: pool._open == 0)  # the client saw the close
        assert (await exchange(pool, server.origin(), method))[1] == b"ok"
        assert server.connections == 2


@pytest.mark.parametrize(
    ("method", "content", "retried"),
    [("GET", None, True), ("PUT", b"x", True), ("POST", b"x", False)],
)
async def test_pooled_connection_closed_on_reuse(
    pool: Pool, method: str, content: bytes | None, retried: bool
) -> None:
    """A reused connection closed before any reply: idempotent requests are sent once more
    on a new connection; a POST fails with Disconnected, since the server may have acted."""
    # Every connection's second request is read, then the connection closed unanswered.
    async with RawServer(lambda request: Close() if request.nth else OK).running() as server:
        await exchange(pool, server.origin())
        if retried:
            assert (await exchange(pool, server.origin(), method, content=content))[1] == b"ok"
        else:
            with pytest.raises(Disconnected) as caught:
                await exchange(pool, server.origin(), method, content=content)
            assert not caught.value.nothing_sent
        assert len(server.requests) == (3 if retried else 2)
        assert server.connections == (2 if retried else 1)


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
    ],
    ids=["status", "content-length", "chunk-size", "unasked-101"],
)
async def test_malformed_reply_is_rejected(pool: Pool, reply: bytes) -> None:
    """A reply that is not valid HTTP/1.1 (or switches protocols unasked): MalformedReply."""
    async with RawServer(always(reply)).running() as server:
        with pytest.raises(MalformedReply):
            await exchange(pool, server.origin())


@pytest.mark.parametrize(
    "reply",
    [
        OK + b"HTTP/1.1 404 Not Found\r\nX-Smuggled: 1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 404 Not Found\r\nX-Smuggled: 1\r\n\r\n",
    ],
    ids=["after-a-body", "after-204"],
)
async def test_a_second_reply_in_the_same_bytes_is_not_taken(pool: Pool, reply: bytes) -> None:
    """Bytes after a complete reply, even a whole reply, do not change the reply's status or
    headers, and the connection is not used again."""
    async with RawServer(lambda request: OK if request.connection else reply).running() as server:
        first = await pool.request(server.origin(), "GET", "/", (), reply_by=deadline())
        try:
            assert first.status == int(reply.split()[1])
            assert "X-Smuggled" not in first.headers
            with suppress(MalformedReply):  # reporting the extra bytes is allowed
                await read_all(first, deadline())
        finally:
            first.release()
        assert (await exchange(pool, server.origin()))[1] == b"ok"
        assert server.connections == 2


async def test_closed_port_fails_to_connect(pool: Pool) -> None:
    """Nothing listening: ConnectFailed, and the request surely never left."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectFailed) as caught:
        await exchange(pool, Upstream("http", "127.0.0.1", port))
    assert caught.value.nothing_sent


async def test_full_pool_waits_until_connect_deadline_then_until_release() -> None:
    """At its limit, a request waits for a free connection: ConnectTimeout(pool_full) at its
    connect deadline, or the released connection."""
    limited = Pool(ssl.create_default_context(), limit=1)
    async with RawServer(always(OK)).running() as server:
        held = await limited.request(server.origin(), "GET", "/", (), reply_by=deadline())
        try:
            with pytest.raises(ConnectTimeout) as caught:
                await limited.request(server.origin(), "GET", "/", (), connect_by=deadline(0.2))
            assert caught.value.pool_full
            waiting = asyncio.ensure_future(exchange(limited, server.origin()))
            assert await eventually(lambda: len(limited._waiters) == 1)
            assert await held.read_chunk(deadline()) == b"ok"
        finally:
            held.release()
        assert (await waiting)[1] == b"ok"
        assert server.connections == 1
    await limited.close()


async def test_request_cancelled_after_its_wake_passes_the_slot_on() -> None:
    """A waiting request cancelled just after a connection was freed for it does not keep
    the next waiting request from that connection."""
    limited = Pool(ssl.create_default_context(), limit=1)
    async with RawServer(always(OK)).running() as server:
        held = await limited.request(server.origin(), "GET", "/", (), reply_by=deadline())
        # Generous: the slot is free at once; this bound only stops a hang.
        first, second = (
            asyncio.ensure_future(exchange(limited, server.origin(), within=5)) for _ in "12"
        )
        assert await eventually(lambda: len(limited._waiters) == 2)
        assert await held.read_chunk(deadline()) == b"ok"
        held.release()  # wakes the first waiter...
        first.cancel()  # ...which goes away before it ran
        try:
            assert (await asyncio.wait_for(second, GUARD))[1] == b"ok"
        finally:
            second.cancel()
            await asyncio.gather(first, second, return_exceptions=True)
    await limited.close()


async def test_reply_deadline(pool: Pool) -> None:
    """A server that never answers: TimeoutError at the reply deadline."""
    async with RawServer(always(None)).running() as server:
        with pytest.raises(TimeoutError):
            await pool.request(server.origin(), "GET", "/", (), reply_by=deadline(0.2))


# Bounded reply heads.


def head_of(size: int, *, fields: int) -> bytes:
    """A 200 head of exactly ``size`` bytes with ``fields`` header fields, Content-Length: 2
    the last; an X-Pad field takes up the bytes the others leave."""
    lines = [b"HTTP/1.1 200 OK", *(b"X-Field-%d: v" % n for n in range(fields - 2))]
    lines += [b"X-Pad: ", b"Content-Length: 2"]
    lines[-2] += b"p" * (size - len(b"\r\n".join(lines)) - 4)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    assert len(head) == size
    return head


def early_hints(links: int) -> bytes:
    """An interim 103 head with ``links`` Link fields."""
    fields = b"".join(b"Link: </%d.css>; rel=preload\r\n" % n for n in range(links))
    return b"HTTP/1.1 103 Early Hints\r\n" + fields + b"\r\n"


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 256 * 1024 + b"\r\nContent-Length: 2\r\n\r\nok",
        head_of(HEAD_LIMIT + 1, fields=10) + b"ok",
        head_of(4096, fields=FIELD_LIMIT + 1) + b"ok",
        early_hints(1) * (HEAD_LIMIT // len(early_hints(1)) + 1) + OK,
    ],
    ids=["256KiB-value", "one-byte-over", "101-fields", "interim-heads-in-all"],
)
async def test_reply_head_over_the_bounds_is_refused_and_not_reused(
    pool: Pool, reply: bytes
) -> None:
    """A head over HEAD_LIMIT bytes (interim heads included) or FIELD_LIMIT fields:
    HeadTooLarge, its connection closed at once, the next request on a new one."""
    async with RawServer(lambda request: OK if request.connection else reply).running() as server:
        with pytest.raises(HeadTooLarge) as caught:
            await exchange(pool, server.origin())
        assert not caught.value.nothing_sent  # the request went: not to be sent again
        assert pool._open == 0  # closed, not kept for the next request
        assert (await exchange(pool, server.origin()))[1] == b"ok"
        assert server.connections == 2
        assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("reply", "fields", "body"),
    [
        (head_of(HEAD_LIMIT, fields=FIELD_LIMIT) + b"ok", FIELD_LIMIT, b"ok"),
        (early_hints(FIELD_LIMIT) + head_of(4096, fields=FIELD_LIMIT) + b"ok", FIELD_LIMIT, b"ok"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MIB + b"b" * MIB,
            1,
            b"b" * MIB,
        ),
    ],
    ids=["exactly-the-limits", "fields-per-head", "small-head-big-body"],
)
async def test_reply_head_within_the_bounds_is_taken(
    pool: Pool, reply: bytes, fields: int, body: bytes
) -> None:
    """A head of exactly HEAD_LIMIT bytes and FIELD_LIMIT fields, an interim head with as
    many fields of its own, or a small head whose body arrives with it past HEAD_LIMIT:
    the reply as sent, and its connection kept."""
    async with RawServer(always(reply)).running() as server:
        answered, received = await exchange(pool, server.origin())
        assert (answered.status, len(answered.headers), received) == (200, fields, body)
        assert (await exchange(pool, server.origin()))[1] == body
        assert server.connections == 1


@pytest.mark.parametrize(("trailers", "refused"), [(FIELD_LIMIT, False), (FIELD_LIMIT + 1, True)])
async def test_trailer_fields_are_bounded_too(pool: Pool, trailers: int, refused: bool) -> None:
    """A chunked body's trailers count apart from its head: up to FIELD_LIMIT are read past,
    more fail the reply with HeadTooLarge after the body before them."""
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
        + b"".join(b"X-Trailer-%d: t\r\n" % n for n in range(trailers))
        + b"\r\n"
    )
    async with RawServer(always(reply)).running() as server:
        answered = await pool.request(server.origin(), "GET", "/", (), reply_by=deadline())
        try:
            assert await answered.read_chunk(deadline()) == b"ok"
            if refused:
                with pytest.raises(HeadTooLarge):
                    await answered.read_chunk(deadline())
            else:
                assert await answered.read_chunk(deadline()) == b""
        finally:
            answered.release()
        assert pool._open == (0 if refused else 1)


# The request as sent.


async def _three_mib() -> AsyncIterator[bytes]:
    for _ in range(48):
        yield b"s" * 65536


@pytest.mark.parametrize(
    ("method", "content", "length"),
    [
        ("GET", None, None),
        ("POST", None, "0"),
        ("POST", b"hello", "5"),
        ("PUT", Streamed(3 * MIB, _three_mib), str(3 * MIB)),
    ],
    ids=["GET", "POST-empty", "POST-bytes", "PUT-streamed"],
)
async def test_request_head_and_body_as_sent(
    pool: Pool, method: str, content: Content | None, length: str | None
) -> None:
    """The server gets Host, the headers in their order, Content-Length when there is (or
    should be) a body, and the whole body."""
    async with RawServer(always(OK)).running() as server:
        await exchange(pool, server.origin(), method, "/p?q=1", [("B", "2"), ("A", "1")], content)
        (received,) = server.requests
        expected = [f"{method} /p?q=1 HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "B: 2", "A: 1"]
        assert received.lines == expected + ([f"Content-Length: {length}"] if length else [])
        assert received.body == (
            b"s" * 3 * MIB if isinstance(content, Streamed) else content or b""
        )


async def test_failing_streamed_body_fails_the_request(pool: Pool) -> None:
    """A Streamed source that fails mid-body fails the request instead of leaving the server
    waiting for the rest until the reply deadline."""

    async def failing() -> AsyncIterator[bytes]:
        yield b"first part"
        raise OSError("the spool could not be read")

    async with RawServer(always(OK)).running() as server:
        with pytest.raises(ClientError):
            # Generous: the failure is known at once; this bound only stops a hang.
            await pool.request(
                server.origin(), "POST", "/", (), Streamed(100, failing), reply_by=deadline(5)
            )


async def test_line_break_in_a_header_is_refused(pool: Pool) -> None:
    """A header value with CR LF raises ValueError before anything is sent."""
    async with RawServer(always(OK)).running() as server:
        with pytest.raises(ValueError, match="line break"):
            await exchange(pool, server.origin(), headers=[("X", "a\r\nInjected: 1")])
        assert server.connections == 0


# TLS and forward proxies.


async def test_tls_verifies_the_certificate_and_sends_sni(
    tls_server: TlsServer, trusting: ssl.SSLContext
) -> None:
    """An https origin: the certificate verifies against the trusted authority, SNI is sent."""
    trusted = Pool(trusting)
    reply, body = await exchange(trusted, tls_server.server.origin("localhost"))
    await trusted.close()
    assert (reply.status, body) == (200, b"ok")
    assert tls_server.names == ["localhost"]


async def test_tls_with_an_unknown_authority_is_rejected(tls_server: TlsServer, pool: Pool) -> None:
    """A certificate from an authority the context does not trust: CertificateRejected."""
    with pytest.raises(CertificateRejected) as caught:
        await exchange(pool, tls_server.server.origin("localhost"))
    assert isinstance(caught.value, ConnectFailed)
    assert "certificate" in caught.value.reason
    assert tls_server.server.requests == []


def test_forward_proxy_url_is_parsed_and_its_password_hidden() -> None:
    """user:password in the proxy URL becomes Basic auth; the repr shows no password."""
    forward = ForwardProxy.parse("http://user:p%40ss@127.0.0.1:3128")
    assert (forward.host, forward.port) == ("127.0.0.1", 3128)
    assert forward.authorization == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert "p%40ss" not in repr(forward)
    assert "p@ss" not in repr(forward)


def test_forward_proxy_over_tls_is_refused_clearly() -> None:
    """An https:// forward proxy URL is refused with a message saying what is supported."""
    with pytest.raises(ValueError, match="only http:// forward proxies"):
        ForwardProxy.parse("https://proxy.example:3128")


async def test_reply_header_values_keep_their_bytes(pool: Pool) -> None:
    """UTF-8 in a reply header reads back as that text; other bytes as surrogate escapes."""
    reply = b"HTTP/1.1 200 OK\r\nX-Name: Z\xc3\xbcrich\r\nX-Raw: \xff\r\nContent-Length: 0\r\n\r\n"
    async with RawServer(always(reply)).running() as server:
        answered, _ = await exchange(pool, server.origin())
    assert answered.headers["X-Name"] == "Zürich"
    assert answered.headers["X-Raw"].encode("utf-8", "surrogateescape") == b"\xff"


async def test_http_origin_through_forward_proxy_uses_absolute_form(pool: Pool) -> None:
    """An http origin behind a forward proxy: absolute-form target and Proxy-Authorization."""
    async with RawServer(always(OK)).running() as forward:
        proxy = ForwardProxy.parse(f"http://user:pw@127.0.0.1:{forward.port}")
        origin = Upstream("http", "origin.test", 8080)
        assert (await exchange(pool, origin, target="/path", proxy=proxy))[1] == b"ok"
    assert forward.requests[0].lines == [
        "GET http://origin.test:8080/path HTTP/1.1",
        "Host: origin.test:8080",
        f"Proxy-Authorization: {proxy.authorization}",
    ]


@asynccontextmanager
async def tunnelling_proxy(heads: list[bytes]) -> AsyncIterator[int]:
    """A CONNECT proxy on 127.0.0.1 (its port) that tunnels to 127.0.0.1 at the asked port."""
    handlers = Handlers()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
        origin_reader, origin_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            await asyncio.gather(pipe(reader, origin_writer), pipe(origin_reader, writer))
        finally:
            origin_writer.close()

    async with handlers.serving(tunnel) as port:
        yield port


async def test_https_origin_through_a_connect_tunnel(
    tls_server: TlsServer, trusting: ssl.SSLContext
) -> None:
    """An https origin behind a forward proxy: CONNECT with Proxy-Authorization, then TLS to
    the origin inside the tunnel, verified against its authority and with SNI."""
    heads: list[bytes] = []
    trusted = Pool(trusting)
    origin = tls_server.server.origin("localhost")
    async with tunnelling_proxy(heads) as port:
        proxy = ForwardProxy.parse(f"http://user:pw@127.0.0.1:{port}")
        reply, body = await exchange(trusted, origin, proxy=proxy)
        await trusted.close()
    assert (reply.status, body) == (200, b"ok")
    assert heads == [
        f"CONNECT {origin.host_header} HTTP/1.1\r\nHost: {origin.host_header}\r\n"
        f"Proxy-Authorization: {proxy.authorization}\r\n\r\n".encode()
    ]
    assert tls_server.names == ["localhost"]
    assert tls_server.server.requests[0].lines[0] == "GET / HTTP/1.1"  # origin-form inside


async def test_forward_proxy_refusing_the_tunnel(pool: Pool) -> None:
    """A forward proxy answering 407 to CONNECT: ConnectFailed naming the status."""
    refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
    async with RawServer(always(refusal)).running() as forward:
        proxy = ForwardProxy.parse(f"http://127.0.0.1:{forward.port}")
        with pytest.raises(ConnectFailed, match="407"):
            await exchange(pool, Upstream("https", "origin.test", 443), proxy=proxy)


# Flow control.


async def test_slow_reader_does_not_make_the_reply_buffer_whole(pool: Pool) -> None:
    """A large reply read slowly: the client stops reading from the server instead of
    buffering it all; the whole body still arrives."""
    size = 8 * MIB
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"b" * size
    async with RawServer(always(big)).running() as server:
        reply = await pool.request(server.origin(), "GET", "/", (), reply_by=deadline())
        try:
            received = len(await reply.read_chunk(deadline()))
            await asyncio.sleep(0.3)  # the server keeps writing meanwhile
            assert reply._buffered < 2 * MIB
            received += len(await read_all(reply, deadline()))
        finally:
            reply.release()
        assert received == size


async def test_closing_the_pool_closes_every_idle_connection() -> None:
    """Pool.close() closes all the idle connections, however many."""
    pool = Pool(ssl.create_default_context())
    async with RawServer(always(OK)).running() as server:
        replies = await asyncio.gather(
            *(pool.request(server.origin(), "GET", "/", [], reply_by=deadline()) for _ in range(5))
        )
        for reply in replies:
            assert await reply.read_chunk(deadline()) == b"ok"
            assert await reply.read_chunk(deadline()) == b""
            reply.release()
        assert pool._open == 5
        await pool.close()
        assert pool._open == 0
