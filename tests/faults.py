"""A fault-injecting upstream: a real server on 127.0.0.1 that misbehaves on request.

Paths (any method):
- ``/ok``: 200 with a small body.
- ``/reset``: headers and part of a Content-Length body, then the connection is reset.
- ``/stall-before``: holds the reply until the client goes away (or ``release`` is set).
- ``/stall-during``: sends headers and a first chunk, then holds until the client goes away.
- ``/flaky/<key>?fail=N&status=S``: the first N requests for a key get S, the rest 200.
- ``/close``: answers 200 and then closes the connection (a keep-alive the client expected).
- ``/big?size=N``: N bytes, as fast as the connection takes them.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from aiohttp import web

CHUNK = b"x" * 65536


@dataclass
class FaultyUpstream:
    """The fault server's state: what it saw, and what is still in progress."""

    flaky: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    cancelled: collections.Counter[str] = field(default_factory=collections.Counter)
    in_progress: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        """The aiohttp application; serve it with handler_cancellation on."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.path.strip("/").split("/")[0]
        self.requests[kind] += 1
        self.in_progress += 1
        try:
            await request.read()
            return await getattr(self, f"_{kind.replace('-', '_')}", self._ok)(request)
        except asyncio.CancelledError:
            self.cancelled[kind] += 1  # the proxy gave up on this request: as it should
            raise
        finally:
            self.in_progress -= 1

    async def _ok(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(CHUNK) * 4)})
        await response.prepare(request)
        await response.write(CHUNK)
        assert request.transport is not None
        request.transport.abort()
        return response

    async def _stall_before(self, request: web.Request) -> web.StreamResponse:
        await self.release.wait()
        return web.Response(text="late")

    async def _stall_during(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first chunk;")
        await self.release.wait()
        await response.write_eof()
        return response

    async def _flaky(self, request: web.Request) -> web.StreamResponse:
        key = request.path
        self.flaky[key] += 1
        if self.flaky[key] <= int(request.query.get("fail", "1")):
            status = int(request.query.get("status", "503"))
            return web.Response(status=status, text="try again", headers={"Retry-After": "0"})
        return web.Response(text="recovered")

    async def _close(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(text="closing")
        response.force_close()  # replies, then drops the connection a client keeps alive
        return response

    async def _big(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", str(len(CHUNK))))
        response = web.StreamResponse(headers={"Content-Length": str(size)})
        await response.prepare(request)
        sent = 0
        while sent < size:
            piece = CHUNK[: size - sent]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response
