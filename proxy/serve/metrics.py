"""Prometheus metrics: what each request and each credential refresh adds, and the exposition.

With several workers (``serve --workers N``) every process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and the supervisor, which
serves /metrics, adds them up (and adds its own build info); with one process the values live
in this process's registry.

The counts every request changes (requests, body bytes, requests in flight) gather in plain
integers and reach prometheus-client in batches (``Metrics.flush``): its values take a lock on
every change, and with workers also write a shared file, which cost more than the rest of the
accounting together. A scrape of this process flushes first; a worker flushes every
FLUSH_PERIOD seconds for its supervisor to see.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from proxy import __version__

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

FLUSH_PERIOD = 1.0

# From a local emulator (milliseconds) to a cold Lambda behind CloudFront (seconds).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)

BUILD_INFO = "signing_proxy_build_info"
_BUILD_INFO_HELP = "Always 1; its labels name the signing-proxy version and the Python running it."


def _build_labels() -> tuple[str, str]:
    return __version__, platform.python_version()


def multiprocess_dir() -> str | None:
    """Where workers write their values, when they share them."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """One registry's worth of the proxy's metrics (a fresh one per app, so tests can run many
    apps in one process)."""

    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # Not yet flushed: requests by (route, method, status class); body bytes by route.
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._bytes_in: Counter[str] = Counter()
        self._bytes_out: Counter[str] = Counter()
        # Requests in flight now, by route (the gauge is set to it at each flush).
        self._in_flight: Counter[str] = Counter()
        self._trackers: dict[str, _InFlight] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = prometheus_client.Counter(
            "signing_proxy_requests",
            "Requests answered, by route, method and status class (2xx, 4xx, ...).",
            ["route", "method", "status"],
            registry=registry,
        )
        self.upstream_latency = Histogram(
            "signing_proxy_upstream_latency_seconds",
            "Time from sending a request upstream until its reply headers arrived.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.bytes_in = prometheus_client.Counter(
            "signing_proxy_request_body_bytes",
            "Request body bytes received from clients.",
            ["route"],
            registry=registry,
        )
        self.bytes_out = prometheus_client.Counter(
            "signing_proxy_response_body_bytes",
            "Reply body bytes relayed to clients.",
            ["route"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "signing_proxy_in_flight_requests",
            "Requests being handled now.",
            ["route"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.cut_replies = prometheus_client.Counter(
            "signing_proxy_cut_replies",
            "Replies that stopped before their end: the upstream reset, a timeout fired "
            "mid-reply (the client's connection is then aborted), or the client went away.",
            ["route", "cause"],
            registry=registry,
        )
        self.signing_failures = prometheus_client.Counter(
            "signing_proxy_signing_failures",
            "Requests that could not be signed (no usable credentials) or whose signature AWS "
            "rejected (403 with x-amzn-ErrorType).",
            ["route", "reason"],
            registry=registry,
        )
        self.refreshes = prometheus_client.Counter(
            "signing_proxy_credential_refreshes",
            "Credential refreshes, by credential set and outcome.",
            ["credentials", "outcome"],
            registry=registry,
        )
        self.expiry = CredentialExpiry(registry)
        self.ready = Gauge(
            "signing_proxy_ready",
            "1 when the process is ready to serve: config loaded, credentials usable, not "
            "draining.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        # Prometheus's build_info convention: join on it to label any series with the version.
        # With workers each writes 1 and the supervisor shows the largest of the live ones (a
        # sum would count the workers); a restarted worker's old value goes when it is marked
        # dead, so a mix of versions shows only while it really runs.
        self.build_info = Gauge(
            BUILD_INFO,
            _BUILD_INFO_HELP,
            ["version", "python"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.build_info.labels(*_build_labels()).set(1)

    def exposition(self) -> bytes:
        """The text format, for this process's requests."""
        self.flush()
        return generate_latest(self.registry)

    def flush(self) -> None:
        """Hand the counts gathered since the last flush to prometheus-client."""
        child = self._child
        for (route, method, status), count in self._requests.items():
            child(self.requests, route, method, status).inc(count)
        self._requests.clear()
        for metric, pending in ((self.bytes_in, self._bytes_in), (self.bytes_out, self._bytes_out)):
            for route, count in pending.items():
                child(metric, route).inc(count)
            pending.clear()
        for route, count in self._in_flight.items():
            child(self.in_flight, route).set(count)

    def record(
        self,
        *,
        route: str,
        method: str,
        status: int,
        bytes_in: int,
        bytes_out: int,
        upstream_seconds: float | None,
        cut: str | None,
        signing_failure: str | None,
    ) -> None:
        """Count one finished request."""
        self._requests[route, method, status_class(status)] += 1
        if bytes_in:
            self._bytes_in[route] += bytes_in
        if bytes_out:
            self._bytes_out[route] += bytes_out
        child = self._child
        if upstream_seconds is not None:
            child(self.upstream_latency, route).observe(upstream_seconds)
        if cut is not None:
            child(self.cut_replies, route, cut).inc()
        if signing_failure is not None:
            child(self.signing_failures, route, signing_failure).inc()

    def in_flight_on(self, route: str) -> AbstractContextManager[None]:
        """Counts a request in flight on ``route`` while it is handled."""
        tracker = self._trackers.get(route)
        if tracker is None:
            tracker = self._trackers[route] = _InFlight(self._in_flight, route)
        return tracker

    def _child(self, metric: Any, *labels: str) -> Any:
        # labels() takes a lock and builds keys on every call; on the request path the same
        # few label sets recur, so their children are kept here.
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


