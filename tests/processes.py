"""Real processes for the tests: start the CLI, read its output without deadlocks, talk HTTP."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

FUNCTION_URL = "https://abc123xyz.lambda-url.eu-central-1.on.aws"
FUNCTION_HOST = "abc123xyz.lambda-url.eu-central-1.on.aws"
CLOUDFRONT = "https://d111111abcdef8.cloudfront.net"
CONSOLE_SCRIPT = Path(sys.executable).parent / "signing-proxy"
# Guards against a hung child only; no assertion depends on how long anything takes.
GUARD = 60.0


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """The test's (credential-free) environment, unbuffered, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def module_command(*args: str) -> list[str]:
    """``python -m proxy ARGS``."""
    return [sys.executable, "-m", "proxy", *args]


def script_command(*args: str) -> list[str]:
    """``signing-proxy ARGS`` through the installed console script."""
    return [str(CONSOLE_SCRIPT), *args]


def run(
    command: Sequence[str], *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end and capture its output."""
    return subprocess.run(  # noqa: S603 - our own interpreter and console script
        list(command),
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )


@dataclass
class Child:
    """A running process whose stdout and stderr are read by threads, so nothing deadlocks."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start_readers(self) -> None:
        """One thread per stream; stdout lines also go to a queue for ``wait_for``."""
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.threads = [
            threading.Thread(target=self._pump, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, False), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _pump(self, stream: IO[str], is_stdout: bool) -> None:
        for line in stream:
            if is_stdout:
                self.stdout.append(line)
                self.lines.put(line)
            else:
                self.stderr.append(line)
        if is_stdout:
            self.lines.put(None)

    def wait_for(self, predicate: Callable[[str], bool]) -> str:
        """The first stdout line (from here on) that satisfies ``predicate``."""
        while True:
            try:
                line = self.lines.get(timeout=GUARD)
            except queue.Empty:
                pytest.fail(f"no matching line on stdout; got {self.stdout!r}, {self.stderr!r}")
            if line is None:
                pytest.fail(
                    f"the process ended (exit {self.process.wait()}) before a matching line; "
                    f"stdout {''.join(self.stdout)!r}, stderr {''.join(self.stderr)!r}"
                )
            if predicate(line):
                return line

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum``, wait for the exit code, and collect the rest of the output."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout=GUARD)
        self.join()
        return code

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=GUARD)

    @property
    def err(self) -> str:
        return "".join(self.stderr)


@contextlib.contextmanager
def started(command: Sequence[str], *, env: dict[str, str] | None = None) -> Iterator[Child]:
    """Start ``command``; whatever happens in the block, the process is gone afterwards."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and console script
        list(command),
        env=env or child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child = Child(process)
    try:
        child.start_readers()
        yield child
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=GUARD)
        child.join()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@dataclass(frozen=True)
class Reply:
    """An HTTP reply read in full."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request to 127.0.0.1:``port`` on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def listening_line(port: int) -> Callable[[str], bool]:
    return lambda line: f"listening on http://127.0.0.1:{port}" in line


def assert_clean_exit(child: Child, code: int) -> None:
    assert code == 0, child.err
    assert "Traceback" not in child.err


def assert_proxy_error(reply: Reply, *, status: int, error: str, route: str | None) -> None:
    """The proxy's own JSON error shape: error code, a message, the route name or null."""
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    document = reply.json()
    assert set(document) == {"error", "message", "route"}
    assert document["error"] == error
    assert isinstance(document["message"], str)
    assert document["message"]
    assert document["route"] == route


# --- serve with a config file ---------------------------------------------------------------


# `signing-proxy emulate` prints the keys it accepts as shell exports.
EXPORT = re.compile(r"^\s*export (AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)=(\S+)\s*$")
