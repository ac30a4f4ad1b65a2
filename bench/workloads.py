"""What the benchmark sends: its workloads, their request bodies, and one run of the load
generator against a URL (wrk when installed, else bench/load.py, which also measures time to
first byte for streamed replies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import wrk
from bench.systems import BENCH

MIB = 1024 * 1024


@dataclass(frozen=True)
class Workload:
    """What each request is, and at which concurrency levels it runs."""

    name: str
    method: str
    path: str
    body_size: int
    content_type: str | None
    concurrency: tuple[int, ...]
    quick_concurrency: tuple[int, ...]
    builtin_loader_only: bool = False  # time to first byte needs load.py


WORKLOADS = (
    Workload("get", "GET", "/", 0, None, (1, 64), (1, 64)),
    Workload("post-1k", "POST", "/post", 1024, "application/json", (1, 64), (64,)),
    Workload("upload-5m", "POST", "/upload", 5 * MIB, "application/octet-stream", (8, 32), (8,)),
    Workload("stream", "GET", "/stream?chunks=5&delay=10", 0, None, (1, 64), (1,), True),
)


def load(
    workload: Workload,
    url: str,
    concurrency: int,
    *,
    directory: Path,
    wrk_binary: str | None,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Run the load generator once (wrk when given and the workload allows, else load.py);
    its summary, in load.py's JSON shape. Files it needs are written in ``directory``."""
    body_file = _body_file(directory, workload)
    timeout = 30.0 if workload.body_size >= MIB else 10.0
    if wrk_binary and not workload.builtin_loader_only:
        lua = wrk.script(
            directory / f"{workload.name}.lua",
            method=workload.method,
            body_file=body_file,
            content_type=workload.content_type,
        )
        return wrk.run(
            wrk_binary,
            url=url,
            lua=lua,
            connections=concurrency,
            seconds=seconds,
            warmup=warmup,
            timeout=timeout,
        )
    command = [sys.executable, str(BENCH / "load.py"), "--url", url, "--method", workload.method]
    command += ["--connections", str(concurrency), "--seconds", str(seconds)]
    command += ["--warmup", str(warmup), "--timeout", str(timeout)]
    if body_file is not None:
        command += ["--body-file", str(body_file)]
    if workload.content_type:
        command += ["--content-type", workload.content_type]
    done = subprocess.run(  # noqa: S603 - our interpreter and bench/load.py
        command,
        capture_output=True,
        text=True,
        timeout=warmup + seconds + timeout + 15,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load.py exited {done.returncode}: {done.stderr.strip()[-300:]}")
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _body_file(directory: Path, workload: Workload) -> Path | None:
    """The workload's request body, written once: a JSON document, or random bytes."""
    if not workload.body_size:
        return None
    path = directory / f"{workload.name}.body"
    if not path.exists():
        if workload.content_type == "application/json":
            document: dict[str, Any] = {"items": [{"id": n, "ok": True} for n in range(20)]}
            document["pad"] = ""
            short = workload.body_size - len(json.dumps(document, separators=(",", ":")))
            document["pad"] = "x" * short
            path.write_text(json.dumps(document, separators=(",", ":")))
        else:
            path.write_bytes(os.urandom(workload.body_size))
    return path
