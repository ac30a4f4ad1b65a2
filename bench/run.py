"""The benchmark: this proxy against the upstream directly, an nginx hop and the Go
aws-sigv4-proxy, one table.

    .venv/bin/python bench/run.py [--quick] [--seconds S] [--json OUT] [--plot OUT.png]

Starts, on 127.0.0.1 only, an origin (nginx when installed, else bench/upstream.py; streamed
replies always come from bench/upstream.py), the nginx proxy hop when nginx is installed, the
Go aws-sigv4-proxy on 1 and 2 cores when it is installed, and this proxy in modes none and iam
with 1 and 2 workers, all at once. Each case (a workload at one concurrency) then runs against
each system in turn for a bounded time, ``--repeat`` rounds, with wrk when installed, else
bench/load.py (streamed replies always with load.py, which measures time to first byte).
Prints one table; see bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):
    # `python bench/run.py` puts bench/ on sys.path; `bench.*` needs the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import nginx, report, wrk
from bench.processes import (
    Child,
    free_port,
    machine_cpu,
    peak_rss,
    process_tree,
    reset_peak_rss,
    tree_cpu,
)
from bench.systems import System, go_binary, start_go_proxy, start_proxy, start_upstream
from bench.workloads import MIB, WORKLOADS, Workload, load

OTHER_CPU_WARNING = 10.0  # percent of the machine used by programs outside the benchmark
Row = report.Row


PROXIES = tuple(System("proxy", mode, workers) for workers in (1, 2) for mode in ("none", "iam"))
GO_PROXIES = (System("go", workers=1), System("go", workers=2))


@dataclass(frozen=True)
class Setup:
    """The run's choices and the addresses of what is running."""

    directory: Path
    seconds: float
    warmup: float
    quick: bool
    wrk: str | None
    origin_port: int
    stream_port: int
    hop_port: int | None
    go: str | None
    log_level: str
    repeat: int


@dataclass(frozen=True)
class Running:
    """A started system: where to send load, and the process whose memory to measure (None for
    the origin and nginx), for streamed replies and for everything else."""

    port: int
    child: Child | None
    stream_port: int
    stream_child: Child | None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the finally blocks stop every child
    nginx_binary = nginx.binary() if args.upstream != "builtin" else None
    if args.upstream == "nginx" and nginx_binary is None:
        sys.exit("run.py: --upstream nginx, but nginx is not on PATH")
    wrk_binary = wrk.binary() if args.loader != "builtin" else None
    if args.loader == "wrk" and wrk_binary is None:
        sys.exit("run.py: --loader wrk, but wrk is not on PATH")
    go = go_binary(args.go_proxy)
    if args.go_proxy and go is None:
        sys.exit(f"run.py: --go-proxy {args.go_proxy}: no such program")
    seconds = args.seconds if args.seconds is not None else (2.0 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "bench/run.py", *sys.argv[1:]]),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "origin": "nginx" if nginx_binary else "builtin",
        "loader": "wrk" if wrk_binary else "builtin",
        "go_proxy": go,
        "seconds": seconds,
        "warmup": warmup,
        "repeat": args.repeat,
        "quick": args.quick,
        "proxy_log_level": args.proxy_log_level,
    }
    print(
        "origin: {origin}, load: {loader} (streams: builtin), {seconds:g} s per run after "
        "{warmup:g} s warm-up, {cores} cores, Python {python}, proxy log level "
        "{proxy_log_level}, Go proxy: {go_proxy}".format(**meta),
        file=sys.stderr,
    )
    with (
        tempfile.TemporaryDirectory(prefix="signing-proxy-bench-") as temp,
        contextlib.ExitStack() as stack,
    ):
        directory = Path(temp)
        origin_port, stream_port, hop_port = _start_servers(stack, directory, nginx_binary)
        setup = Setup(
            directory=directory,
            seconds=seconds,
            warmup=warmup,
            quick=args.quick,
            wrk=wrk_binary,
            origin_port=origin_port,
            stream_port=stream_port,
            hop_port=hop_port,
            go=go,
            log_level=args.proxy_log_level,
            repeat=args.repeat,
        )
        systems = [
            System("direct"),
            *([System("nginx")] if hop_port else []),
            *(GO_PROXIES if go else ()),
            *PROXIES,
        ]
        chosen = [s for s in systems if not args.systems or s.label in args.systems.split(",")]
        workloads = [
            w for w in WORKLOADS if not args.workloads or w.name in args.workloads.split(",")
        ]
        rows = _measure_all(setup, chosen, workloads)
    report.add_ratios(rows)
    print(report.table(rows))
    if args.json:
        report.write_json(args.json, meta, rows)
        print(f"JSON written to {args.json}", file=sys.stderr)
    if args.plot:
        print(report.plot(args.plot, rows), file=sys.stderr)
    return 1 if any(row.get("error") for row in rows) else 0


