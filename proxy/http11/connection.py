"""One connection to a server: the asyncio protocol, with flow control both ways, and the
writing of a request on it.

The bytes that arrive go to the reply being received (a ``Receiver``: ``reply.Reply``), whose
httptools parser calls back through the connection; one request at a time per connection. A
spooled body is written by a task of its own while the reply is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from proxy.http11.errors import Disconnected
from proxy.http11.wire import Content, Streamed


class Receiver(Protocol):
    """What a connection feeds (the reply being received): the httptools callbacks, the bytes
    that arrived, and the end of the connection."""

    def on_status(self, reason: bytes) -> None: ...
    def on_header(self, name: bytes, value: bytes) -> None: ...
    def on_headers_complete(self) -> None: ...
    def on_body(self, data: bytes) -> None: ...
    def on_message_complete(self) -> None: ...
    def _feed(self, data: bytes) -> None: ...
    def _lost(self) -> None: ...


class Connection(asyncio.Protocol):
    """One connection to a server; ``reply`` is the reply being received, if any."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: object) -> None:
        self.loop = loop
        self.key = key  # the pool's key: origin and forward proxy
        self.transport: asyncio.Transport | None = None
        self.reply: Receiver | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        # Kept from reply to reply: making a parser costs more than parsing a small reply.
        self.parser: httptools.HttpResponseParser | None = None
        # Tells the pool, once, that this connection is gone (its slot is free).
        self.on_gone: Callable[[Connection], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def receive(self, reply: Receiver) -> httptools.HttpResponseParser:
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
        timer = None if until is None else self.loop.call_at(until, expire, waiter)
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


def expire(waiter: asyncio.Future[None]) -> None:
    """A deadline passed: ``waiter`` raises TimeoutError (unless it is already done)."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def send(connection: Connection, head: bytes, content: Content | None) -> asyncio.Task[None] | None:
    """Write the request; returns the task writing a spooled body, if any. That body is written
    by a task of its own while the reply is awaited: a server may answer (413, 403) before it
    has read the whole body."""
    transport = connection.transport
    if transport is None or connection.closed:
        raise Disconnected("the server closed the connection")
    if not content:
        transport.write(head)
        return None
    if isinstance(content, bytes):
        if len(content) < 65536:
            transport.write(head + content)  # one write: one segment on the wire
        else:
            transport.writelines((head, content))  # not copied to join them
        return None
    transport.write(head)
    upload = asyncio.ensure_future(_upload(connection, content))
    # A failed upload closes the connection, which the reply reports; not again here.
    upload.add_done_callback(_quiet)
    return upload


async def _upload(connection: Connection, content: Streamed) -> None:
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
