"""serve --workers: processes sharing one port, a supervisor replacing the dead, one /metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.processes import child_env, free_port, module_command, send, started

WORKER_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def _requests_total(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("signing_proxy_requests_total{")
    )


def _eventually(check: object) -> bool:
    for _ in range(300):
        if check():  # type: ignore[operator]
            return True
        threading.Event().wait(0.05)
    return False


def test_two_workers_share_the_port_and_the_metrics(tmp_path: Path) -> None:
    """Two workers answer on one port; /metrics adds their counts; SIGTERM ends all with 0."""
    port, admin = free_port(), free_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"admin: 127.0.0.1:{admin}\n"
        "routes:\n"
        f"  - {{name: closed, upstream: 'http://127.0.0.1:{free_port()}', mode: none,\n"
        "     retries: {attempts: 1}}\n"
    )
    command = module_command(
        "--log-format", "json", "serve", "--config", str(config), "--workers", "2"
    )
    with started(command, env=child_env()) as supervisor:
        supervisor.wait_for(lambda line: "(2 workers)" in line)
        assert _eventually(lambda: send(admin, "GET", "/readyz").status == 200)
        assert _eventually(lambda: len(WORKER_STARTED.findall(supervisor.err)) == 2)
        pids = [int(pid) for _, pid in WORKER_STARTED.findall(supervisor.err)]
        statuses: list[int] = []
        # Each worker in turn is the only one accepting (the other stopped): which worker the
        # kernel would hand a connection to is then no matter of chance.
        for stopped in pids:
            os.kill(stopped, signal.SIGSTOP)
            try:
                with ThreadPoolExecutor(max_workers=16) as pool:
                    statuses += pool.map(lambda _: send(port, "GET", "/x").status, range(100))
            finally:
                os.kill(stopped, signal.SIGCONT)
        # Each worker hands its counts over every second (metrics.FLUSH_PERIOD).
        counted = _eventually(
            lambda: _requests_total(send(admin, "GET", "/metrics").body.decode()) == 200
        )
        assert supervisor.stop() == 0
    entries = [json.loads(line) for line in supervisor.stderr if line.startswith("{")]
    served_by = {e["pid"] for e in entries if e["logger"] == "signing_proxy.access"}
    assert statuses == [502] * 200  # the upstream's port is closed
    assert len(served_by) == 2
    assert counted


def test_a_killed_worker_is_replaced() -> None:
    """A worker killed outright is started again, and the port keeps answering."""
    port, admin = free_port(), free_port()
    command = module_command(
        "serve",
        "--upstream",
        "http://127.0.0.1:9",
        "--mode",
        "none",
        "--listen",
        f"127.0.0.1:{port}",
        "--admin",
        f"127.0.0.1:{admin}",
        "--workers",
        "2",
    )
    with started(command, env=child_env()) as supervisor:
        supervisor.wait_for(lambda line: "(2 workers)" in line)
        assert _eventually(lambda: len(WORKER_STARTED.findall(supervisor.err)) == 2)
        victim = int(WORKER_STARTED.findall(supervisor.err)[0][1])
        os.kill(victim, signal.SIGKILL)
        assert _eventually(lambda: len(WORKER_STARTED.findall(supervisor.err)) == 3)
        assert _eventually(lambda: send(admin, "GET", "/readyz").status == 200)
        assert all(send(port, "GET", "/x").status == 502 for _ in range(20))
        assert supervisor.stop() == 0
    assert f"(pid {victim}) exited" in supervisor.err
    pids = {int(pid) for _, pid in WORKER_STARTED.findall(supervisor.err)}
    assert victim in pids
    assert len(pids) == 3


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    """Workers of a supervisor that was killed outright do not linger."""
    port = free_port()
    command = module_command(
        "serve",
        "--upstream",
        "http://127.0.0.1:9",
        "--mode",
        "none",
        "--listen",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
    )
    with started(command, env=child_env()) as supervisor:
        supervisor.wait_for(lambda line: "(2 workers)" in line)
        assert _eventually(lambda: len(WORKER_STARTED.findall(supervisor.err)) == 2)
        pids = [int(pid) for _, pid in WORKER_STARTED.findall(supervisor.err)]
        supervisor.process.kill()
        supervisor.process.wait()
        assert _eventually(lambda: not any(_alive(pid) for pid in pids))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