def _start_servers(
    stack: contextlib.ExitStack, directory: Path, nginx_binary: str | None
) -> tuple[int, int, int | None]:
    """The built-in upstream, and with nginx the nginx origin and hop; stopped by ``stack``.

    Returns the ports of the origin, of the stream origin (always the built-in upstream) and
    of the nginx hop (None without nginx)."""
    upstream, stream_port = start_upstream(directory)
    stack.callback(upstream.stop)
    if nginx_binary is None:
        return stream_port, stream_port, None
    origin, origin_port = nginx.start_origin(nginx_binary, directory, name="nginx-origin")
    stack.callback(origin.stop)
    hop_port = free_port()
    config = nginx.hop_config(
        directory / "nginx-hop", port=hop_port, origin_port=origin_port, stream_port=stream_port
    )
    hop = nginx.start(nginx_binary, "nginx-hop", config, directory=directory, port=hop_port)
    stack.callback(hop.stop)
    return origin_port, stream_port, hop_port


def _measure_all(setup: Setup, systems: list[System], workloads: list[Workload]) -> list[Row]:
    """Every workload against every system, with all of them started first.

    Each case (workload and concurrency) runs against the systems in turn, ``repeat`` rounds
    of it, each round starting one system further on. A shared machine slows down and speeds
    up by tens of percent over minutes; this way a slow spell falls on every system alike,
    and the ratios between systems in one run hold, where one system after the other would
    compare them at different times."""
    medians: dict[System, list[Row]] = {system: [] for system in systems}
    with contextlib.ExitStack() as stack:
        running = {system: stack.enter_context(_started(setup, system)) for system in systems}
        for workload in workloads:
            levels = workload.quick_concurrency if setup.quick else workload.concurrency
            for concurrency in levels:
                runs: dict[System, list[Row]] = {system: [] for system in systems}
                for round_ in range(setup.repeat):
                    shift = round_ % len(systems)
                    for system in systems[shift:] + systems[:shift]:
                        runs[system].append(
                            _measure(setup, system, workload, concurrency, running[system])
                        )
                for system in systems:
                    medians[system].append(report.median_run(runs[system]))
    return [row for system in systems for row in medians[system]]


@contextlib.contextmanager
def _started(setup: Setup, system: System) -> Iterator[Running]:
    if system.name == "direct":
        yield Running(setup.origin_port, None, setup.stream_port, None)
    elif system.name == "nginx":
        assert setup.hop_port is not None
        yield Running(setup.hop_port, None, setup.hop_port, None)
    elif system.name == "go":
        # It has one upstream and no routes: a second one for streamed replies.
        assert setup.go is not None
        with contextlib.ExitStack() as stack:
            started = []
            for name, upstream in (("", setup.origin_port), ("-stream", setup.stream_port)):
                child, port = start_go_proxy(
                    setup.directory,
                    system,
                    binary=setup.go,
                    upstream_port=upstream,
                    name=f"{system.label}{name}",
                )
                stack.callback(child.stop)
                started.append((port, child))
            (port, child), (stream_port, stream_child) = started
            yield Running(port, child, stream_port, stream_child)
    else:
        child, port = start_proxy(
            setup.directory,
            system,
            origin_port=setup.origin_port,
            stream_port=setup.stream_port,
            log_level=setup.log_level,
        )
        try:
            yield Running(port, child, port, child)
        finally:
            child.stop()


