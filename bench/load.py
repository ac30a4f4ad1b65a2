"""The built-in load generator: keep-alive HTTP/1.1 connections on uvloop, one request each.

    python bench/load.py --url http://127.0.0.1:8080/ [--method POST --body-file F
        --content-type application/json] [--connections 64] [--seconds 5] [--warmup 1]

Opens ``--connections`` connections and sends the same pre-built request bytes on each, the
next one as soon as the reply is complete (Content-Length, chunked, or up to the close).
Requests that complete during the ``--seconds`` window after ``--warmup`` are counted: their
latency (request written to reply complete) and time to first byte. After the window no new
request is sent; ones in flight get up to ``--timeout`` to finish, then every connection is
closed. Prints one JSON object on stdout: requests, req/s, latency and time-to-first-byte
percentiles in ms, errors (non-2xx statuses, socket errors, timeouts) and bytes. Standard
library and uvloop only: it runs in its own process, apart from what it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import json
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, TRAILER, UNTIL_CLOSE = range(6)


@dataclass
class Run:
    """What every connection shares: the request, the clock bounds and the tallies."""

    host: str
    port: int
    request: bytes
    timeout: float
    window_start: float = 0.0  # perf_counter time; completions before it are warm-up
    window_end: float = 0.0  # no request is sent after it
    latencies: array[float] = field(default_factory=lambda: array("d"))
    ttfbs: array[float] = field(default_factory=lambda: array("d"))
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    socket_errors: int = 0
    timeouts: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    clients: set[Client] = field(default_factory=set)

    def counting(self, now: float) -> bool:
        return self.window_start <= now <= self.window_end


class Client(asyncio.Protocol):
    """One keep-alive connection: send, parse the reply minimally, record, send again."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.state = HEAD
        self.remaining = 0
        self.status = 0
        self.close_after = False
        self.sent_at = 0.0  # 0 when no request is in flight
        self.first_byte_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.run.clients.add(self)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        now = time.perf_counter()
        if now > self.run.window_end:
            self.transport.close()
            return
        self.sent_at = now
        self.first_byte_at = 0.0
        self.transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        if not self.first_byte_at:
            self.first_byte_at = time.perf_counter()
        self.run.bytes_received += len(data)
        self.buffer += data
        try:
            self._parse()
        except ValueError:
            self._fail()

    def _parse(self) -> None:
        buffer = self.buffer
        while buffer or (self.state == BODY and not self.remaining):
            if self.state == HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                self._head(bytes(buffer[:end]).lower())
                del buffer[: end + 4]
            elif self.state in (BODY, CHUNK_DATA):
                taken = min(self.remaining, len(buffer))
                del buffer[:taken]
                self.remaining -= taken
                if self.remaining:
                    return
                if self.state == BODY:
                    self._complete()
                else:
                    self.state = CHUNK_SIZE
            elif self.state == CHUNK_SIZE:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buffer[:end]).split(b";")[0], 16)
                del buffer[: end + 2]
                self.state, self.remaining = (TRAILER, 0) if size == 0 else (CHUNK_DATA, size + 2)
            elif self.state == TRAILER:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                del buffer[: end + 2]
                if end == 0:
                    self._complete()
            else:  # UNTIL_CLOSE: the reply ends when the server closes
                buffer.clear()

    def _head(self, head: bytes) -> None:
        self.status = int(head[9:12])
        self.close_after = b"\r\nconnection: close" in head
        if b"\r\ntransfer-encoding:" in head and b"chunked" in head:
            self.state = CHUNK_SIZE
        elif (start := head.find(b"\r\ncontent-length:")) >= 0:
            end = head.find(b"\r\n", start + 2)
            self.state, self.remaining = BODY, int(head[start + 17 : end if end > 0 else None])
        elif self.status in (204, 304) or self.status < 200:
            self.state, self.remaining = BODY, 0
        else:
            self.state = UNTIL_CLOSE

    def _complete(self) -> None:
        now = time.perf_counter()
        run = self.run
        if run.counting(now):
            run.latencies.append(now - self.sent_at)
            run.ttfbs.append(self.first_byte_at - self.sent_at)
            run.statuses[self.status] += 1
            run.bytes_sent += len(run.request)
        self.state, self.sent_at = HEAD, 0.0
        if self.close_after:
            assert self.transport is not None
            self.transport.close()
        else:
            self._send()

    def _fail(self) -> None:
        if self.run.counting(time.perf_counter()):
            self.run.socket_errors += 1
        self.sent_at = 0.0
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.clients.discard(self)
        if self.state == UNTIL_CLOSE and self.sent_at:
            self.close_after = True  # complete, and send nothing more on this connection
            self._complete()
        elif self.sent_at and self.run.counting(time.perf_counter()):
            self.run.socket_errors += 1
        if not self.closed.done():
            self.closed.set_result(None)


