"""The sidecar lifecycle as real processes: drain on SIGTERM, reload on SIGHUP, JSON logs."""

from __future__ import annotations

import http.client
import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.processes import (
    EXPORT,
    FUNCTION_URL,
    GUARD,
    child_env,
    free_port,
    module_command,
    send,
    started,
)


@contextmanager
def _emulator() -> Iterator[tuple[str, dict[str, str]]]:
    """`signing-proxy emulate` in its own process: its URL and the keys it accepts."""
    port = free_port()
    with started(module_command("emulate", "--listen", f"127.0.0.1:{port}")) as emulator:
        emulator.wait_for(lambda line: "listening on" in line)
        keys: dict[str, str] = {}
        while len(keys) < 2:
            matched = EXPORT.match(emulator.wait_for(lambda line: EXPORT.match(line) is not None))
            assert matched is not None
            keys[matched.group(1)] = matched.group(2)
        yield f"http://127.0.0.1:{port}", keys
        emulator.stop()


def _config(path: Path, upstream: str, *, prefixes: list[str], **top: Any) -> tuple[int, int]:
    port, admin = free_port(), free_port()
    document = {
        "listen": f"127.0.0.1:{port}",
        "admin": f"127.0.0.1:{admin}",
        "routes": [
            {
                "name": prefix.strip("/") or "root",
                "path_prefix": prefix,
                "upstream": upstream,
                "function_url": FUNCTION_URL,
            }
            for prefix in prefixes
        ],
        **top,
    }
    path.write_text(yaml.safe_dump(document))
    return port, admin


def _serve(path: Path, keys: dict[str, str], *extra: str) -> Any:
    return started(module_command(*extra, "serve", "--config", str(path)), env=child_env(**keys))


def test_sigterm_lets_a_streamed_reply_finish_then_exits_0(tmp_path: Path) -> None:
    """On SIGTERM the proxy stops accepting, reports not ready, finishes a stream, exits 0."""
    config = tmp_path / "proxy.yaml"
    with _emulator() as (upstream, keys):
        port, admin = _config(config, upstream, prefixes=["/"], shutdown_grace="20s")
        with _serve(config, keys) as proxy:
            proxy.wait_for(lambda line: "admin on" in line)
            first_event, events = threading.Event(), []

            def stream() -> None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
                connection.request("GET", "/stream?chunks=4&delay=0.4")
                response = connection.getresponse()
                while line := response.readline():
                    if line.startswith(b"data:"):
                        events.append(line.strip())
                        first_event.set()
                connection.close()

            reader = threading.Thread(target=stream)
            reader.start()
            assert first_event.wait(GUARD)
            proxy.process.send_signal(signal.SIGTERM)
            readiness = _wait_until_draining(admin)
            reader.join(GUARD)
            code = proxy.process.wait(GUARD)
            proxy.join()
    assert readiness == 503
    assert events == [b"data: 0", b"data: 1", b"data: 2", b"data: 3"]
    assert code == 0
    assert "Traceback" not in proxy.err


def _wait_until_draining(admin: int) -> int:
    """/readyz once the proxy has begun its drain (it answers 200 until then)."""
    for _ in range(200):
        status = send(admin, "GET", "/readyz").status
        if status != 200:
            return status
        threading.Event().wait(0.02)
    return 200


def test_sighup_reloads_a_valid_config_and_keeps_the_old_one_for_an_invalid(
    tmp_path: Path,
) -> None:
    """SIGHUP takes a new route from the file; a broken file is logged and changes nothing."""
    config = tmp_path / "proxy.yaml"
    with _emulator() as (upstream, keys):
        port, _ = _config(config, upstream, prefixes=["/a"])
        with _serve(config, keys) as proxy:
            proxy.wait_for(lambda line: "admin on" in line)
            assert send(port, "GET", "/b/1").status == 404
            document = yaml.safe_load(config.read_text())
            document["routes"].append({**document["routes"][0], "name": "b", "path_prefix": "/b"})
            config.write_text(yaml.safe_dump(document))
            proxy.process.send_signal(signal.SIGHUP)
            assert _eventually(lambda: send(port, "GET", "/b/1").status == 200)
            config.write_text("routes: [{name: b, path_prefix: /b, upstrem: typo}]\n")
            proxy.process.send_signal(signal.SIGHUP)
            assert _eventually(lambda: "reload refused" in proxy.err)
            assert send(port, "GET", "/b/2").status == 200
            assert proxy.stop() == 0
    assert "routes[0].upstrem" in proxy.err


def _eventually(check: Any) -> bool:
    for _ in range(250):
        if check():
            return True
        threading.Event().wait(0.02)
    return False


