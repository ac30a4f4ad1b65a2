"""The Grafana dashboard (deploy/grafana/signing-proxy.json) reads only metrics the proxy exports,
through its datasource variable."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.config.load import parse_config
from proxy.core.credentials import Credentials
from proxy.emulator import Emulator
from proxy.serve.server import running
from tests.stack import KEY, KEY_ID, route

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "signing-proxy.json"
# Series that only an event makes (a reply cut short): the exposition declares them, but the
# traffic of this test does not add a sample.
NEEDS_AN_EVENT = frozenset({"signing_proxy_cut_replies_total"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# An identifier that is not part of a number or a duration and not a function's name.
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*\b(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "group_left", "group_right"}
)
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label matchers, ranges, grouping
    labels, functions and keywords taken out)."""
    for pattern in (_STRING, _MATCHERS, _RANGES, _GROUPING):
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENTIFIER.findall(expr) if name.lower() not in _KEYWORDS}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target of the dashboard."""
    return [
        (f"{panel['title']} {target['refId']}", target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def _variable_metrics() -> set[str]:
    """The metrics the template variables' label_values() queries read."""
    found: set[str] = set()
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found.update(_LABEL_VALUES.findall(variable["query"]["query"]))
    return found


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (route) (rate(a_total{job=~"$job", x="b_c"}[$__rate_interval]))', {"a_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", {"h_bucket"}),
        ("a_sum / on (route) group_left b_count > bool 1e3 offset 5m", {"a_sum", "b_count"}),
        ("min(t_seconds) - time()", {"t_seconds"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    """The extraction keeps metric names and drops functions, labels, durations and numbers."""
    assert metric_names(expr) == names


def test_every_panel_queries_through_the_datasource_variable() -> None:
    """A datasource variable exists and every panel and query uses it; each query reads a metric."""
    dashboard = _dashboard()
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    chosen = {"type": "prometheus", "uid": "${datasource}"}
    ids = []
    for panel in _panels(dashboard["panels"]):
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == chosen, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == chosen, panel["title"]
            assert metric_names(target["expr"]), f"{panel['title']}: {target['expr']}"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == chosen
    assert len(ids) == len(set(ids))


def _exported(text: str) -> tuple[set[str], set[str]]:
    """The sample names an exposition declares (by each family's type) and those it has."""
    declared: set[str] = set()
    sampled: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(text):
        declared.update(family.name + end for end in suffixes.get(family.type, ("",)))
        sampled.update(sample.name for sample in family.samples)
    return declared, sampled


async def test_every_metric_the_dashboard_reads_is_exported(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Each metric in the dashboard's queries is in a running proxy's /metrics, with samples."""

    def expiring() -> Credentials:  # the emulator's key, with an expiry for the expiry gauge
        return Credentials(KEY_ID, KEY.secret_access_key, None, expires_at=time.time() + 3600)

    document = {
        "listen": "127.0.0.1:0",
        "admin": "127.0.0.1:0",
        "credentials": {"dev": {"profile": "missing"}},
        "routes": [
            route(emulator.cloudfront_url, name="orders", path_prefix="/orders"),
            route(emulator.cloudfront_url, name="broken", path_prefix="/broken", credentials="dev"),
        ],
    }
    overrides = {"default": expiring}
    async with running(parse_config(document), credential_overrides=overrides) as proxy:
        async with client.post(f"{proxy.url}/orders/1", data=b"12345") as signed:
            assert signed.status == 200
        async with client.get(f"{proxy.url}/broken/1") as refused:
            assert refused.status == 503
        async with client.get(f"{proxy.admin_url}/metrics") as scraped:
            text = await scraped.text()
    declared, sampled = _exported(text)

    read = {name: where for where, expr in _queries() for name in metric_names(expr)}
    read.update(dict.fromkeys(_variable_metrics(), "a template variable"))
    assert {"signing_proxy_build_info", "signing_proxy_upstream_latency_seconds_bucket"} <= set(
        read
    )
    assert {name: where for name, where in read.items() if name not in declared} == {}
    unsampled = {name for name in read if name not in sampled and name not in NEEDS_AN_EVENT}
    assert unsampled == set()
