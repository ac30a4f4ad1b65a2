"""What each half of the proxy's hop costs alone: CPU time per small GET, in one process.

    .venv/bin/python bench/parts.py [--seconds 5] [--connections 64]

Measures, one after the other, against the same origin (nginx when installed, else
bench/upstream.py), with keep-alive connections:

- ``aiohttp-client``: aiohttp's ``ClientSession`` alone (tuned as the proxy once used it: no
  cookies, no auto headers, no decompression), sending GETs with the three headers the proxy
  signs: what the proxy's upstream client was until ``proxy/http_client.py`` replaced it;
- ``client``: the proxy's upstream client alone, a ``proxy.http11.pool.Pool``, sending the
  same GETs;
- ``server``: a bare aiohttp server (aiohttp's low-level server with the proxy's settings, a
  handler that answers at once) under bench/load.py;
- ``server-httptools``: the least a listener can do on the same loop, an asyncio protocol
  feeding httptools' request parser and answering each request with the same reply: what a
  listener of the proxy's own (as ``proxy/http11`` is its client) could at best save over
  aiohttp's;
- ``hop``: server and client together and nothing else: the server's handler sends each
  request on with the proxy's client and streams the reply back as the proxy does (no
  routing, checks, signing, retries, metrics or logs): the floor for this proxy;
- ``proxy-none`` and ``proxy-iam``: the whole proxy, ``serve --workers 1`` in ``none`` and
  in ``iam`` mode, under bench/load.py, ``--rounds`` times each, taking turns; the medians,
  and what signing adds per request.

For each it prints requests per second and CPU microseconds per request of the measured
process (user + system, from /proc), so the share of a request's cost that a faster client or
server could save is a measurement, not a guess. CPU per request moves far less than
requests per second when the shared machine slows down, so it is what tells what ``iam``
costs. Where ``perf`` is installed and the machine has hardware counters, the measured
processes' user-space instructions and cycles per request are printed too (``perf stat``):
instructions stay within about 1% from run to run. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import cast

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import httptools
from aiohttp import hdrs, web

from bench import nginx
from bench.load import fast_loop_factory
from bench.processes import Child, free_port, port_open, tree_cpu, wait_until
from bench.systems import BENCH, System, start_proxy, start_upstream
from proxy.core.headers import reply_headers
from proxy.http11.pool import Pool
from proxy.model import Upstream

TICKS = os.sysconf("SC_CLK_TCK")
SIGNED = {
    "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "x-amz-date": "20261121T000000Z",
    "authorization": "AWS4-HMAC-SHA256 Credential=ASIABENCHEXAMPLE0001/20261121/eu-central-1/"
    "lambda/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
    + "0"
    * 64,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per part")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns of proxy-none and proxy-iam (medians)"
    )
    # The child processes of the server and hop parts.
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--forward-to", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--httptools", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        if args.httptools:
            _httptools_server(args.serve)
        else:
            _bare_server(args.serve, forward_to=args.forward_to)
        return 0
    with TemporaryDirectory(prefix="signing-proxy-parts-") as temp, contextlib.ExitStack() as stack:
        directory = Path(temp)
        upstream, stream_port = start_upstream(directory)
        stack.callback(upstream.stop)
        origin_port = stream_port
        if binary := nginx.binary():
            origin, origin_port = nginx.start_origin(binary, directory)
            stack.callback(origin.stop)
        print(f"origin: {'nginx' if binary else 'builtin'}, {args.connections} connections")
        for part, send in (("aiohttp-client", _aiohttp_sender), ("client", _pool_sender)):
            _print(
                part, Measured(*_measure_client(send, origin_port, args.connections, args.seconds))
            )
        servers: tuple[tuple[str, list[str]], ...] = (
            ("server", []),
            ("server-httptools", ["--httptools"]),
            ("hop", ["--forward-to", str(origin_port)]),
        )
        for part, forward in servers:
            port = free_port()
            command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)]
            child = Child(part, [*command, *forward], directory=directory)
            stack.callback(child.stop)
            wait_until(lambda: port_open(port), timeout=15, what=part)  # noqa: B023
            _print(part, _measure_process(child.pid, port, args.connections, args.seconds))
            child.stop()
        proxies = {}
        for mode in ("none", "iam"):
            proxy, port = start_proxy(
                directory,
                System("proxy", mode, 1),
                origin_port=origin_port,
                stream_port=stream_port,
                log_level="warning",
            )
            stack.callback(proxy.stop)
            proxies[f"proxy-{mode}"] = (proxy.pid, port)
        _compare_modes(proxies, args.connections, args.seconds, args.rounds)
    return 0


def _compare_modes(
    proxies: dict[str, tuple[int, int]], connections: int, seconds: float, rounds: int
) -> None:
    """Each proxy in turn, ``rounds`` times: a slow spell of the machine falls on both."""
    measured: dict[str, list[Measured]] = {part: [] for part in proxies}
    for _ in range(rounds):
        for part, (pid, port) in proxies.items():
            measured[part].append(_measure_process(pid, port, connections, seconds))
    medians = {part: Measured.median(runs) for part, runs in measured.items()}
    for part, median in medians.items():
        _print(part, median)
    none, iam = medians["proxy-none"], medians["proxy-iam"]
    added = iam.cpu_us - none.cpu_us
    print(f"iam adds {added:.1f} µs CPU per request ({added / none.cpu_us:+.0%} on none)")
    for what in ("instructions", "cycles"):
        before, after = getattr(none, what), getattr(iam, what)
        if before and after:
            print(
                f"iam adds {(after - before) / 1e3:.1f}k user-space {what} per request "
                f"({after / before - 1:+.1%} on none)"
            )


@dataclass(frozen=True)
class Measured:
    """One part's rate and cost per request; instructions and cycles (user space, from
    ``perf stat``) when perf can count them on this machine."""

    rate: float
    cpu_us: float
    instructions: float | None = None
    cycles: float | None = None

    @staticmethod
    def median(runs: list[Measured]) -> Measured:
        """Each figure's median over ``runs``."""

        def middle(values: list[float | None]) -> float | None:
            known = [value for value in values if value is not None]
            return statistics.median(known) if len(known) == len(values) else None

        return Measured(
            statistics.median(run.rate for run in runs),
            statistics.median(run.cpu_us for run in runs),
            middle([run.instructions for run in runs]),
            middle([run.cycles for run in runs]),
        )


