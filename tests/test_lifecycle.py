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
