"""The real path against the Go aws-sigv4-proxy: HTTPS and HTTP upstreams, the access log on
and off, one table and the ratios the project holds itself to.

    .venv/bin/python bench/peer.py --go-proxy /tmp/aws-sigv4-proxy [--rounds 5] [--seconds 4]

Starts on 127.0.0.1 one nginx origin (one worker) with an HTTP and an HTTPS port for every
system (a certificate authority made by the run, trusted through ``upstream_tls.ca_file`` by
this proxy and through SSL_CERT_FILE by Go), and, for each scheme: the Go proxy on 1 and 2
cores (GOMAXPROCS) as shipped, and this proxy in ``iam`` mode with 1 worker (access log on,
the default, and off) and 2 workers (log on). Then a small GET and a 1 KiB POST at
``--connections`` (64) with wrk, every system of a scheme in turn, ``--rounds`` rounds, each
round starting one system further on, so a slow spell of a shared machine falls on all alike.
Prints the median round of each, the CPU time each system spent per request (all its
processes and threads, from /proc: steadier than req/s on a shared machine), the target
ratios, what each target against Go leaves this proxy to spend per request (at the rate it
asks for, on one core per worker, beside the rest of the machine's work per request), and how
much CPU time the VM's host took (steal); the exit code is 1 when a run failed. About 9
minutes with the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trustme

from bench import nginx, wrk
from bench.processes import (
    Child,
    free_port,
    machine_cpu,
    machine_steal,
    steal_share,
    tree_cpu,
)
from bench.systems import System, go_binary, start_go_proxy, start_proxy

SCHEMES = ("http", "https")
TICKS = os.sysconf("SC_CLK_TCK")
Key = tuple[str, str, str]  # (scheme, workload, peer label)


@dataclass(frozen=True)
class Peer:
    """One measured system: this proxy (``iam``, access log on or off) or the Go proxy."""

    label: str
    system: System
    access_log: bool = True


PEERS = (
    Peer("go-1", System("go", workers=1)),
    Peer("go-2", System("go", workers=2)),
    Peer("iam-1", System("proxy", "iam", 1)),
    Peer("iam-1-log-off", System("proxy", "iam", 1), access_log=False),
    Peer("iam-2", System("proxy", "iam", 2)),
)
_BY_LABEL = {peer.label: peer for peer in PEERS}
WORKLOADS = {"get": ("GET", "/", None), "post-1k": ("POST", "/post", 1024)}


@dataclass(frozen=True)
class Target:
    """``numerator`` / ``denominator`` (req/s medians) must be at least ``floor``."""

    what: str
    numerator: tuple[str, str]  # (scheme, peer label)
    denominator: tuple[str, str]
    floor: float


def targets() -> list[Target]:
    """Issue 22's targets, for each workload."""
    found: list[Target] = []
    for scheme in SCHEMES:
        found += [
            Target(
                f"2 workers / Go on 2 cores, {scheme}", (scheme, "iam-2"), (scheme, "go-2"), 1.5
            ),
            Target(f"1 worker / Go on 1 core, {scheme}", (scheme, "iam-1"), (scheme, "go-1"), 1.2),
            Target(
                f"access log on / off, 1 worker, {scheme}",
                (scheme, "iam-1"),
                (scheme, "iam-1-log-off"),
                0.9,
            ),
        ]
    found.append(
        Target("HTTPS / HTTP upstream, 1 worker", ("https", "iam-1"), ("http", "iam-1"), 0.75)
    )
    return found


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    go = go_binary(options.go_proxy)
    executables = {"nginx": nginx.binary(), "wrk": wrk.binary(), "the Go proxy": go}
    missing = [name for name, found in executables.items() if found is None]
    if missing:
        print(
            f"bench/peer.py needs {', '.join(missing)}: see bench/README.md "
            "(apt-get install nginx wrk golang-go; the Go proxy is built from ../shared/peers)",
            file=sys.stderr,
        )
        return 2
    assert go is not None
    with tempfile.TemporaryDirectory(prefix="signing-proxy-peer-") as name:
        directory = Path(name)
        with contextlib.ExitStack() as stack:
            ports = _start_origin(stack, directory)
            ca_file = directory / "ca.pem"
            running = {
                (scheme, peer.label): _start(
                    stack, directory, peer, scheme, go, ports[scheme, peer.label], ca_file
                )
                for scheme in SCHEMES
                for peer in PEERS
            }
            before = machine_steal()
            rows, cpu, rest = _measure(directory, running, options)
            stolen = steal_share(before, machine_steal())
    medians = {
        key: statistics.median(rounds) if all(rounds) else 0.0 for key, rounds in rows.items()
    }
    _print_table(rows, medians, cpu)
    met = _print_targets(medians)
    _print_budgets(medians, cpu, rest)
    # A shared VM's host may run this one's CPUs part of the time only: say how much.
    print(f"\nCPU time the machine's host took from it during the run (steal): {stolen:.0%}")
    if options.json:
        series = {"rounds": rows, "cpu_us_per_request": cpu, "rest_cpu_us_per_request": rest}
        report: dict[str, Any] = {
            name: {" ".join(key): value for key, value in each.items()}
            for name, each in series.items()
        }
        report |= {"targets": met, "steal": stolen}
        options.json.write_text(json.dumps(report, indent=2))
    return 0 if all(all(rounds) for rounds in rows.values()) else 1


