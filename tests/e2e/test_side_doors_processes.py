"""Side doors across processes, with real signals and sockets: a SIGHUP reload that would drop
auth on an exposed listener, and webhook replays sent to another worker of ``--workers 2``."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.processes import GUARD, child_env, free_port, module_command, send, started
from tests.webhooks import GITHUB_PUSH, SECRET, github

TOKEN = "tunnel-token-51c2e0"
WORKER_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 to anything and records the method and path (a real server, on a thread)."""

    seen: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test reads what was recorded, not a log


@contextlib.contextmanager
def _upstream() -> Iterator[tuple[str, list[str]]]:
    """A recording upstream on 127.0.0.1, port 0: its URL and what it received."""
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=GUARD)


def _eventually(check: Callable[[], bool]) -> bool:
    """Poll ``check`` for up to GUARD seconds (a guard against a hang, not a measurement)."""
    stop = threading.Event()
    for _ in range(int(GUARD / 0.05)):
        if check():
            return True
        stop.wait(0.05)
    return False


def _config(path: Path, *, port: int, admin: int, upstream: str, auth: bool) -> None:
    """Two routes: GitHub webhooks, and an oac route with bearer auth on 0.0.0.0; or, as a
    reload would like it, no auth and listen: 127.0.0.1 (which a reload does not rebind)."""
    api = ", inbound: {type: bearer, secret_env: TUNNEL_TOKEN}" if auth else ""
    host = "0.0.0.0" if auth else "127.0.0.1"  # noqa: S104 - the test binds all interfaces
    path.write_text(
        f"listen: {host}:{port}\n"
        f"admin: 127.0.0.1:{admin}\n"
        "routes:\n"
        f"  - {{name: hooks, path_prefix: /hooks, upstream: '{upstream}', mode: none,\n"
        "     inbound: {type: github, secret_env: HOOK_SECRET}}\n"
        f"  - {{name: api, upstream: '{upstream}', mode: oac{api}}}\n"
    )


def _env() -> dict[str, str]:
    return child_env(HOOK_SECRET=SECRET.decode(), TUNNEL_TOKEN=TOKEN)


def _deliver(port: int, delivery_id: str) -> tuple[int, str]:
    """A genuine GitHub delivery; the status and the X-Request-Id of the reply."""
    headers = dict(github(SECRET, GITHUB_PUSH, 0)) | {"X-GitHub-Delivery": delivery_id}
    reply = send(port, "POST", "/hooks/push", body=GITHUB_PUSH, headers=headers)
    return reply.status, reply.headers["x-request-id"]


def test_sighup_reload_that_drops_auth_on_an_exposed_listener_is_refused(tmp_path: Path) -> None:
    """SIGHUP with a file that no longer authenticates a route on 0.0.0.0 keeps the old config."""
    port, admin = free_port(), free_port()
    config = tmp_path / "proxy.yaml"
    with _upstream() as (upstream, seen):
        _config(config, port=port, admin=admin, upstream=upstream, auth=True)
        command = module_command("serve", "--config", str(config))
        with started(command, env=_env()) as proxy:
            proxy.wait_for(lambda line: "listening on" in line)
            _config(config, port=port, admin=admin, upstream=upstream, auth=False)
            proxy.process.send_signal(signal.SIGHUP)
            refused = _eventually(lambda: "reload refused" in proxy.err)
            status = send(port, "GET", "/orders").status
            assert proxy.stop() == 0
    assert refused, proxy.err
    assert "listen: changes only at a restart" in proxy.err
    assert status == 401
    assert seen == []


def test_a_replay_is_refused_by_the_other_worker_too(tmp_path: Path) -> None:
    """A delivery taken by one worker is a replay at the other (each in turn made the only one
    accepting, with SIGSTOP); the supervisor refuses a reload that drops auth."""
    port, admin = free_port(), free_port()
    config = tmp_path / "proxy.yaml"
    with _upstream() as (upstream, seen):
        _config(config, port=port, admin=admin, upstream=upstream, auth=True)
        command = module_command("serve", "--config", str(config), "--workers", "2")
        with started(command, env=_env()) as proxy:
            assert _eventually(lambda: len(WORKER_STARTED.findall(proxy.err)) == 2), proxy.err
            assert _eventually(lambda: send(admin, "GET", "/readyz").status == 200), proxy.err
            first, second = (int(pid) for _, pid in WORKER_STARTED.findall(proxy.err))
            os.kill(second, signal.SIGSTOP)  # connections now wait for the first worker only
            try:
                taken = _deliver(port, "d-1")
            finally:
                os.kill(second, signal.SIGCONT)
            os.kill(first, signal.SIGSTOP)
            try:
                replays = [_deliver(port, "d-2"), _deliver(port, "d-1")]
            finally:
                os.kill(first, signal.SIGCONT)
            _config(config, port=port, admin=admin, upstream=upstream, auth=False)
            reload = send(admin, "POST", "/reload")
            unauthenticated = send(port, "GET", "/orders").status
            assert proxy.stop() == 0
    assert taken[0] == 200
    assert [status for status, _ in replays] == [403, 403]
    # Request ids start with a random prefix of their process: two workers answered.
    assert all(request_id[:16] != taken[1][:16] for _, request_id in replays)
    assert seen == ["POST /hooks/push"]
    assert reload.status == 400
    assert b"listen: changes only at a restart" in reload.body
    assert unauthenticated == 401
