"""`signing-proxy serve`: one process, a worker of several, or the supervisor of several;
each runs until SIGTERM or Ctrl-C and reloads its config at each SIGHUP."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence

from proxy import __version__
from proxy.errors import ConfigError
from proxy.model import Address, Config
from proxy.serve.replay_store import REPLAY_DB
from proxy.serve.server import describe_routes, listening_socket, running
from proxy.serve.supervisor import SUPERVISOR_PID, Supervisor, run_directory, serve_admin

log = logging.getLogger("signing_proxy")


class Stop(asyncio.Event):
    """Set when the proxy is asked to stop (SIGTERM, Ctrl-C): it drains within shutdown_grace.
    ``now`` is set by a Ctrl-C once stopping: requests still in flight are cut at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = asyncio.Event()

    def interrupt(self) -> None:
        """SIGINT: stop, or, when already stopping, stop now."""
        if self.is_set():
            self.now.set()
        self.set()


async def serve(
    config: Config,
    load: Callable[[], Config],
    admin: Address | None,
    stop: Stop,
    *,
    inspect: bool = False,
    notes: Sequence[str] = (),
) -> int:
    hangups = _hangups()
    async with running(config, admin=admin, load=load, inspect=inspect, cut_now=stop.now) as proxy:
        _announce(config, proxy.url, proxy.admin_url, inspect=inspect, notes=notes)
        await _until_stopped(stop, hangups, proxy.reload)
    return 0


async def serve_worker(config: Config, load: Callable[[], Config], fd: int, stop: Stop) -> int:
    """One worker of serve --workers: the supervisor's socket, no admin listener, and an end
    when the supervisor is gone (it would otherwise outlive a supervisor killed outright)."""
    inherited = socket.socket(fileno=fd)
    hangups = _hangups()
    # Named by the supervisor: it may already be gone by the time this process looks.
    parent = int(os.environ.get(SUPERVISOR_PID, os.getppid()))
    replay_db = os.environ.get(REPLAY_DB)  # named by the supervisor: shared by its workers
    async with running(
        config, load=load, inherited=inherited, replay_db=replay_db, cut_now=stop.now
    ) as proxy:
        orphaned = asyncio.create_task(_orphaned(parent, stop), name="supervisor watch")
        try:
            await _until_stopped(stop, hangups, proxy.reload)
        finally:
            orphaned.cancel()
            await asyncio.gather(orphaned, return_exceptions=True)
    return 0


async def _orphaned(parent: int, stop: asyncio.Event) -> None:
    # Polled: no event tells a process its parent died (short of Linux's PR_SET_PDEATHSIG).
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    log.error("the supervisor (pid %d) is gone; stopping", parent)
    stop.set()


async def serve_workers(
    config: Config,
    load: Callable[[], Config],
    admin: Address | None,
    workers: int,
    argv: list[str],
    stop: Stop,
    *,
    notes: Sequence[str] = (),
) -> int:
    admin_address = admin or config.admin
    hangups = _hangups()
    with run_directory():
        listen = listening_socket(config.listen, key="listen")
        listen.set_inheritable(True)
        admin_sock = listening_socket(admin_address, key="admin") if admin_address else None
        supervisor = Supervisor(config=config, workers=workers, argv=argv, listen=listen, load=load)
        await supervisor.start()
        admin_runner = await serve_admin(supervisor, admin_sock) if admin_sock else None
        host, port = listen.getsockname()[:2]
        scheme = "https" if config.tls else "http"
        admin_url = None
        if admin_sock is not None:
            admin_url = "http://{}:{}".format(*admin_sock.getsockname()[:2])
        _announce(config, f"{scheme}://{host}:{port}", admin_url, workers=workers, notes=notes)
        # A second Ctrl-C cuts the workers' requests at once (a terminal sends it to them too).
        hurry = asyncio.create_task(_forward(stop.now, supervisor.hurry), name="Ctrl-C again")
        try:
            await _until_stopped(stop, hangups, supervisor.reload)
            log.info(
                "stopping: draining %d workers (within shutdown_grace, %gs; a second SIGINT "
                "(Ctrl-C) cuts their requests now)",
                workers,
                config.shutdown_grace,
            )
        finally:
            await supervisor.stop()
            hurry.cancel()
            await asyncio.gather(hurry, return_exceptions=True)
            if admin_runner is not None:
                await admin_runner.cleanup()
            listen.close()
    return 0


async def _forward(event: asyncio.Event, action: Callable[[], None]) -> None:
    await event.wait()
    action()


def _announce(
    config: Config,
    url: str,
    admin_url: str | None,
    *,
    workers: int = 1,
    inspect: bool = False,
    notes: Sequence[str] = (),
) -> None:
    suffix = f" ({workers} workers)" if workers > 1 else ""
    # The banner is for people, on stdout; the log (stderr, JSON with --log-format json) has
    # it too, as one record with fields, for whatever reads the log.
    log.info(
        "signing-proxy %s listening on %s%s",
        __version__,
        url,
        suffix,
        extra={
            "url": url,
            "admin_url": admin_url,
            "workers": workers,
            "routes": [route.name for route in config.routes],
        },
    )
    print(f"signing-proxy {__version__} listening on {url}{suffix}")
    for note in notes:
        print(f"  ({note})")
    for line in describe_routes(config):
        print(line)
    if admin_url:
        print(f"admin on {admin_url}")
        if inspect:
            print(f"request inspector on {admin_url}/inspect")
    sys.stdout.flush()


def _hangups() -> asyncio.Event:
    """SIGHUP from now on, as an event: installed before the proxy starts, so that a SIGHUP
    sent as soon as it says it listens reloads it instead of ending it (the default action)."""
    hangups = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hangups.set)
    return hangups


async def _until_stopped(
    stop: asyncio.Event, hangups: asyncio.Event, reload: Callable[[], Awaitable[None]]
) -> None:
    """Wait for SIGTERM or Ctrl-C, reloading at each SIGHUP meanwhile."""
    reloader = asyncio.create_task(_reload_on(hangups, reload), name="SIGHUP reloads")
    try:
        await stop.wait()
    finally:
        reloader.cancel()
        await asyncio.gather(reloader, return_exceptions=True)


async def _reload_on(hangups: asyncio.Event, reload: Callable[[], Awaitable[None]]) -> None:
    """Reload at each SIGHUP; an invalid config is logged and the running one kept."""
    while True:
        await hangups.wait()
        hangups.clear()
        try:
            await reload()
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