def _print(part: str, measured: Measured) -> None:
    line = f"{part:15} {measured.rate:>10,.0f} req/s  {measured.cpu_us:7.1f} µs CPU per request"
    if measured.instructions and measured.cycles:
        thousands = measured.instructions / 1e3, measured.cycles / 1e3
        line += "  {:6.1f}k instructions  {:6.1f}k cycles".format(*thousands)
    print(line)


Send = Callable[[], Awaitable[None]]


def _client_session(ssl_context: ssl.SSLContext) -> aiohttp.ClientSession:
    """aiohttp's client as the proxy once used it: no cookies, no decompression, no headers
    of its own."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_context),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=(hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE),
        timeout=aiohttp.ClientTimeout(total=None),
    )


@contextlib.asynccontextmanager
async def _aiohttp_sender(port: int) -> AsyncIterator[Send]:
    url = f"http://127.0.0.1:{port}/"
    async with _client_session(ssl.create_default_context()) as session:

        async def send() -> None:
            async with session.get(url, headers=SIGNED) as reply:
                await reply.read()

        yield send


@contextlib.asynccontextmanager
async def _pool_sender(port: int) -> AsyncIterator[Send]:
    pool, origin = Pool(ssl.create_default_context()), Upstream("http", "127.0.0.1", port)
    headers = list(SIGNED.items())

    async def send() -> None:
        reply = await pool.request(origin, "GET", "/", headers)
        while await reply.read_chunk():
            pass
        reply.release()

    try:
        yield send
    finally:
        await pool.close()


def _measure_client(
    sender: Callable[[int], contextlib.AbstractAsyncContextManager[Send]],
    port: int,
    connections: int,
    seconds: float,
) -> tuple[float, float]:
    """A client in this process: its rate and this process's CPU per request."""

    async def run() -> tuple[float, float]:
        async with sender(port) as send:

            async def connection(until: float) -> int:
                done = 0
                while time.monotonic() < until:
                    await send()
                    done += 1
                return done

            await asyncio.gather(*(connection(time.monotonic() + 1.0) for _ in range(connections)))
            cpu, start = time.process_time(), time.monotonic()
            counts = await asyncio.gather(
                *(connection(start + seconds) for _ in range(connections))
            )
            elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
        return sum(counts) / elapsed, cpu / sum(counts) * 1e6

    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        return runner.run(run())


