"""The listeners and their lifecycle: the proxy's request handler, the admin app, the drain on
shutdown and the reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.config.lint import warnings
from proxy.config.tls import client_context, server_context
from proxy.errors import (
    ConfigError,
)
from proxy.inspector.store import Inspector
from proxy.model import Address, Config
from proxy.serve.admin import AccessOf, AdminHooks, admin_app
from proxy.serve.credentials import Fetch
from proxy.serve.handler import Handler
from proxy.serve.metrics import Metrics
from proxy.serve.state import State
from proxy.serve.upstream import Pools

log = logging.getLogger("signing_proxy")

# How long a connection is given to close once its request is done or cut (a bound only).
_CLOSING = 1.0


@dataclass(frozen=True, slots=True)
class Running:
    """A started proxy: where it listens, its state, and how to reload it."""

    state: State
    host: str
    port: int
    admin_url: str | None
    reload: Callable[[], Awaitable[None]]
    scheme: str = "http"

    @property
    def url(self) -> str:
        return _url(self.host, self.port, self.scheme)

    @property
    def inspector(self) -> Inspector | None:
        return self.state.inspector


@contextlib.asynccontextmanager
async def running(
    config: Config,
    *,
    listen: Address | None = None,
    admin: Address | None = None,
    load: Callable[[], Config] | None = None,
    credential_overrides: Mapping[str, Fetch] | None = None,
    inherited: socket.socket | None = None,
    inspect: bool = False,
    replay_db: str | None = None,
    cut_now: asyncio.Event | None = None,
) -> AsyncIterator[Running]:
    """Start the proxy (and the admin listener, when the config or ``admin`` names one); on
    exit, drain: stop accepting, let requests in flight finish within shutdown_grace, close.

    ``load`` re-reads the config for a reload (SIGHUP, POST /reload). A worker of
    ``serve --workers`` passes the ``inherited`` listening socket and has no admin listener
    (its supervisor answers for all workers) and shares with the other workers the replay
    memory of webhook routes (the SQLite file ``replay_db``). ``inspect`` serves the request
    inspector on the admin listener, which must then be on a loopback address. ``cut_now``,
    once set during the drain, cuts the requests still in flight at once (Ctrl-C again).
    """
    address = listen or config.listen
    admin_address = None if inherited else (admin or config.admin)
    if inspect:
        _check_inspector_address(admin_address)
    # Bind before resolving credentials: a busy port is the first thing a user should hear of.
    sock = inherited or listening_socket(address, key="listen")
    admin_sock = listening_socket(admin_address, key="admin") if admin_address else None
    inspector = Inspector() if inspect else None
    state = State(
        metrics=Metrics(),
        listen=bound_address(sock),
        overrides=credential_overrides,
        inspector=inspector,
        replay_db=replay_db,
    )
    pools: Pools | None = None
    runners: list[web.BaseRunner] = []
    handler: Handler | None = None
    try:
        await state.start(config)
        pools = Pools(client_context(config.upstream_ca_file))
        reload = _reloader(state, load or (lambda: config))
        if admin_sock is not None:
            access = AccessOf(lambda: state.current.config, bound_address(admin_sock))
            hooks = AdminHooks(state.not_ready, state.metrics.exposition, reload, access)
            admin_web = admin_app(hooks, inspector=inspector)
            admin_runner = web.AppRunner(
                admin_web, shutdown_timeout=1.0, **_connection_options(keepalive=15.0)
            )
            runners.append(await _serve(admin_runner, admin_sock))
        # The proxy's listener needs no router, middleware or signals: aiohttp's low-level
        # server hands each request straight to the handler.
        handler = Handler(state, pools)
        proxy_server = web.Server(handler, **_connection_options(config.client_timeouts.headers))
        # The drain (_drain) has waited shutdown_grace and cut what was left before the
        # runner's own shutdown: that only closes connections.
        proxy_runner = web.ServerRunner(proxy_server, shutdown_timeout=_CLOSING)
        ssl_context = server_context(config.tls) if config.tls else None
        # Listed first, so it is drained first while the admin port reports "draining".
        runners.insert(0, await _serve(proxy_runner, sock, ssl_context))
        _warn(config, state.listen)
        host, port = sock.getsockname()[:2]
        admin_url = _url(*admin_sock.getsockname()[:2]) if admin_sock else None
        scheme = "https" if config.tls else "http"
        if inspector is not None:
            inspector.proxy_url = _url(_loopback(host), port, scheme)
        yield Running(state, host, port, admin_url, reload, scheme)
    finally:
        state.draining = True
        state.metrics.ready.set(0)
        if handler is not None and runners:
            await _drain(
                runners[0], handler, grace=state.current.config.shutdown_grace, cut_now=cut_now
            )
        for runner in runners:
            await runner.cleanup()
        if pools is not None:
            await pools.close()
        await state.close()
        for open_socket in (sock, admin_sock):
            if open_socket is not None:
                open_socket.close()


async def _drain(
    runner: web.BaseRunner, handler: Handler, *, grace: float, cut_now: asyncio.Event | None
) -> None:
    """Stop accepting connections, and new requests on open ones; give the requests in flight
    ``grace`` seconds (or until ``cut_now``) to finish; then cut those still running."""
    for site in list(runner.sites):
        await site.stop()
    if runner.server is not None:
        runner.server.pre_shutdown()  # kept-alive connections close after their request
    waiting = set(handler.in_flight)
    if not waiting:
        log.info("stopping: no requests in flight")
        return
    until = time.time() + grace
    log.info(
        "stopping: no new connections; waiting for %d request(s) in flight until %s "
        "(shutdown_grace %gs)%s",
        len(waiting),
        time.strftime("%H:%M:%S", time.localtime(until)),
        grace,
        "; a second SIGINT (Ctrl-C) cuts them now" if cut_now is not None else "",
    )
    handler.emptied = asyncio.Event()
    watched = [asyncio.ensure_future(handler.emptied.wait())]
    hurry = asyncio.ensure_future(cut_now.wait()) if cut_now is not None else None
    if hurry is not None:
        watched.append(hurry)
    try:
        await asyncio.wait(watched, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        hurried = hurry is not None and hurry.done()
    finally:
        for future in watched:
            future.cancel()
    waiting = set(handler.in_flight)
    if waiting:
        why = "a second SIGINT (Ctrl-C)" if hurried else "shutdown_grace ended"
        log.warning("stopping: %s; cutting %d request(s) still in flight", why, len(waiting))
        handler.cut_all()
        await asyncio.wait(waiting, timeout=_CLOSING)


def _connection_options(keepalive: float) -> dict[str, Any]:
    """How aiohttp serves each connection, on the proxy's and the admin's listener alike."""
    return {
        "access_log": None,
        # The body forwarded and hashed must be the bytes the client sent.
        "auto_decompress": False,
        # A client that goes away cancels its upstream request too.
        "handler_cancellation": True,
        # Also closes a connection whose request headers have not all arrived by then
        # (aiohttp arms it at connect): the bound on slow-loris clients.
        "keepalive_timeout": keepalive,
    }


async def _serve(
    runner: web.BaseRunner, sock: socket.socket, ssl_context: ssl.SSLContext | None = None
) -> web.BaseRunner:
    await runner.setup()
    try:
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _reloader(state: State, load: Callable[[], Config]) -> Callable[[], Awaitable[None]]:
    async def reload() -> None:
        """Re-read the config (a file read, off the loop) and swap it in."""
        config = await asyncio.to_thread(load)
        await state.reload(config)
        _warn(config, state.listen)

    return reload


def _check_inspector_address(admin: Address | None) -> None:
    """The inspector shows signed traffic and replays it as the operator's identity: only
    for this machine."""
    if admin is None:
        raise ConfigError("--inspect", "the inspector needs an admin listener: give --admin")
    if not admin.is_loopback:
        raise ConfigError(
            "--inspect",
            f"the inspector replays requests signed as you; it is served only on a loopback "
            f"admin address, not {admin.host} (e.g. --admin 127.0.0.1:9901)",
        )


def _loopback(host: str) -> str:
    """The address this machine reaches a listener on (a wildcard bind is not one)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104


