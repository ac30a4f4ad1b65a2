"""The benchmark's report: ratios between rows, one text table, JSON, and an optional plot."""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = dict[str, Any]
MIB = 1024 * 1024

COLUMNS = (
    # heading, row key, format
    ("system", "system", "{}"),
    ("mode", "mode", "{}"),
    ("w", "workers", "{}"),
    ("workload", "workload", "{}"),
    ("conc", "concurrency", "{}"),
    ("req/s", "req_per_s", "{:,.0f}"),
    ("MiB/s", "mib_per_s", "{:,.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("ttfb p50", "ttfb_p50_ms", "{:.2f}"),
    ("+p50 ms", "added_p50_ms", "{:+.2f}"),
    ("errors", "errors", "{}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("x direct", "x_direct", "{:.2f}"),
    ("x nginx", "x_nginx", "{:.2f}"),
    ("other CPU %", "other_cpu_pct", "{:.0f}"),
)


def add_ratios(rows: Sequence[Row]) -> None:
    """Throughput against ``direct`` and ``nginx`` for the same workload and concurrency,
    and the p50 latency added over ``direct``."""
    by_key = {(row["system"], row["workload"], row["concurrency"]): row for row in rows}
    for row in rows:
        key = (row["workload"], row["concurrency"])
        rate = _rate(row)
        for reference, column in (("direct", "x_direct"), ("nginx", "x_nginx")):
            other = by_key.get((reference, *key))
            other_rate = _rate(other) if other else 0.0
            row[column] = rate / other_rate if rate and other_rate else None
        direct = by_key.get(("direct", *key))
        has_p50 = direct and direct.get("p50_ms") is not None and row.get("p50_ms") is not None
        row["added_p50_ms"] = row["p50_ms"] - direct["p50_ms"] if direct and has_p50 else None
        if row["system"] == "direct":
            row["added_p50_ms"] = None


def median_run(runs: Sequence[Row]) -> Row:
    """Of repeated runs of one case, the median by throughput (the first failure, if any),
    with every run's throughput and the highest peak RSS."""
    failed = [run for run in runs if run.get("error")]
    if failed or len(runs) == 1:
        return failed[0] if failed else runs[0]
    ordered = sorted(runs, key=_rate)
    row = dict(ordered[(len(ordered) - 1) // 2])
    row["runs"] = [_rate(run) for run in runs]
    peaks = [run["peak_rss_mib"] for run in runs if run.get("peak_rss_mib") is not None]
    if peaks:
        row["peak_rss_mib"] = max(peaks)
    return row


def _rate(row: Row) -> float:
    rate: float = row.get("mib_per_s") or row.get("req_per_s") or 0.0
    return rate


def table(rows: Sequence[Row]) -> str:
    """One aligned text table; empty cells for what a row does not have."""
    cells = [[heading for heading, _, _ in COLUMNS]]
    for row in rows:
        line = []
        for _, key, form in COLUMNS:
            value = row.get(key)
            line.append("" if value is None else form.format(value))
        if row.get("error"):
            line[5] = "FAILED"
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    text_columns = 4  # the first columns are names: left-aligned; numbers right-aligned
    out = []
    for number, line in enumerate(cells):
        out.append(
            "  ".join(
                cell.ljust(width) if i < text_columns else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    failures = [row for row in rows if row.get("error")]
    out += [f"FAILED {_name(row)}: {row['error']}" for row in failures]
    return "\n".join(out)


def _name(row: Row) -> str:
    return f"{describe_system(row)} {row['workload']} c{row['concurrency']}"


def describe_system(row: Row) -> str:
    """``direct``, ``nginx``, ``go w2`` or ``proxy iam w1``: the system a row measured."""
    system: str = row["system"]
    if system == "proxy":
        return f"proxy {row['mode']} w{row['workers']}"
    return f"go w{row['workers']}" if system == "go" else system


def write_json(path: Path, meta: dict[str, Any], rows: Sequence[Row]) -> None:
    path.write_text(json.dumps({"meta": meta, "rows": list(rows)}, indent=2) + "\n")


def plot(path: Path, rows: Sequence[Row]) -> str:
    """Latency percentiles (p50, p90, p99) per system, one panel per workload and concurrency.

    matplotlib is optional (not a dependency): without it, a sentence saying so.
    """
    try:
        pyplot: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    panels = sorted({(row["workload"], row["concurrency"]) for row in rows}, key=_panel_order)
    figure, axes = pyplot.subplots(len(panels), 1, figsize=(10, 2.8 * len(panels)), squeeze=False)
    for axis, (workload, concurrency) in zip(axes[:, 0], panels, strict=True):
        chosen = [
            row
            for row in rows
            if (row["workload"], row["concurrency"]) == (workload, concurrency)
            and row.get("p50_ms") is not None
        ]
        labels = [_name(row).rsplit(" ", 2)[0] for row in chosen]
        positions = range(len(chosen))
        for offset, key in ((-0.27, "p50_ms"), (0.0, "p90_ms"), (0.27, "p99_ms")):
            values = [row[key] or 0.0 for row in chosen]
            axis.bar([p + offset for p in positions], values, width=0.27, label=key[:3])
        axis.set_xticks(list(positions), labels, fontsize=8)
        axis.set_yscale("log")
        axis.set_ylabel("ms")
        axis.set_title(f"{workload}, concurrency {concurrency}", fontsize=10)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return f"plot written to {path}"


def _panel_order(panel: tuple[str, int]) -> tuple[int, int]:
    order = ["get", "post-1k", "upload-5m", "stream"]
    workload, concurrency = panel
    return (order.index(workload) if workload in order else len(order), concurrency)
