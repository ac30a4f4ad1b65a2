"""The processes the benchmark measures through: the built-in upstream, this proxy, and the Go
aws-sigv4-proxy when it is installed.

(nginx, as origin and as the C proxy hop, is in ``bench/nginx.py``.) The proxy runs as users
run it, ``python -m proxy serve --config FILE --workers N``, with made-up AWS keys and a
temporary HOME so no real credentials are ever read; the upstream does not check signatures.
The Go proxy runs as shipped, with the same keys, signing for the same host.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.processes import Child, free_port, port_open, wait_until

BENCH = Path(__file__).resolve().parent
FUNCTION_HOST, REGION = "abc123xyz.lambda-url.eu-central-1.on.aws", "eu-central-1"
FUNCTION_URL = f"https://{FUNCTION_HOST}"
GO_PROXY = "aws-sigv4-proxy"
# Made up: an assumed role's shape (key, secret and session token), so the proxy signs the
# four headers it signs in production (host, x-amz-content-sha256, x-amz-date, token).
FAKE_KEYS = {
    "AWS_ACCESS_KEY_ID": "ASIABENCHEXAMPLE0001",
    "AWS_SECRET_ACCESS_KEY": "bench/secret/not+a+real+key",
    "AWS_SESSION_TOKEN": "bench-session-token-" + "x" * 300,
}


@dataclass(frozen=True)
class System:
    """One thing to send load to: ``direct`` (the origin), ``nginx`` (a C hop), ``proxy``, or
    ``go`` (the Go aws-sigv4-proxy; its ``workers`` is GOMAXPROCS, the cores it may use)."""

    name: str
    mode: str = "-"
    workers: int = 1

    @property
    def label(self) -> str:
        if self.name == "proxy":
            return f"{self.mode}-{self.workers}"
        return f"go-{self.workers}" if self.name == "go" else self.name


def start_upstream(directory: Path) -> tuple[Child, int]:
    """The built-in upstream (``bench/upstream.py``) on a free port, once it listens."""
    port = free_port()
    command = [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)]
    child = Child("upstream", command, directory=directory)
    try:
        child.wait_for_output("ready", timeout=15)
        wait_until(lambda: port_open(port), timeout=5, what="upstream port")
    except BaseException:
        child.stop()
        raise
    return child, port


def proxy_config(*, port: int, mode: str, origin: str, stream: str) -> dict[str, object]:
    """Two routes: /stream to the built-in upstream, everything else to the origin."""
    routes = [
        {"name": "stream", "path_prefix": "/stream", "upstream": stream},
        {"name": "bench", "path_prefix": "/", "upstream": origin},
    ]
    return {
        "listen": f"127.0.0.1:{port}",
        "shutdown_grace": "1s",
        "routes": [route | {"function_url": FUNCTION_URL, "mode": mode} for route in routes],
    }


def proxy_env(home: Path) -> dict[str, str]:
    """This environment without any AWS_* settings, plus the made-up keys and HOME."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("SIGNING_PROXY_CONFIG", None)
    home.mkdir(parents=True, exist_ok=True)
    return env | FAKE_KEYS | {"HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"}


def start_proxy(
    directory: Path,
    system: System,
    *,
    origin_port: int,
    stream_port: int,
    log_level: str,
    ca_file: Path | None = None,
    name: str | None = None,
) -> tuple[Child, int]:
    """Start the proxy; return once every worker is ready and a GET through it answers 200.

    With ``ca_file`` the origin is reached over HTTPS, trusting that certificate authority
    (``upstream_tls.ca_file``, as users trust a private CA)."""
    port, admin = free_port(), free_port()
    scheme = "http" if ca_file is None else "https"
    config = proxy_config(
        port=port,
        mode=system.mode,
        origin=f"{scheme}://127.0.0.1:{origin_port}",
        stream=f"http://127.0.0.1:{stream_port}",
    )
    if ca_file is not None:
        config["upstream_tls"] = {"ca_file": str(ca_file)}
    name = name or f"proxy-{system.label}"
    config_path = directory / f"{name}.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    command = [sys.executable, "-m", "proxy", "--log-level", log_level, "serve"]
    command += ["--config", str(config_path), "--workers", str(system.workers)]
    command += ["--admin", f"127.0.0.1:{admin}"]
    env = proxy_env(directory / "home")
    child = Child(name, command, directory=directory, env=env)

    def ready() -> None:
        child.wait_for_output("listening on", timeout=30)
        wait_until(lambda: _answers(f"http://127.0.0.1:{admin}/readyz"), timeout=30, what="ready")

    _forwarding(child, port, ready)
    return child, port


def go_binary(given: str | None) -> str | None:
    """The Go aws-sigv4-proxy: ``given`` (a path or a name on PATH), else the one on PATH."""
    return shutil.which(given or GO_PROXY)


def start_go_proxy(
    directory: Path,
    system: System,
    *,
    binary: str,
    upstream_port: int,
    name: str,
    ca_file: Path | None = None,
) -> tuple[Child, int]:
    """The Go proxy in front of one upstream (it has no routes), signing for the function URL
    as this proxy does; return once a GET through it answers 200. With ``ca_file`` the
    upstream is HTTPS, trusted through SSL_CERT_FILE (Go reads it on Linux)."""
    port = free_port()
    scheme = "http" if ca_file is None else "https"
    command = [binary, "--port", f"127.0.0.1:{port}", "--host", f"127.0.0.1:{upstream_port}"]
    command += ["--upstream-url-scheme", scheme, "--sign-host", FUNCTION_HOST]
    command += ["--name", "lambda", "--region", REGION]
    env = proxy_env(directory / "home") | {"GOMAXPROCS": str(system.workers)}
    if ca_file is not None:
        env["SSL_CERT_FILE"] = str(ca_file)
    child = Child(name, command, directory=directory, env=env)

    def listening() -> None:
        wait_until(lambda: port_open(port) or not child.running(), timeout=30, what=name)

    _forwarding(child, port, listening)
    return child, port


def _forwarding(child: Child, port: int, started: Callable[[], None]) -> None:
    """Wait with ``started``, then check that a GET through ``port`` answers 200; stop the
    child when either fails."""
    try:
        started()
        if not _answers(f"http://127.0.0.1:{port}/"):
            raise RuntimeError(f"a GET through {child.name} failed:\n{child.log_tail()}")
    except BaseException:
        child.stop()
        raise


def _answers(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - http://127.0.0.1
            status: int = reply.status
            return status == 200
    except OSError:
        return False