async def _connection(run: Run) -> None:
    """Keep one connection busy until the window ends, reconnecting after errors."""
    loop = asyncio.get_running_loop()
    while time.perf_counter() < run.window_end:
        client = Client(run)
        try:
            await asyncio.wait_for(
                loop.create_connection(functools.partial(_same, client), run.host, run.port),
                timeout=5,
            )
        except (OSError, TimeoutError):
            if run.counting(time.perf_counter()):
                run.socket_errors += 1
            await asyncio.sleep(0.05)
            continue
        await client.closed


def _same(client: Client) -> Client:
    return client


async def _watchdog(run: Run) -> None:
    """Abort connections whose request has waited longer than the timeout."""
    while True:
        await asyncio.sleep(0.25)
        now = time.perf_counter()
        for client in list(run.clients):
            if client.sent_at and now - client.sent_at > run.timeout:
                if run.counting(now):
                    run.timeouts += 1
                client.sent_at = 0.0
                assert client.transport is not None
                client.transport.abort()


async def measure(run: Run, *, connections: int, seconds: float, warmup: float) -> None:
    start = time.perf_counter()
    run.window_start = start + warmup
    run.window_end = run.window_start + seconds
    watchdog = asyncio.create_task(_watchdog(run))
    tasks = [asyncio.create_task(_connection(run)) for _ in range(connections)]
    try:
        await asyncio.wait(tasks, timeout=warmup + seconds + run.timeout + 1)
    finally:
        for client in list(run.clients):
            assert client.transport is not None
            client.transport.abort()
        for task in [*tasks, watchdog]:
            task.cancel()
        await asyncio.gather(*tasks, watchdog, return_exceptions=True)


def percentiles(values: array[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean in milliseconds (nearest rank); zeros when empty."""
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(percent: float) -> float:
        return round(ordered[min(last, round(percent / 100 * last))] * 1000, 3)

    mean = round(sum(ordered) / len(ordered) * 1000, 3)
    return {"p50": at(50), "p90": at(90), "p99": at(99), "max": at(100), "mean": mean}


def summary(run: Run, *, connections: int, seconds: float) -> dict[str, Any]:
    requests = len(run.latencies)
    non_2xx = sum(n for status, n in run.statuses.items() if not 200 <= status < 300)
    return {
        "loader": "builtin",
        "connections": connections,
        "seconds": seconds,
        "requests": requests,
        "req_per_s": round(requests / seconds, 1),
        "latency_ms": percentiles(run.latencies),
        "ttfb_ms": percentiles(run.ttfbs),
        "errors": {"status": non_2xx, "socket": run.socket_errors, "timeout": run.timeouts},
        "statuses": {str(status): n for status, n in sorted(run.statuses.items())},
        "bytes_sent": run.bytes_sent,
        "bytes_received": run.bytes_received,
    }


def build_request(
    *, url: str, method: str, body: bytes, content_type: str | None
) -> tuple[str, int, bytes]:
    """Host, port and the request's bytes, ready to write again and again."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise SystemExit(f"load.py: {url!r} is not an http:// URL")
    port = parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "User-Agent: bench-load"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return parts.hostname, port, head + body


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file", type=Path, help="the request body (default: none)")
    parser.add_argument("--content-type")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted first")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    args = parser.parse_args()
    body = args.body_file.read_bytes() if args.body_file else b""
    host, port, request = build_request(
        url=args.url, method=args.method.upper(), body=body, content_type=args.content_type
    )
    run = Run(host=host, port=port, request=request, timeout=args.timeout)
    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        runner.run(
            measure(run, connections=args.connections, seconds=args.seconds, warmup=args.warmup)
        )
    print(json.dumps(summary(run, connections=args.connections, seconds=args.seconds)))


if __name__ == "__main__":
    main()
