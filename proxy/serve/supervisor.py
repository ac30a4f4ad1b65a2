"""``serve --workers N``: N worker processes share one listening socket; this process keeps
them running.

The supervisor binds the sockets (so a busy port is reported once, at start), starts each worker
as a fresh process of this same command with the listening socket handed down, starts a worker
again when one dies, passes SIGTERM and SIGHUP on, and serves the admin endpoints itself with
the metrics of every worker added up (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import multiprocess

from proxy.config.load import check_exposure
from proxy.model import Config
from proxy.serve.admin import AccessOf, AdminHooks, admin_app
from proxy.serve.metrics import multiprocess_exposition, multiprocess_ready
from proxy.serve.replay_store import REPLAY_DB
from proxy.serve.server import bound_address

log = logging.getLogger("signing_proxy.supervisor")

WORKER_FD = "SIGNING_PROXY_WORKER_FD"  # set for a worker: the listening socket's descriptor
SUPERVISOR_PID = "SIGNING_PROXY_SUPERVISOR"  # and its supervisor's pid, to notice it is gone
# A worker that dies sooner than this after its start is crash-looping: wait before the next.
_QUICK_DEATH = 5.0
_MAX_BACKOFF = 30.0


@dataclass
class _Slot:
    """One worker place: its process now, and how soon the last one died."""

    number: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Starts, watches and stops the workers."""

    def __init__(
        self,
        *,
        config: Config,
        workers: int,
        argv: Sequence[str],
        listen: socket.socket,
        load: Callable[[], Config],
    ) -> None:
        self.config = config
        self.draining = False
        self._argv = list(argv)
        self._listen = listen
        self._load = load
        self._slots = [_Slot(number) for number in range(1, workers + 1)]

    async def start(self) -> None:
        for slot in self._slots:
            await self._spawn(slot)

    async def _spawn(self, slot: _Slot) -> None:
        env = {
            **os.environ,
            WORKER_FD: str(self._listen.fileno()),
            SUPERVISOR_PID: str(os.getpid()),
        }
        slot.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            *self._argv,
            env=env,
            pass_fds=(self._listen.fileno(),),
        )
        slot.started = time.monotonic()
        log.info("worker %d started (pid %d)", slot.number, slot.process.pid)
        slot.watcher = asyncio.create_task(self._watch(slot), name=f"worker {slot.number}")

    async def _watch(self, slot: _Slot) -> None:
        """Start the worker again when it dies, unless the whole proxy is stopping."""
        process = slot.process
        assert process is not None  # noqa: S101 - set by _spawn before the watcher starts
        code = await process.wait()
        # Its live gauges (in flight, ready) no longer count.
        multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
        if self.draining:
            return
        lived = time.monotonic() - slot.started
        slot.backoff = min(max(slot.backoff * 2, 1.0), _MAX_BACKOFF) if lived < _QUICK_DEATH else 0
        slot.restarts += 1
        log.warning(
            "worker %d (pid %d) exited with %s after %.1fs; starting it again%s",
            slot.number,
            process.pid,
            code,
            lived,
            f" in {slot.backoff:g}s" if slot.backoff else "",
        )
        await asyncio.sleep(slot.backoff)
        if not self.draining:
            await self._spawn(slot)

    def pids(self) -> list[int]:
        """The workers' process ids now."""
        return [slot.process.pid for slot in self._slots if slot.process is not None]

    def not_ready(self) -> list[str]:
        """Draining, a worker missing, or a worker not ready (credentials, start-up)."""
        reasons = ["draining"] if self.draining else []
        alive = [s for s in self._slots if s.process is not None and s.process.returncode is None]
        if len(alive) < len(self._slots):
            reasons.append(f"{len(alive)} of {len(self._slots)} workers running")
        if not multiprocess_ready():
            reasons.append("a worker is not ready (see its log)")
        return reasons

    async def reload(self) -> None:
        """Check the config here first, so that workers only ever get a valid one."""
        config = await asyncio.to_thread(self._load)  # raises ConfigError for an invalid file
        check_exposure(config, bound_address(self._listen), bound=True)
        self.config = config
        self._signal(signal.SIGHUP)
        log.info("reload: passed on to %d workers", len(self._slots))

    def hurry(self) -> None:
        """Ctrl-C again: the workers cut their requests in flight now."""
        self._signal(signal.SIGINT)

    async def stop(self) -> None:
        """Drain: every worker finishes its requests in flight (within shutdown_grace)."""
        self.draining = True
        self._signal(signal.SIGTERM)
        grace = self.config.shutdown_grace + 5.0
        processes = [s.process for s in self._slots if s.process is not None]
        try:
            async with asyncio.timeout(grace):
                await asyncio.gather(*(p.wait() for p in processes))
        except TimeoutError:
            log.error("workers still running %gs after SIGTERM; killing them", grace)
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await asyncio.gather(*(p.wait() for p in processes))
        watchers = [s.watcher for s in self._slots if s.watcher is not None]
        await asyncio.gather(*watchers, return_exceptions=True)

    def _signal(self, signum: int) -> None:
        for slot in self._slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)


@contextlib.contextmanager
def run_directory() -> Iterator[str]:
    """A fresh private directory for this run, named to the workers in their environment: the
    metrics of every worker (PROMETHEUS_MULTIPROC_DIR) and the replay memory they share."""
    directory = tempfile.mkdtemp(prefix="signing-proxy-run-")  # mode 0700
    metrics = os.path.join(directory, "metrics")
    os.mkdir(metrics)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics
    os.environ[REPLAY_DB] = os.path.join(directory, "replay.sqlite3")
    try:
        yield directory
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        os.environ.pop(REPLAY_DB, None)
        shutil.rmtree(directory, ignore_errors=True)


async def serve_admin(supervisor: Supervisor, sock: socket.socket) -> web.AppRunner:
    """The admin endpoints, answered by the supervisor for all workers."""
    access = AccessOf(lambda: supervisor.config, bound_address(sock))
    hooks = AdminHooks(supervisor.not_ready, multiprocess_exposition, supervisor.reload, access)
    runner = web.AppRunner(admin_app(hooks), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def worker_count(value: str) -> int:
    """``--workers``: a number of processes, or ``auto`` for one per core."""
    if value == "auto":
        return os.cpu_count() or 1
    count = int(value)
    if count < 1:
        raise ValueError(value)
    return count
