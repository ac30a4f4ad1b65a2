"""Metrics: request counts gathered between flushes are exact at every scrape, and counted once."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from proxy.serve.metrics import Metrics


def _value(metrics: Metrics, sample: str, **labels: str) -> float | None:
    """One sample of this process's exposition (which flushes first), None when absent."""
    text = metrics.exposition().decode()
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and found.labels == labels:
                return float(found.value)
    return None


def _record(metrics: Metrics, *, status: int = 200, bytes_out: int = 10) -> None:
    metrics.record(
        route="orders",
        method="GET",
        status=status,
        bytes_in=3,
        bytes_out=bytes_out,
        upstream_seconds=0.01,
        cut=None,
        signing_failure=None,
    )


def test_a_scrape_sees_every_request_recorded_before_it() -> None:
    """Counts and bytes recorded since the last flush are all in the next scrape."""
    metrics = Metrics()
    for _ in range(3):
        _record(metrics)
    _record(metrics, status=502, bytes_out=0)
    requests = "signing_proxy_requests_total"
    assert _value(metrics, requests, route="orders", method="GET", status="2xx") == 3
    assert _value(metrics, requests, route="orders", method="GET", status="5xx") == 1
    assert _value(metrics, "signing_proxy_request_body_bytes_total", route="orders") == 12
    assert _value(metrics, "signing_proxy_response_body_bytes_total", route="orders") == 30


def test_flushing_twice_counts_once() -> None:
    """A flush hands over what was gathered and starts again from nothing."""
    metrics = Metrics()
    _record(metrics)
    metrics.flush()
    metrics.flush()
    _record(metrics)
    labels = {"route": "orders", "method": "GET", "status": "2xx"}
    assert _value(metrics, "signing_proxy_requests_total", **labels) == 2
    assert _value(metrics, "signing_proxy_requests_total", **labels) == 2


def test_in_flight_gauge_shows_requests_being_handled() -> None:
    """The in-flight gauge is the number of requests inside ``in_flight_on`` at the scrape."""
    metrics = Metrics()
    gauge = "signing_proxy_in_flight_requests"
    with metrics.in_flight_on("orders"), metrics.in_flight_on("orders"):
        assert _value(metrics, gauge, route="orders") == 2
        with metrics.in_flight_on("other"):
            assert _value(metrics, gauge, route="other") == 1
    assert _value(metrics, gauge, route="orders") == 0
    assert _value(metrics, gauge, route="other") == 0
