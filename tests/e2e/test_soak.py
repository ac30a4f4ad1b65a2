"""Soak: tens of thousands of requests with faults mixed in; nothing lost, nothing leaked.

The proxy runs as its own process (as in production), so its memory and descriptors are
measured alone. Marked ``soak``: `make soak` runs it by itself, `make test` with the rest.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.faults import FaultyUpstream
from tests.processes import child_env, free_port

REQUESTS = 20_000
CONCURRENCY = 64
GUARD = 60.0
# What each kind of request is, how often it is sent, and what the client must get.
MIX: dict[str, tuple[float, str]] = {
    "ok": (0.70, "200"),
    "flaky": (0.08, "200"),  # a 503 first: the proxy retries it
    "close": (0.06, "200"),  # the upstream closes the kept-alive connection afterwards
    "reset": (0.05, "cut"),  # the upstream resets mid-reply: the client's reply is cut too
    "stall": (0.05, "504"),  # no reply before timeouts.first_byte
    "abandon": (0.06, "gone"),  # the client hangs up mid-reply while the upstream still works
}


@pytest.fixture
async def faulty() -> AsyncIterator[tuple[FaultyUpstream, str]]:
    """The fault server on a free port (no access log: 20,000 lines no one reads)."""
    upstream = FaultyUpstream()
    server = TestServer(upstream.app(), host="127.0.0.1")
    await server.start_server(access_log=None)
    try:
        yield upstream, str(server.make_url("")).rstrip("/")
    finally:
        upstream.release.set()
        await server.close()


class ProxyProcess:
    """`signing-proxy serve` as a child process, its JSON access lines counted as they come."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.statuses: collections.Counter[int] = collections.Counter()
        self.cuts: collections.Counter[str | None] = collections.Counter()
        self.request_ids: set[str] = set()
        self.process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> str:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "--log-format", "json", "serve",
            "--config", str(self.config),
            env=child_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers.append(asyncio.create_task(self._count(self.process.stderr)))
        async with asyncio.timeout(GUARD):
            while b"listening on" not in (line := await self.process.stdout.readline()):
                assert line, "the proxy exited before listening"
        self._readers.append(asyncio.create_task(self.process.stdout.read()))  # type: ignore[arg-type]
        return line.decode().rsplit(" ", 1)[1].strip()

    async def _count(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            entry = json.loads(line)
            if entry["logger"] == "signing_proxy.access":
                self.statuses[entry["status"]] += 1
                self.cuts[entry.get("cut")] += 1
                self.request_ids.add(entry["request_id"])

    def sample(self, name: str) -> int:
        """A VmRSS/VmHWM-style line of /proc/<pid>/status, in KiB."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(f"{name}:"):
                    return int(line.split()[1])
        raise LookupError(name)

    def open_fds(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(GUARD):
            code = await self.process.wait()
            await asyncio.gather(*self._readers)
        return code


async def _one(session: aiohttp.ClientSession, base: str, kind: str, number: int) -> str:
    """Send one request of ``kind`` and say what came back: a status, "cut" or "gone"."""
    if kind == "abandon":
        async with session.get(base + "/stall-during") as response:
            await response.content.readuntil(b";")  # the reply has started: hang up now
            response.close()
        return "gone"
    path = {
        "ok": "/ok",
        "flaky": f"/flaky/{number}?fail=1&status=503",
        "close": "/close",
        "reset": "/reset",
        "stall": "/stall-before",
    }[kind]
    try:
        async with session.get(base + path) as response:
            await response.read()
            return str(response.status)
    except aiohttp.ClientPayloadError:
        return "cut"


@pytest.mark.soak
async def test_soak_with_mixed_faults(faulty: tuple[FaultyUpstream, str], tmp_path: Path) -> None:
    """20,000 requests, 64 at a time, faults mixed in: every answer is the expected one, every
    request is logged and counted, and descriptors and memory come back to where they were."""
    upstream, url = faulty
    admin = free_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        f"admin: 127.0.0.1:{admin}\n"
        "routes:\n"
        # Only the stalling path has a short first_byte: the upstream never answers it, so its
        # 504 comes however busy the machine is, and no other reply races a timeout.
        f"  - name: stall\n    path_prefix: /stall-before\n    upstream: {url}\n"
        "    mode: none\n    timeouts: {first_byte: 300ms}\n"
        f"  - name: soak\n    upstream: {url}\n    mode: none\n"
        "    retries: {backoff: 1ms, max_backoff: 10ms}\n"
    )
    rng = random.Random(2026)  # noqa: S311 - a repeatable mix, not a secret
    kinds = rng.choices(list(MIX), weights=[w for w, _ in MIX.values()], k=REQUESTS)
    results: dict[int, str] = {}
    rss: list[int] = []
    proxy = ProxyProcess(config)
    base = await proxy.start()
    fds_before = proxy.open_fds()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = collections.deque(enumerate(kinds))

        async def worker() -> None:
            while queue:
                number, kind = queue.popleft()
                results[number] = await _one(session, base, kind, number)
                if number % 2000 == 0:
                    rss.append(proxy.sample("VmRSS"))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        async with session.get(f"http://127.0.0.1:{admin}/metrics") as scraped:
            metrics = await scraped.text()
    # Abandoned requests are cancelled upstream; give the last ones a moment to unwind.
    # The same for the connections the client just closed: the proxy closes its ends as it
    # reads their EOFs. Pooled upstream connections may stay open; nothing else may.
    for _ in range(100):
        fds_after = proxy.open_fds()
        if upstream.in_progress == 0 and fds_after - fds_before <= CONCURRENCY:
            break
        await asyncio.sleep(0.05)
    assert await proxy.stop() == 0

    mismatches = collections.Counter(
        (kind, results.get(number))
        for number, kind in enumerate(kinds)
        if results.get(number) != MIX[kind][1]
    )
    assert not mismatches, mismatches
    assert upstream.in_progress == 0
    assert sum(proxy.statuses.values()) == REQUESTS  # every request, abandoned ones too
    assert len(proxy.request_ids) == REQUESTS
    # Abandoned mid-reply: logged with the reply's status, and why it stopped short.
    assert proxy.cuts["client_gone"] == kinds.count("abandon")
    assert proxy.statuses[499] == 0  # no client left before its reply began
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("signing_proxy_requests_total{")
    )
    assert counted == REQUESTS
    assert upstream.cancelled["stall-before"] == kinds.count("stall")
    assert upstream.cancelled["stall-during"] == kinds.count("abandon")
    assert fds_after - fds_before <= CONCURRENCY
    # Memory is flat: the last samples are no higher than the early ones plus a little slack.
    assert max(rss[-3:]) - max(rss[:3]) < 10 * 1024, rss