def _start_origin(stack: contextlib.ExitStack, directory: Path) -> dict[tuple[str, str], int]:
    """nginx with an HTTP and an HTTPS port per peer; its certificate made by a run-local CA."""
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(directory / "ca.pem"))
    issued = authority.issue_cert("127.0.0.1", "localhost")
    chain, key = directory / "origin-chain.pem", directory / "origin-key.pem"
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(chain), append=True)
    issued.private_key_pem.write_to_path(str(key))
    ports = {(scheme, peer.label): free_port() for scheme in SCHEMES for peer in PEERS}
    http = tuple(port for (scheme, _), port in ports.items() if scheme == "http")
    tls = tuple(port for (scheme, _), port in ports.items() if scheme == "https")
    executable = nginx.binary()
    assert executable is not None
    config = nginx.origin_config(
        directory / "origin",
        port=http[0],
        more_ports=http[1:],
        tls_ports=tls,
        certificate=(chain, key),
    )
    child = nginx.start(executable, "origin", config, directory=directory, port=tls[-1])
    stack.callback(child.stop)
    return ports


def _start(
    stack: contextlib.ExitStack,
    directory: Path,
    peer: Peer,
    scheme: str,
    go: str,
    upstream_port: int,
    ca_file: Path,
) -> tuple[int, int]:
    """Start one peer for one scheme; its port and process id."""
    name = f"{peer.label}-{scheme}"
    tls = ca_file if scheme == "https" else None
    child: Child
    if peer.system.name == "go":
        child, port = start_go_proxy(
            directory, peer.system, binary=go, upstream_port=upstream_port, name=name, ca_file=tls
        )
    else:
        child, port = start_proxy(
            directory,
            peer.system,
            origin_port=upstream_port,
            stream_port=upstream_port,
            log_level="info" if peer.access_log else "warning",
            ca_file=tls,
            name=name,
        )
    stack.callback(child.stop)
    return port, child.pid


def _measure(
    directory: Path, running: dict[tuple[str, str], tuple[int, int]], options: argparse.Namespace
) -> tuple[dict[Key, list[float]], dict[Key, list[float]], dict[Key, list[float]]]:
    """req/s of every round, by (scheme, workload, peer), 0 for a failed run; the CPU time
    each round's system spent per request (all its processes and threads, warm-up included),
    in µs; and the machine's other busy time per request in that round (nginx, wrk, the
    kernel, steal)."""
    body = directory / "body-1k.json"
    body.write_bytes(b'{"data":"' + b"x" * (1024 - 11) + b'"}')
    rows: dict[Key, list[float]] = {}
    cpu: dict[Key, list[float]] = {}
    rest: dict[Key, list[float]] = {}
    labels = [peer.label for peer in PEERS]
    for workload, (method, path, size) in WORKLOADS.items():
        lua = wrk.script(
            directory / f"{workload}.lua",
            method=method,
            body_file=body if size else None,
            content_type="application/json" if size else None,
        )
        for scheme in SCHEMES:
            for round_ in range(options.rounds):
                shift = round_ % len(labels)
                for label in labels[shift:] + labels[:shift]:
                    port, pid = running[scheme, label]
                    spent, busy = tree_cpu(pid), machine_cpu()[0]
                    try:
                        found = wrk.run(
                            wrk.binary() or "wrk",
                            url=f"http://127.0.0.1:{port}{path}",
                            lua=lua,
                            connections=options.connections,
                            seconds=options.seconds,
                            warmup=options.warmup,
                            timeout=10,
                        )
                        errors = sum(found["errors"].values())
                        rate = 0.0 if errors else float(found["req_per_s"])
                        served = found["requests"] + found["warmup_requests"]
                    except (RuntimeError, OSError) as exc:
                        found, errors, rate, served = {"error": str(exc)}, -1, 0.0, 0
                    spent, busy = tree_cpu(pid) - spent, machine_cpu()[0] - busy
                    key = (scheme, workload, label)
                    rows.setdefault(key, []).append(rate)
                    per_request = spent / TICKS / served * 1e6 if served else 0.0
                    cpu.setdefault(key, []).append(per_request)
                    others = (busy - spent) / TICKS / served * 1e6 if served else 0.0
                    rest.setdefault(key, []).append(others)
                    print(
                        f"{scheme:5} {workload:8} {label:14} round {round_ + 1}: {rate:9,.0f} req/s"
                        f"  {per_request:5.0f} µs CPU a request"
                        + (f"  ({errors} errors: {found})" if errors else ""),
                        file=sys.stderr,
                    )
    return rows, cpu, rest


