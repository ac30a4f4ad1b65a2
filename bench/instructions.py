"""The proxy's work per request as a count of CPU instructions, which a busy machine does not
change: one worker under valgrind's callgrind, user space only.

    .venv/bin/python bench/instructions.py [--requests 2000] [--connections 16]

Requests per second and CPU time per request move by 10-20% from one run to the next on a
shared 2-core machine; the instructions one request executes move by less than 0.5%, so a
change to the hot path can be measured against the one before it. For each case (``none``;
``iam``; ``iam`` with the access log on, the default; ``iam`` to an HTTPS origin) and workload
(small GET, 1 KiB POST) it starts the proxy under callgrind against the same origin (nginx when
installed, with an HTTPS port whose certificate the run makes; else bench/upstream.py, HTTP
only), sends ``--requests`` requests as warm-up, then counts the instructions of
``--requests`` more. Kernel work (the socket calls) is not counted, and SHA-256 runs without
the CPU's SHA extensions under valgrind, so hashing counts for more here than on the machine
itself. Needs valgrind (``apt-get install valgrind``); everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trustme

from bench import nginx
from bench.processes import Child, free_port, port_open, wait_until
from bench.systems import proxy_config, proxy_env, start_upstream

POST_BODY = json.dumps({"data": "x" * 1000}).encode()[:1024]
WORKLOADS = {
    "get": b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
    "post-1k": (
        b"POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(POST_BODY) + POST_BODY
    ),
}


@dataclass(frozen=True)
class Case:
    """One proxy set-up to count: its mode, the origin's scheme, the access log on or off."""

    label: str
    mode: str
    scheme: str = "http"
    access_log: bool = False


CASES = (
    Case("none", "none"),
    Case("iam", "iam"),
    Case("iam+log", "iam", access_log=True),
    Case("iam+https", "iam", scheme="https"),
)
# Python under valgrind starts some fifty times slower: importing botocore takes a while.
START_TIMEOUT = 300.0
_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="counted requests per case")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        help="keep callgrind's dumps in DIR (callgrind_annotate reads them: where the count goes)",
    )
    parser.add_argument("--only", metavar="CASE", action="append", help="count only CASE")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench/instructions.py needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    counts: dict[tuple[str, str], float] = {}
    with TemporaryDirectory(prefix="signing-proxy-instructions-") as temp:
        directory = Path(temp)
        with _origin(directory) as (origins, ca_file):
            print(f"origin: {'nginx' if nginx.binary() else 'builtin'}")
            for case in CASES:
                if args.only and case.label not in args.only:
                    continue
                if case.scheme not in origins:
                    print(f"{case.label:9} skipped: the built-in origin has no HTTPS")
                    continue
                for workload, request in WORKLOADS.items():
                    count = counts[case.label, workload] = _count(
                        directory,
                        case,
                        origins[case.scheme],
                        ca_file,
                        request,
                        requests=args.requests,
                        connections=args.connections,
                        keep=args.keep,
                    )
                    print(
                        f"{case.label:9} {workload:8} {count / 1000:8,.1f}k instructions a request"
                    )
    for workload in WORKLOADS:
        for label, base, what in _DIFFERENCES:
            if (label, workload) in counts and (base, workload) in counts:
                added = counts[label, workload] - counts[base, workload]
                share = added / counts[base, workload]
                print(f"{workload}: {what} {added / 1000:+,.1f}k ({share:+.1%})")
    if args.json:
        rows = [{"case": c, "workload": w, "instructions": n} for (c, w), n in counts.items()]
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


_DIFFERENCES = (
    ("iam", "none", "iam adds to none"),
    ("iam+log", "iam", "the access line adds"),
    ("iam+https", "iam", "an HTTPS origin adds"),
)


@contextlib.contextmanager
def _origin(directory: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """The origin's URLs by scheme and the CA file its certificate chains to: nginx with an
    HTTP and an HTTPS port when installed, else the built-in upstream (HTTP only)."""
    binary = nginx.binary()
    ca_file = directory / "ca.pem"
    if binary is None:
        origin, port = start_upstream(directory)
        origins = {"http": f"http://127.0.0.1:{port}"}
    else:
        authority = trustme.CA()
        authority.cert_pem.write_to_path(str(ca_file))
        issued = authority.issue_cert("127.0.0.1")
        chain, key = directory / "origin-chain.pem", directory / "origin-key.pem"
        for blob in issued.cert_chain_pems:
            blob.write_to_path(str(chain), append=True)
        issued.private_key_pem.write_to_path(str(key))
        port, tls_port = free_port(), free_port()
        config = nginx.origin_config(
            directory / "nginx", port=port, tls_ports=(tls_port,), certificate=(chain, key)
        )
        origin = nginx.start(binary, "nginx", config, directory=directory, port=tls_port)
        origins = {"http": f"http://127.0.0.1:{port}", "https": f"https://127.0.0.1:{tls_port}"}
    try:
        yield origins, ca_file
    finally:
        origin.stop()


def _count(
    directory: Path,
    case: Case,
    origin: str,
    ca_file: Path,
    request: bytes,
    *,
    requests: int,
    connections: int,
    keep: Path | None,
) -> float:
    """Instructions per request of one proxy worker set up as ``case``, sending ``request``."""
    port = free_port()
    config = proxy_config(port=port, mode=case.mode, origin=origin, stream=origin)
    if case.scheme == "https":
        config["upstream_tls"] = {"ca_file": str(ca_file)}
    config_path = directory / f"proxy-{case.label}.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    out = (keep or directory).resolve() / f"callgrind-{case.label}-{len(request)}"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    command += [f"--callgrind-out-file={out}.%p", sys.executable, "-m", "proxy"]
    command += ["--log-level", "info" if case.access_log else "warning"]
    command += ["serve", "--config", str(config_path)]
    child = Child(f"callgrind-{case.label}", command, directory=directory, env=proxy_env(directory))
    try:
        wait_until(lambda: port_open(port), timeout=START_TIMEOUT, what="the proxy under valgrind")
        _control(child.pid, "--instr=on")
        asyncio.run(_send(port, request, requests, connections))  # warm-up
        _control(child.pid, "--zero")
        asyncio.run(_send(port, request, requests, connections))
        _control(child.pid, "--dump")
        dump = Path(f"{out}.{child.pid}.1")
        wait_until(dump.exists, timeout=60, what="callgrind's dump")
        found = re.search(r"^(?:totals|summary): (\d+)", dump.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no instruction total in {dump}")
        return int(found.group(1)) / requests
    finally:
        child.stop(grace=60.0)


def _control(pid: int, option: str) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)  # noqa: S603, S607


async def _send(port: int, request: bytes, requests: int, connections: int) -> None:
    """``requests`` requests over ``connections`` keep-alive connections, each answered 200."""

    async def connection(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = _LENGTH.search(head)
                if not head.startswith(b"HTTP/1.1 200") or length is None:
                    raise RuntimeError(f"the proxy answered {head[:200]!r}")
                await reader.readexactly(int(length.group(1)))
        finally:
            writer.close()

    shares = [requests // connections + (i < requests % connections) for i in range(connections)]
    await asyncio.wait_for(asyncio.gather(*(connection(n) for n in shares)), timeout=600)


if __name__ == "__main__":
    sys.exit(main())
