"""What a loaded config becomes at run time, and how a reload swaps it in without a pause.

A ``Generation`` is everything one config needs: the config, each route's guard (rate limit,
in-flight cap, inbound checks with their replay memory) and each credential set's provider. A
request reads ``State.current`` once and keeps that generation to its end, so a reload never
changes a request half-way. A reload builds the next generation beside the current one, keeps
the guards and providers whose settings did not change (with their state), resolves new
credential sets before the swap, and stops what is no longer used after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.config.load import check_exposure
from proxy.core.front_door import HostPolicy, listener_hosts, route_hosts
from proxy.core.inbound import InboundCheck
from proxy.core.limits import Admission
from proxy.core.replay import ReplayGuard, ReplayMemory
from proxy.inspector.store import Inspector
from proxy.model import Address, Config, CredentialSet, Route
from proxy.serve.clock import SigningClock
from proxy.serve.credentials import CredentialProvider, Fetch, build_providers
from proxy.serve.metrics import FLUSH_PERIOD, Metrics
from proxy.serve.replay_store import ReplayDatabase

log = logging.getLogger("signing_proxy")


@dataclass(frozen=True, slots=True)
class Guard:
    """What a route checks before it reads a body: admission, then who is calling."""

    route: Route
    admission: Admission
    inbound: InboundCheck | None


@dataclass(frozen=True, slots=True)
class Generation:
    """One loaded config and what was built from it."""

    config: Config
    guards: Mapping[str, Guard]
    providers: Mapping[str, CredentialProvider]
    hosts: HostPolicy  # the Host names the listener serves on every route
    route_hosts: HostPolicy  # those it serves only on the routes that name them
    # Headers that routes' inbound checks read a secret from (lower-case): the inspector
    # masks them, whatever they are called.
    secret_headers: frozenset[str]


class State:
    """The current generation, readiness and draining, and the credential refresh tasks."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        listen: Address,
        overrides: Mapping[str, Fetch] | None = None,
        inspector: Inspector | None = None,
        replay_db: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.listen = listen  # the address of the socket actually bound
        self.clock = SigningClock()
        self.inspector = inspector  # None unless serve --inspect (or the demo)
        self.draining = False
        self._overrides = dict(overrides or {})
        self._current: Generation | None = None
        self._tasks: dict[CredentialProvider, asyncio.Task[None]] = {}
        self._metrics_task: asyncio.Task[None] | None = None
        self._reloading = asyncio.Lock()
        # Shared by all workers of the proxy when it has several; else each route's own.
        self._replay = ReplayDatabase(replay_db) if replay_db else None
        self._memories: dict[str, ReplayGuard] = {}  # by route name, when not shared

    @property
    def current(self) -> Generation:
        """The generation new requests use."""
        if self._current is None:
            raise RuntimeError("the proxy state is not started")
        return self._current

    async def start(self, config: Config) -> None:
        """Build and start the first generation (credential sets resolved once, in order)."""
        check_exposure(config, self.listen, bound=True)
        self._current = await self._build(config, previous=None)
        self._metrics_task = asyncio.create_task(self._update_metrics(), name="metrics")

    async def reload(self, config: Config) -> None:
        """Swap in ``config``; requests in flight finish with the generation they started on."""
        async with self._reloading:
            # Against the socket bound at start (a reload does not rebind it): a reload that
            # drops inbound: on a listener beyond loopback is refused like any invalid config.
            check_exposure(config, self.listen, bound=True)
            previous = self.current
            if (config.listen, config.client_timeouts) != (
                previous.config.listen,
                previous.config.client_timeouts,
            ):
                log.warning(
                    "reload: listen and client_timeouts take effect at the next restart; "
                    "still listening on %s",
                    previous.config.listen,
                )
            self._current = await self._build(config, previous=previous)
            names = {route.name for route in config.routes}
            self._memories = {n: m for n, m in self._memories.items() if n in names}
            await self._stop_unused()
            count = len(config.routes)
            log.info("reload: %d route%s in effect", count, "" if count == 1 else "s")

    async def close(self) -> None:
        """Stop every background task and wait for refreshes still on a worker thread."""
        tasks = [*self._tasks.values(), *([self._metrics_task] if self._metrics_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for provider in self._tasks:
            await provider.close()
        self._tasks.clear()
        self.metrics.flush()  # a worker's last counts, for its supervisor
        if self._replay is not None:
            self._replay.close()

    def not_ready(self) -> list[str]:
        """Why the proxy should not get traffic now; empty when it is ready."""
        reasons = ["draining"] if self.draining else []
        if self._current is None:
            return [*reasons, "not started"]
        now = time.time()
        for provider in self._current.providers.values():
            current = provider.current
            if current is None or not current.usable(now):
                # Not the source's own words: they may quote credential_process output, and
                # the admin port may be reachable by more than the operator.
                state = "not resolved" if current is None else "expired"
                reasons.append(f"credentials {provider.name!r}: {state} (the log says why)")
        return reasons

    async def _build(self, config: Config, *, previous: Generation | None) -> Generation:
        now = time.monotonic()
        guards = {}
        for route in config.routes:
            kept = previous.guards.get(route.name) if previous else None
            if kept is not None and kept.route == route:
                guards[route.name] = kept  # same settings: keep its rate and replay memory
            else:
                inbound = None
                if route.inbound is not None:
                    inbound = InboundCheck(
                        route.inbound, route=route.name, memory=self._memory(route.name)
                    )
                guards[route.name] = Guard(route, Admission(route, now=now), inbound)
        providers = await self._providers(config, previous)
        secret_headers = frozenset(
            r.inbound.header.lower() for r in config.routes if r.inbound and r.inbound.header
        )
        hosts = listener_hosts(config, self.listen)
        return Generation(config, guards, providers, hosts, route_hosts(config), secret_headers)

    def _memory(self, route: str) -> ReplayMemory:
        """The route's replay memory: the workers' shared file, or this process's own, kept
        by the route's name across reloads (a changed setting must not forget deliveries)."""
        if self._replay is not None:
            return self._replay.for_route(route)
        return self._memories.setdefault(route, ReplayGuard())

    async def _providers(
        self, config: Config, previous: Generation | None
    ) -> dict[str, CredentialProvider]:
        sets = _used_sets(config)
        kept: dict[str, CredentialProvider] = {}
        if previous is not None:
            old_sets = {item.name: item for item in previous.config.credentials}
            for item in sets:
                old = previous.providers.get(item.name)
                if old is not None and _same_chain(item, config, old_sets):
                    kept[item.name] = old
        providers = build_providers(sets, overrides=self._overrides, existing=kept)
        for provider in providers.values():  # sources come before the sets that chain on them
            if provider.name in kept:
                continue
            provider.listener = self._refreshed
            await provider.refresh()
            if provider.error:
                routes = [r.name for r in config.routes if r.credentials == provider.name]
                log.error(
                    "credentials %r (%s) cannot be resolved: %s; routes %s answer 503 until "
                    "they resolve (retrying in the background)",
                    provider.name,
                    provider.describe,
                    provider.error,
                    ", ".join(routes) or "(none directly)",
                )
            self._tasks[provider] = asyncio.create_task(
                provider.run(), name=f"refresh {provider.name}"
            )
        return providers

    async def _stop_unused(self) -> None:
        used = set(self.current.providers.values())
        for provider in [p for p in self._tasks if p not in used]:
            task = self._tasks.pop(provider)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await provider.close()
            with contextlib.suppress(KeyError):  # a set with long-term keys has no gauge
                self.metrics.expiry.remove(provider.name)

    def _refreshed(self, provider: CredentialProvider, ok: bool) -> None:
        self.metrics.refreshes.labels(provider.name, "ok" if ok else "failed").inc()
        self._set_expiry(provider, time.time())

    def _set_expiry(self, provider: CredentialProvider, now: float) -> None:
        current = provider.current
        if current is not None and current.expires_at is not None:
            self.metrics.expiry.labels(provider.name).set(current.expires_at - now)

    async def _update_metrics(self) -> None:
        """Every FLUSH_PERIOD: the gathered request counts, the expiry and ready gauges."""
        while True:
            now = time.time()
            for provider in self.current.providers.values():
                self._set_expiry(provider, now)
            self.metrics.ready.set(0 if self.not_ready() else 1)
            self.metrics.flush()
            await asyncio.sleep(FLUSH_PERIOD)


def _used_sets(config: Config) -> tuple[CredentialSet, ...]:
    """The sets iam routes sign with, and the sets those chain on, in the config's order."""
    wanted: set[str] = set()
    pending = [route.credentials for route in config.routes if route.mode == "iam"]
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            source = config.credential_set(name).source
            if source:
                pending.append(source)
    return tuple(item for item in config.credentials if item.name in wanted)


def _same_chain(item: CredentialSet, config: Config, old_sets: Mapping[str, CredentialSet]) -> bool:
    """Whether ``item`` and every set it chains on are unchanged by the reload."""
    while True:
        if old_sets.get(item.name) != item:
            return False
        if item.source is None:
            return True
        item = config.credential_set(item.source)
