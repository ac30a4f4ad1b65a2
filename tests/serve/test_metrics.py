"""Metrics: request counts gathered between flushes are exact at every scrape, and counted once;
build info and credential expiry, in one process and added up across workers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

import proxy
from proxy.serve.metrics import Metrics, multiprocess_exposition

EXPIRY_AT = "signing_proxy_credentials_expiry_timestamp_seconds"
EXPIRY_LEFT = "signing_proxy_credentials_expiry_seconds"


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


def test_build_info_is_one_labelled_with_the_version() -> None:
    """Every process exports signing_proxy_build_info{version, python} = 1."""
    labels = {"version": proxy.__version__, "python": platform.python_version()}
    assert _value(Metrics(), "signing_proxy_build_info", **labels) == 1


def test_expiry_is_exported_as_a_timestamp_and_as_seconds_left() -> None:
    """Setting a set's expiry fills the timestamp gauge (Unix seconds) and the seconds-left one."""
    metrics = Metrics()
    before = time.time()
    metrics.expiry.labels("default").set(3600.0)
    stamp = _value(metrics, EXPIRY_AT, credentials="default")
    assert stamp is not None
    assert round(before) + 3600 - 1 <= stamp <= round(time.time()) + 3600 + 1
    assert stamp == int(stamp)  # whole seconds, steady from one update to the next
    assert _value(metrics, EXPIRY_LEFT, credentials="default") == 3600.0


def test_expiry_of_a_removed_or_long_term_set_has_no_sample() -> None:
    """A set that never expires has no expiry sample; removing a set removes both, once or twice."""
    metrics = Metrics()
    assert _value(metrics, EXPIRY_AT, credentials="static") is None
    metrics.expiry.labels("default").set(60.0)
    metrics.expiry.remove("default")
    metrics.expiry.remove("default")
    assert _value(metrics, EXPIRY_AT, credentials="default") is None
    assert _value(metrics, EXPIRY_LEFT, credentials="default") is None


# A worker's share of the metrics: what ``serve --workers`` processes write to the shared directory.
_WORKER = """
import os, sys
from proxy.serve.metrics import Metrics
metrics = Metrics()
metrics.expiry.labels("default").set(float(sys.argv[1]))
metrics.flush()
print(os.getpid())
"""


def _worker(directory: Path, seconds_left: float) -> int:
    """Run one worker-like process that writes its metrics to ``directory``; its pid."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", _WORKER, str(seconds_left)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return int(done.stdout)


def _merged(text: str, sample: str) -> list[tuple[dict[str, str], float]]:
    return [
        (found.labels, float(found.value))
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample
    ]


def test_supervisor_shows_build_info_once_and_the_earliest_live_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across workers build_info stays 1 (not the worker count) and the expiry is the earliest
    live worker's; the supervisor's own build info is there before any worker wrote one."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    own = {"version": proxy.__version__, "python": platform.python_version()}
    alone = multiprocess_exposition().decode()
    assert _merged(alone, "signing_proxy_build_info") == [(own, 1.0)]

    early = _worker(tmp_path, 600.0)
    _worker(tmp_path, 3600.0)
    text = multiprocess_exposition().decode()
    assert _merged(text, "signing_proxy_build_info") == [(own, 1.0)]
    ((labels, stamp),) = _merged(text, EXPIRY_AT)
    assert labels == {"credentials": "default"}
    assert abs(stamp - (time.time() + 600)) < 60

    multiprocess.mark_process_dead(early, str(tmp_path))  # type: ignore[no-untyped-call]
    ((_, later),) = _merged(multiprocess_exposition().decode(), EXPIRY_AT)
    assert abs(later - (time.time() + 3600)) < 60
