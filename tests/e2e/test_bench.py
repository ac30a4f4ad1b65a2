"""The benchmark itself runs: a short run of bench/run.py with the built-in origin and loader."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_measures_every_system_in_turn_and_writes_json(tmp_path: Path) -> None:
    """Each case runs against all systems per round, each round starting one further on."""
    out = tmp_path / "bench.json"
    command = [sys.executable, "bench/run.py", "--quick", "--upstream", "builtin"]
    command += ["--loader", "builtin", "--systems", "direct,none-1,iam-1"]
    command += ["--workloads", "get", "--repeat", "2", "--seconds", "0.3", "--warmup", "0.1"]
    command += ["--json", str(out)]
    done = subprocess.run(  # noqa: S603 - our interpreter and our benchmark
        command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]

    rows = json.loads(out.read_text())["rows"]
    measured = [(r["system"], r["mode"], r["concurrency"]) for r in rows]
    assert measured == [
        ("direct", "-", 1),
        ("direct", "-", 64),
        ("proxy", "none", 1),
        ("proxy", "none", 64),
        ("proxy", "iam", 1),
        ("proxy", "iam", 64),
    ]
    assert all(len(r["runs"]) == 2 and min(r["runs"]) > 0 and r["errors"] == 0 for r in rows)
    assert "proxy   iam   1  get" in done.stdout  # the printed table

    progress = re.findall(r"^(direct|proxy \w+ w1)\s+get\s+c1 ", done.stderr, re.MULTILINE)
    first, second = ["direct", "proxy none w1", "proxy iam w1"], ["proxy none w1", "proxy iam w1"]
    assert progress == [*first, *second, "direct"]
