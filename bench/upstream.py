"""The built-in upstream: a small, fast HTTP/1.1 origin on uvloop for the benchmark.

    python bench/upstream.py --port 8000 [--host 127.0.0.1]

Prints ``ready`` on stdout once it listens. Keeps connections alive (HTTP/1.1), answers any
GET or HEAD with a 12-byte JSON body, reads and discards any request body (Content-Length
only: a chunked request gets 411, which the proxy never sends: it always forwards with
Content-Length) and answers it the same way, and streams ``GET /stream?chunks=N&delay=MS``
as N chunks (the first at once, then one every MS milliseconds, the end right after the
last), like Lambda response streaming. Runs until SIGTERM or SIGINT. Standard library and
uvloop only: it runs in its own process, apart from the proxy it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from typing import cast
from urllib.parse import parse_qs, urlsplit

BODY = b'{"ok":true}\n'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_HEAD = 64 * 1024
MAX_CHUNKS = 10_000


class Origin(asyncio.Protocol):
    """One client connection: requests are handled in order, one at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.discard = 0  # request body bytes still to read and drop
        self.streaming = False  # a /stream reply is under way; parse the rest after it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.discard:
            taken = min(self.discard, len(data))
            self.discard -= taken
            data = data[taken:]
            if self.discard:
                return
            self._reply_ok()
        self.buffer += data
        self._process()

    def _process(self) -> None:
        while not self.streaming and not self.discard and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[: end + 4]
            self._handle(head)

    def _handle(self, head: bytes) -> None:
        assert self.transport is not None
        request_line, _, headers = head.partition(b"\r\n")
        target = request_line.split(b" ")[1] if request_line.count(b" ") >= 2 else b"/"
        if b"transfer-encoding:" in headers:
            self.transport.write(LENGTH_REQUIRED)
            self.transport.close()
            return
        length = _content_length(headers)
        if length:
            taken = min(length, len(self.buffer))
            del self.buffer[:taken]
            self.discard = length - taken
            if self.discard:
                return  # answered when the rest of the body has arrived
        if target.startswith(b"/stream"):
            self._stream(target.decode("latin-1"))
        else:
            self._reply_ok()

    def _reply_ok(self) -> None:
        assert self.transport is not None
        self.transport.write(OK + BODY)

    def _stream(self, target: str) -> None:
        query = parse_qs(urlsplit(target).query)
        chunks = max(1, min(int(query.get("chunks", ["5"])[0]), MAX_CHUNKS))
        delay = float(query.get("delay", ["10"])[0]) / 1000
        assert self.transport is not None
        self.streaming = True
        self.transport.write(STREAM_HEAD)
        self._chunk(0, chunks, delay)

    def _chunk(self, number: int, chunks: int, delay: float) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        event = b"data: %d\n\n" % number
        self.transport.write(b"%x\r\n%s\r\n" % (len(event), event))
        if number + 1 < chunks:
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._chunk, number + 1, chunks, delay)
            return
        self.transport.write(b"0\r\n\r\n")
        self.streaming = False
        self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _content_length(headers: bytes) -> int:
    start = headers.find(b"content-length:")
    if start < 0:
        return 0
    end = headers.find(b"\r\n", start)
    return int(headers[start + 15 : end if end >= 0 else None])


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Origin, host, port, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        runner.run(serve(args.host, args.port))


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