def _warn(config: Config, listen: Address) -> None:
    for warning in warnings(config, listen):
        log.warning("%s", warning)


def bound_address(sock: socket.socket) -> Address:
    """Where a listening socket is bound (a wildcard stays one)."""
    host, port = sock.getsockname()[:2]
    return Address(host, port)


def listening_socket(address: Address, *, key: str) -> socket.socket:
    """A bound, listening socket; a ConfigError naming ``key`` when the address is taken."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    try:
        return socket.create_server((address.host, address.port), family=family)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(key, f"cannot listen on {address}: {reason}") from exc


def _url(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def describe_routes(config: Config) -> list[str]:
    """One line per route, printed at start."""
    lines = []
    for route in config.routes:
        methods = ",".join(sorted(route.methods)) if route.methods else "the usual methods"
        host = f" host {route.host}" if route.host else ""
        line = f"  {route.name}: {route.path_prefix}{host} ({methods}) -> {route.upstream.origin}"
        if route.mode == "iam" and route.signing is not None:
            signing = route.signing
            line += (
                f"  [iam: signs for {signing.host}, {signing.service}/{signing.region}, "
                f"credentials {route.credentials!r}]"
            )
        else:
            line += f"  [{route.mode}]"
        if route.inbound is not None:
            line += f" [inbound: {route.inbound.type or 'allow_ips'}]"
        lines.append(line)
    return lines