def _measure(
    setup: Setup, system: System, workload: Workload, concurrency: int, running: Running
) -> Row:
    """One run: the loader against the system, and the proxy's peak RSS during it."""
    stream = workload.name == "stream"
    port = running.stream_port if stream else running.port
    child = running.stream_child if stream else running.child
    url = f"http://127.0.0.1:{port}{workload.path}"
    pids = process_tree(child.pid) if child else []
    reset_peak_rss(pids)
    row: Row = {
        "system": system.name,
        "mode": system.mode,
        "workers": system.workers,
        "workload": workload.name,
        "concurrency": concurrency,
    }
    busy_before, total_before = machine_cpu()
    ours_before = tree_cpu(os.getpid())
    try:
        found = load(
            workload,
            url,
            concurrency,
            directory=setup.directory,
            wrk_binary=setup.wrk,
            seconds=setup.seconds,
            warmup=setup.warmup,
        )
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
        row["error"] = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        print(f"{_describe(row)}: FAILED {row['error']}", file=sys.stderr)
        return row
    if child is not None:
        peaks = peak_rss(pids)
        row["peak_rss_mib"] = round(sum(peaks) / MIB, 1)
        # The process itself first, then (with --workers) each worker.
        row["peak_rss_mib_each"] = [round(peak / MIB, 1) for peak in peaks]
        if not child.running():
            row["error"] = f"the proxy exited: {child.log_tail(3)}"
        elif set(process_tree(child.pid)) != set(pids):
            row["error"] = "a worker was restarted during the run (see its log)"
    busy_after, total_after = machine_cpu()
    # CPU the benchmark's own processes did not use: another program competing for the cores.
    others = (busy_after - busy_before) - (tree_cpu(os.getpid()) - ours_before)
    row["other_cpu_pct"] = round(max(0.0, 100 * others / max(1, total_after - total_before)), 1)
    latency, ttfb = found["latency_ms"], found.get("ttfb_ms") or {}
    errors = found["errors"]
    row |= {
        "loader": found["loader"],
        "requests": found["requests"],
        "seconds": found["seconds"],
        "req_per_s": found["req_per_s"],
        "mib_per_s": (
            round(found["requests"] * workload.body_size / MIB / found["seconds"], 1)
            if workload.body_size >= MIB
            else None
        ),
        "p50_ms": latency["p50"],
        "p90_ms": latency["p90"],
        "p99_ms": latency["p99"],
        "ttfb_p50_ms": ttfb.get("p50") if workload.name == "stream" else None,
        "ttfb_p99_ms": ttfb.get("p99") if workload.name == "stream" else None,
        "errors": errors["status"] + errors["socket"] + errors["timeout"],
        "error_detail": errors,
    }
    busy = row["other_cpu_pct"] > OTHER_CPU_WARNING
    print(
        f"{_describe(row)}: {row['req_per_s']:,.0f} req/s, p50 {row['p50_ms']:.2f} ms, "
        f"{row['errors']} errors"
        + (f"; other programs used {row['other_cpu_pct']:.0f}% of the CPU" if busy else ""),
        file=sys.stderr,
    )
    return row


def _describe(row: Row) -> str:
    return f"{report.describe_system(row):16} {row['workload']:10} c{row['concurrency']:<3}"


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="short runs, fewer cases (<2 min)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (default 1)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per case; the median (by throughput) counts"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="latency plot (matplotlib)")
    parser.add_argument("--upstream", choices=["auto", "builtin", "nginx"], default="auto")
    parser.add_argument("--loader", choices=["auto", "builtin", "wrk"], default="auto")
    parser.add_argument(
        "--systems",
        metavar="LIST",
        help="only these, e.g. direct,nginx,go-1,go-2,none-1,iam-1,none-2,iam-2",
    )
    parser.add_argument(
        "--go-proxy",
        metavar="PATH",
        help="the Go aws-sigv4-proxy to compare with (default: aws-sigv4-proxy on PATH, if any)",
    )
    parser.add_argument(
        "--workloads", metavar="LIST", help="only these: get,post-1k,upload-5m,stream"
    )
    parser.add_argument(
        "--proxy-log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="the proxy's --log-level; info writes an access line per request (default warning)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