def _measure_process(pid: int, port: int, connections: int, seconds: float) -> Measured:
    """bench/load.py against ``port``; the rate, and ``pid``'s CPU (and, with perf, its
    user-space instructions and cycles) per request meanwhile."""
    command = [sys.executable, str(BENCH / "load.py"), "--url", f"http://127.0.0.1:{port}/"]
    command += ["--connections", str(connections), "--seconds", str(seconds), "--warmup", "1"]
    load = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
    time.sleep(1.0)  # the warm-up: not counted
    before = tree_cpu(pid)
    counting = _count_events(pid, seconds)
    out, _ = load.communicate(timeout=seconds + 30)
    after = tree_cpu(pid)  # includes the last moments after the window: a slight overcount
    found = json.loads(out)
    requests = found["requests"]
    counts = _counted(counting) if counting is not None else {}
    return Measured(
        found["req_per_s"],
        (after - before) / TICKS / requests * 1e6,
        counts["instructions:u"] / requests if "instructions:u" in counts else None,
        counts["cycles:u"] / requests if "cycles:u" in counts else None,
    )


def _count_events(pid: int, seconds: float) -> subprocess.Popen[str] | None:
    """``perf stat`` on ``pid`` for ``seconds``, when perf is installed (Debian: linux-perf).
    Instructions are steady to about 1% from run to run where CPU time moves by 10%."""
    if shutil.which("perf") is None:
        return None
    command = ["perf", "stat", "-x", ",", "-e", "instructions:u,cycles:u", "-p", str(pid)]
    return subprocess.Popen(  # noqa: S603
        [*command, "--", "sleep", str(seconds)], stderr=subprocess.PIPE, text=True
    )


def _counted(perf: subprocess.Popen[str]) -> dict[str, float]:
    """The counts ``perf stat -x ,`` printed; none where it could not count (a VM without
    performance counters says "<not supported>")."""
    _, err = perf.communicate(timeout=30)
    counts = {}
    for line in err.splitlines():
        value, _, event, *_ = [*line.split(","), "", ""]
        if value.isdigit():
            counts[event] = float(value)
    return counts


def _bare_server(port: int, *, forward_to: int | None) -> None:
    """aiohttp's low-level server with the proxy's settings (as the proxy serves) and a
    handler that answers at once, or that forwards to ``forward_to`` with the proxy's client
    and streams the reply back."""
    origin = Upstream("http", "127.0.0.1", forward_to or 0)
    headers = list(SIGNED.items())

    async def serve() -> None:
        pool = Pool(ssl.create_default_context())

        async def answer(request: web.BaseRequest) -> web.StreamResponse:
            if forward_to is None:
                return web.Response(body=b'{"ok":true}\n', content_type="application/json")
            upstream = await pool.request(origin, "GET", request.raw_path, headers)
            try:
                kept = reply_headers(upstream.headers, request_id="bench")
                if upstream.complete:  # as the proxy does: the whole reply in one write
                    body = upstream.buffered()
                    return web.Response(status=upstream.status, headers=kept, body=body)
                out = web.StreamResponse(status=upstream.status, headers=kept)
                await out.prepare(request)
                while chunk := await upstream.read_chunk():
                    await out.write(chunk)
                await out.write_eof()
                return out
            finally:
                upstream.release()

        server = web.Server(
            answer, access_log=None, handler_cancellation=True, auto_decompress=False
        )
        runner = web.ServerRunner(server)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await asyncio.Event().wait()  # until the benchmark kills this process
        finally:
            await runner.cleanup()
            await pool.close()

    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        runner.run(serve())


_REPLY_BODY = b'{"ok":true}\n'
_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_REPLY_BODY),
    _REPLY_BODY,
)


class _Answering(asyncio.Protocol):
    """Parses requests with httptools and answers each at once: no request object, no
    routing of any kind."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(_REPLY)


def _httptools_server(port: int) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(_Answering, "127.0.0.1", port)
        await asyncio.Event().wait()  # until the benchmark kills this process

    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        runner.run(serve())


if __name__ == "__main__":
    sys.exit(main())
