"""wrk for the benchmark, when it is installed: a C load generator, results in load.py's shape.

A Lua script per workload sets the method, the body (read from a file) and the content type,
and prints wrk's summary as one JSON line at the end. wrk measures no time to first byte, and
counts as status errors only statuses of 400 and up.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

MARKER = "WRK-JSON "
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50":%.1f,"p90":%.1f,"p99":%.1f,"max":%.1f,"mean":%.1f}\\n',
    MARKER, summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def binary() -> str | None:
    """The wrk on PATH, if any."""
    return shutil.which("wrk")


def script(path: Path, *, method: str, body_file: Path | None, content_type: str | None) -> Path:
    """Write the Lua script for one workload to ``path``."""
    lines = [f'MARKER = "{MARKER}"', f'wrk.method = "{method}"']
    if body_file is not None:
        lines += [
            f'local f = assert(io.open("{body_file}", "rb"))',
            'wrk.body = f:read("*a")',
            "f:close()",
        ]
    if content_type:
        lines.append(f'wrk.headers["Content-Type"] = "{content_type}"')
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


def run(
    executable: str,
    *,
    url: str,
    lua: Path,
    connections: int,
    seconds: float,
    warmup: float,
    timeout: float,
) -> dict[str, Any]:
    """Warm up (not counted), then measure; wrk takes whole seconds."""
    threads = 1 if connections < 2 else 2
    base = [executable, "-t", str(threads), "-c", str(connections), "-s", str(lua)]
    base += ["--timeout", f"{math.ceil(timeout)}s"]
    warm = 0
    if warmup > 0:
        seconds_ = f"{max(1, math.ceil(warmup))}s"
        warm = _wrk([*base, "-d", seconds_, url], guard=warmup + timeout + 10)["requests"]
    duration = max(1, round(seconds))
    found = _wrk([*base, "-d", f"{duration}s", "--latency", url], guard=duration + timeout + 10)
    elapsed = found["duration_us"] / 1e6
    errors = found["connect"] + found["read"] + found["write"]
    return {
        "loader": "wrk",
        "connections": connections,
        "seconds": round(elapsed, 3),
        "requests": found["requests"],
        "warmup_requests": warm,
        "req_per_s": round(found["requests"] / elapsed, 1),
        "latency_ms": {key: round(found[key] / 1000, 3) for key in ("p50", "p90", "p99", "max")}
        | {"mean": round(found["mean"] / 1000, 3)},
        "ttfb_ms": None,
        "errors": {"status": found["status"], "socket": errors, "timeout": found["timeout"]},
        "bytes_received": found["bytes"],
    }


def _wrk(command: list[str], *, guard: float) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - wrk from PATH with arguments built here
        command, capture_output=True, text=True, timeout=guard, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            found: dict[str, Any] = json.loads(line.removeprefix(MARKER))
            return found
    raise RuntimeError(f"wrk printed no summary (exit {done.returncode}): {done.stderr[-500:]}")