def test_json_logs_have_one_access_object_per_request(tmp_path: Path) -> None:
    """--log-format json writes one JSON object per line; the access line has its fields."""
    config = tmp_path / "proxy.yaml"
    with _emulator() as (upstream, keys):
        port, _ = _config(config, upstream, prefixes=["/"])
        with _serve(config, keys, "--log-format", "json") as proxy:
            proxy.wait_for(lambda line: "admin on" in line)
            reply = send(
                port,
                "POST",
                "/orders?token=never-logged",
                body=b"{}",
                headers={"X-Request-Id": "req-7"},
            )
            assert reply.status == 200
            assert proxy.stop() == 0
    entries = [json.loads(line) for line in proxy.stderr if line.strip()]
    access = [e for e in entries if e["logger"] == "signing_proxy.access"]
    assert len(access) == 1
    expected = {
        "level": "info",
        "request_id": "req-7",
        "route": "root",
        "method": "POST",
        "path": "/orders",
        "status": 200,
        "upstream_status": 200,
        "bytes_in": 2,
    }
    assert {key: access[0][key] for key in expected} == expected
    assert access[0]["duration_ms"] > 0
    assert access[0]["amzn_request_id"]
    assert "never-logged" not in proxy.err


def _endless_stream(port: int, events: list[bytes], first: threading.Event) -> threading.Thread:
    """A reader of a stream far longer than any grace (200 s), on a thread."""

    def read() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
        connection.request("GET", "/stream?chunks=1000&delay=0.2")
        response = connection.getresponse()
        try:
            while line := response.readline():
                if line.startswith(b"data:"):
                    events.append(line.strip())
                    first.set()
        except (http.client.HTTPException, OSError):
            events.append(b"cut")  # the drain cut the reply: the client sees it end short
        connection.close()

    reader = threading.Thread(target=read)
    reader.start()
    return reader


def _access_lines(err: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "signing_proxy.access"]


def test_a_stream_longer_than_the_grace_is_cut_at_its_end_and_logged_as_shutdown(
    tmp_path: Path,
) -> None:
    """SIGTERM with shutdown_grace 1s: the drain says how many requests it waits for and until
    when, cuts the stream when the grace ends (once, not after a second grace), logs it with
    cut: shutdown, and the process exits 0."""
    config = tmp_path / "proxy.yaml"
    with _emulator() as (upstream, keys):
        port, _ = _config(config, upstream, prefixes=["/"], shutdown_grace="1s")
        with _serve(config, keys, "--log-format", "json") as proxy:
            proxy.wait_for(lambda line: "admin on" in line)
            events: list[bytes] = []
            first = threading.Event()
            reader = _endless_stream(port, events, first)
            assert first.wait(GUARD)
            proxy.process.send_signal(signal.SIGTERM)
            code = proxy.process.wait(GUARD)
            proxy.join()
            reader.join(GUARD)
    assert code == 0
    assert "waiting for 1 request(s) in flight until" in proxy.err
    assert "shutdown_grace ended; cutting 1 request(s) still in flight" in proxy.err
    assert events[-1] == b"cut" or len(events) < 1000
    [line] = _access_lines(proxy.err)
    assert line["cut"] == "shutdown"
    assert line["status"] == 200  # the reply had begun: the status it was given
    assert "Traceback" not in proxy.err


def test_a_second_sigterm_keeps_the_drain_to_its_grace(tmp_path: Path) -> None:
    """SIGTERM twice (as an orchestrator may send it) does not cut the requests in flight: the
    stream is cut when shutdown_grace ends, as after one SIGTERM."""
    code, err = _stop_a_stream_twice(tmp_path, signal.SIGTERM, shutdown_grace="3s")
    assert code == 0
    assert "shutdown_grace ended; cutting 1 request(s) still in flight" in err
    assert "a second SIGINT (Ctrl-C); cutting" not in err


def test_a_second_ctrl_c_cuts_the_requests_in_flight_at_once(tmp_path: Path) -> None:
    """Ctrl-C starts the drain (a grace of 10 minutes here); Ctrl-C again cuts the stream
    at once and the process exits 0 (the wait is bounded by the test's guard, far below the
    grace)."""
    code, err = _stop_a_stream_twice(tmp_path, signal.SIGINT, shutdown_grace="10m")
    assert code == 0
    assert "a second SIGINT (Ctrl-C); cutting 1 request(s) still in flight" in err
    assert "cut short: shutdown" in err


def _stop_a_stream_twice(
    tmp_path: Path, signum: signal.Signals, *, shutdown_grace: str
) -> tuple[int, str]:
    """With an endless stream in flight: ``signum``, and once the drain waits for the stream,
    ``signum`` again; the exit code and stderr."""
    config = tmp_path / "proxy.yaml"
    with _emulator() as (upstream, keys):
        port, _ = _config(config, upstream, prefixes=["/"], shutdown_grace=shutdown_grace)
        with _serve(config, keys) as proxy:
            proxy.wait_for(lambda line: "admin on" in line)
            events: list[bytes] = []
            first = threading.Event()
            reader = _endless_stream(port, events, first)
            assert first.wait(GUARD)
            proxy.process.send_signal(signum)
            assert _eventually(lambda: "waiting for 1 request(s)" in proxy.err), proxy.err
            proxy.process.send_signal(signum)
            code = proxy.process.wait(GUARD)
            proxy.join()
            reader.join(GUARD)
    return code, proxy.err