class CredentialExpiry:
    """When each credential set's current credentials expire, as two gauges set together.

    ``signing_proxy_credentials_expiry_timestamp_seconds`` is the Unix time they expire at:
    Prometheus's advice is to export the time of an event rather than the time until it, as a
    timestamp stays right between scrapes and ``… - time()`` gives the seconds left anyway.
    ``signing_proxy_credentials_expiry_seconds`` (the seconds left at the last update) is kept
    for the dashboards and alerts that already read it. A set with long-term keys, which never
    expire, has no sample in either: no timestamp would be true, and an absent series makes an
    alert such as ``… - time() < 600`` simply not fire.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        # With workers, the earliest expiry among the live ones: the one that stops first.
        self.timestamp = Gauge(
            "signing_proxy_credentials_expiry_timestamp_seconds",
            "When each credential set's current credentials expire, in Unix seconds (absent "
            "for long-term keys).",
            ["credentials"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.seconds_left = Gauge(
            "signing_proxy_credentials_expiry_seconds",
            "Seconds until each credential set's current credentials expire (absent for "
            "long-term keys; negative once expired). Prefer "
            "signing_proxy_credentials_expiry_timestamp_seconds.",
            ["credentials"],
            registry=registry,
            multiprocess_mode="min",
        )

    def labels(self, credentials: str) -> _ExpiryOf:
        """The gauges of one set, as ``Gauge.labels`` would give (``.set(seconds_left)``)."""
        return _ExpiryOf(self, credentials)

    def remove(self, credentials: str) -> None:
        """A set no longer used: its samples go (none is fine, as for long-term keys)."""
        for gauge in (self.timestamp, self.seconds_left):
            with contextlib.suppress(KeyError):
                gauge.remove(credentials)


class _ExpiryOf:
    """One set's expiry gauges; ``set`` takes the seconds left, as the state's updates give it."""

    __slots__ = ("_credentials", "_expiry")

    def __init__(self, expiry: CredentialExpiry, credentials: str) -> None:
        self._expiry = expiry
        self._credentials = credentials

    def set(self, seconds_left: float) -> None:
        self._expiry.seconds_left.labels(self._credentials).set(seconds_left)
        # The caller took the seconds left as the expiry minus the time a moment ago, so the
        # expiry is now plus those, to the second: AWS gives expiry times in whole seconds, and
        # the timestamp then stays the same at every update instead of wobbling by microseconds.
        expires_at = round(time.time() + seconds_left)
        self._expiry.timestamp.labels(self._credentials).set(expires_at)


class _InFlight:
    """Counts requests in flight on one route while they are handled (one per route, reused:
    it holds no state of its own request)."""

    __slots__ = ("_counts", "_route")

    def __init__(self, counts: Counter[str], route: str) -> None:
        self._counts = counts
        self._route = route

    def __enter__(self) -> None:
        self._counts[self._route] += 1

    def __exit__(self, *_: object) -> None:
        self._counts[self._route] -= 1


def _merged() -> CollectorRegistry:
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=multiprocess_dir())  # type: ignore[no-untyped-call]
    return merged


class _SupervisorCollector:
    """Every worker's values added up, and the supervisor's own build info among the workers':
    /metrics names the version even while no worker is running (crash-looping, say)."""

    def collect(self) -> Iterator[Metric]:
        workers = multiprocess.MultiProcessCollector(None, path=multiprocess_dir())  # type: ignore[no-untyped-call]
        version, python = _build_labels()
        own = {"version": version, "python": python}
        found = False
        family: Metric
        for family in workers.collect():  # type: ignore[no-untyped-call]
            if family.name == BUILD_INFO:
                found = True
                if all(sample.labels != own for sample in family.samples):
                    family.add_sample(BUILD_INFO, own, 1.0)
            yield family
        if not found:
            info = GaugeMetricFamily(BUILD_INFO, _BUILD_INFO_HELP, labels=["version", "python"])
            info.add_metric([version, python], 1.0)
            yield info


def multiprocess_exposition() -> bytes:
    """The text format with every worker's values added up (the supervisor serves it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SupervisorCollector())
    return generate_latest(registry)


def multiprocess_ready() -> bool:
    """Whether every live worker says it is ready (the ready gauge's minimum is 1)."""
    for metric in _merged().collect():
        if metric.name == "signing_proxy_ready":
            return any(sample.value >= 1 for sample in metric.samples)
    return False  # no worker has reported yet


def status_class(status: int) -> str:
    """``2xx`` for 200, ``5xx`` for 503: few label values, as Prometheus wants."""
    return f"{status // 100}xx"