def _print_table(
    rows: dict[Key, list[float]], medians: dict[Key, float], cpu: dict[Key, list[float]]
) -> None:
    print(
        f"{'upstream':8}  {'workload':8}  {'system':14}  {'req/s':>8}  {'CPU µs/req':>10}  rounds"
    )
    for key, rounds in rows.items():
        scheme, workload, label = key
        shown = " · ".join(f"{value:,.0f}" for value in rounds)
        spent = statistics.median(cpu[key])
        print(f"{scheme:8}  {workload:8}  {label:14}  {medians[key]:8,.0f}  {spent:10.0f}  {shown}")


def _print_targets(medians: dict[tuple[str, str, str], float]) -> list[dict[str, Any]]:
    print()
    print(f"{'target':44}  {'workload':8}  {'ratio':>6}  {'floor':>5}")
    met: list[dict[str, Any]] = []
    for target in targets():
        for workload in WORKLOADS:
            top = medians[target.numerator[0], workload, target.numerator[1]]
            bottom = medians[target.denominator[0], workload, target.denominator[1]]
            ratio = top / bottom if bottom else 0.0
            ok = ratio >= target.floor
            met.append(
                {"target": target.what, "workload": workload, "ratio": round(ratio, 3), "met": ok}
            )
            verdict = "met" if ok else "NOT MET"
            print(f"{target.what:44}  {workload:8}  {ratio:6.2f}  {target.floor:5.2f}  {verdict}")
    return met


def _print_budgets(
    medians: dict[Key, float], cpu: dict[Key, list[float]], rest: dict[Key, list[float]]
) -> None:
    """What meeting each target against Go takes: the CPU per request this proxy may spend at
    the rate the target asks for. Its workers get one core each at most, and with the rest of
    the machine's work per request (nginx, wrk, the kernel, steal) the whole must fit on the
    machine's cores."""
    cores = os.cpu_count() or 1
    print(f"\nwhat each target against Go leaves this proxy, CPU µs a request ({cores} cores):")
    header = f"{'target':44}  {'workload':8}  {'Go':>5}  {'proxy':>5}  {'rest':>5}  {'needs':>7}"
    print(header)
    for target in targets():
        (scheme, label), (_, go) = target.numerator, target.denominator
        if _BY_LABEL[go].system.name != "go":
            continue
        workers = _BY_LABEL[label].system.workers
        for workload in WORKLOADS:
            rate = target.floor * medians[scheme, workload, go]
            if not rate:
                continue
            others = statistics.median(rest[scheme, workload, label])
            budget = min(workers * 1e6 / rate, cores * 1e6 / rate - others)
            spent = statistics.median(cpu[scheme, workload, label])
            go_spent = statistics.median(cpu[scheme, workload, go])
            print(
                f"{target.what:44}  {workload:8}  {go_spent:5.0f}  {spent:5.0f}  {others:5.0f}"
                f"  ≤ {budget:5.0f}"
            )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--go-proxy", metavar="PATH", help="the Go aws-sigv4-proxy (default: on PATH)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=4, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1, help="unmeasured seconds before each")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write every round as JSON")
    return parser


if __name__ == "__main__":
    sys.exit(main())
