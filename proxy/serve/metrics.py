"""Prometheus metrics: what each request and each credential refresh adds, and the exposition.

With several workers (``serve --workers N``) every process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and the supervisor, which
serves /metrics, adds them up; with one process the values live in this process's registry.

The counts every request changes (requests, body bytes, requests in flight) gather in plain
integers and reach prometheus-client in batches (``Metrics.flush``): its values take a lock on
every change, and with workers also write a shared file, which cost more than the rest of the
accounting together. A scrape of this process flushes first; a worker flushes every
FLUSH_PERIOD seconds for its supervisor to see.
"""

from __future__ import annotations

import os
from collections import Counter
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
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

FLUSH_PERIOD = 1.0

# From a local emulator (milliseconds) to a cold Lambda behind CloudFront (seconds).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


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
        self.expiry = Gauge(
            "signing_proxy_credentials_expiry_seconds",
            "Seconds until each credential set's current credentials expire (absent for "
            "long-term keys; negative once expired).",
            ["credentials"],
            registry=registry,
            multiprocess_mode="min",
        )
        self.ready = Gauge(
            "signing_proxy_ready",
            "1 when the process is ready to serve: config loaded, credentials usable, not "
            "draining.",
            registry=registry,
            multiprocess_mode="livemin",
        )

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


def multiprocess_exposition() -> bytes:
    """The text format with every worker's values added up (the supervisor serves it)."""
    return generate_latest(_merged())


def multiprocess_ready() -> bool:
    """Whether every live worker says it is ready (the ready gauge's minimum is 1)."""
    for metric in _merged().collect():
        if metric.name == "signing_proxy_ready":
            return any(sample.value >= 1 for sample in metric.samples)
    return False  # no worker has reported yet


def status_class(status: int) -> str:
    """``2xx`` for 200, ``5xx`` for 503: few label values, as Prometheus wants."""
    return f"{status // 100}xx"
