"""The command line as real processes: real sockets, real signals, real exit codes."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy import __version__
from tests.processes import (
    CLOUDFRONT,
    EXPORT,
    FUNCTION_HOST,
    FUNCTION_URL,
    GUARD,
    assert_clean_exit,
    assert_proxy_error,
    child_env,
    free_port,
    listening_line,
    module_command,
    run,
    script_command,
    send,
    started,
)


def minimal_config(port: int) -> str:
    """The issue's minimal config file, listening on ``port``."""
    return f"""\
listen: 127.0.0.1:{port}
routes:
  - name: orders
    path_prefix: /
    upstream: {CLOUDFRONT}
    function_url: {FUNCTION_URL}
    mode: iam
"""


def two_route_config(port: int) -> str:
    """Two routes that leave most paths unmatched."""
    return f"""\
listen: 127.0.0.1:{port}
routes:
  - name: orders
    path_prefix: /orders
    upstream: {CLOUDFRONT}
    function_url: {FUNCTION_URL}
    mode: iam
  - name: public
    path_prefix: /public
    upstream: {CLOUDFRONT}
    mode: none
"""


@pytest.mark.parametrize("command", [module_command, script_command], ids=["module", "script"])
def test_serve_config_prints_address_and_routes(
    tmp_path: Path, command: Callable[..., list[str]]
) -> None:
    """`serve --config` prints where it listens and one line per route, then answers requests."""
    port = free_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(minimal_config(port))
    with started(command("serve", "--config", str(config))) as child:
        first = child.wait_for(listening_line(port))
        assert first.startswith(f"signing-proxy {__version__} ")
        route = child.wait_for(lambda line: "orders" in line)
        assert CLOUDFRONT in route
        assert FUNCTION_HOST in route
        # No AWS credentials anywhere in the test environment: the proxy says so, as JSON.
        reply = send(port, "GET", "/orders/1")
        assert_proxy_error(reply, status=503, error="credentials_unavailable", route="orders")
        assert_clean_exit(child, child.stop(signal.SIGTERM))
    assert child.stdout[:2] == [first, route]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_unmatched_path_is_404_and_signal_stops_cleanly(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """A path no route takes is answered 404 no_route; SIGTERM and Ctrl-C exit 0 quietly."""
    port = free_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(two_route_config(port))
    with started(module_command("serve", "--config", str(config))) as child:
        child.wait_for(listening_line(port))
        child.wait_for(lambda line: "orders" in line)
        child.wait_for(lambda line: "public" in line)
        reply = send(port, "GET", "/elsewhere")
        assert_proxy_error(reply, status=404, error="no_route", route=None)
        assert_clean_exit(child, child.stop(signum))


def test_config_path_from_environment(tmp_path: Path) -> None:
    """SIGNING_PROXY_CONFIG names the config file when --config is not given."""
    port = free_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(two_route_config(port))
    with started(module_command("serve"), env=child_env(SIGNING_PROXY_CONFIG=str(config))) as child:
        child.wait_for(listening_line(port))
        assert_proxy_error(send(port, "GET", "/"), status=404, error="no_route", route=None)
        assert_clean_exit(child, child.stop())


# --- the quick form ---------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_quick_form_serves_one_iam_route(signum: signal.Signals) -> None:
    """`serve --upstream --function-url --listen` runs one iam route without a config file."""
    port = free_port()
    args = ["--upstream", CLOUDFRONT, "--function-url", FUNCTION_URL]
    with started(module_command("serve", *args, "--listen", f"127.0.0.1:{port}")) as child:
        child.wait_for(listening_line(port))
        route = child.wait_for(lambda line: "iam" in line)
        assert CLOUDFRONT in route
        assert FUNCTION_HOST in route
        reply = send(port, "POST", "/orders", body=b"{}")
        assert reply.status == 503
        assert reply.json()["error"] == "credentials_unavailable"
        assert_clean_exit(child, child.stop(signum))


def test_quick_form_mode_none_needs_no_function_url() -> None:
    """`--mode none` forwards unsigned and needs no --function-url; errors are still JSON."""
    port = free_port()
    closed = free_port()  # nothing listens there: the upstream is unreachable
    upstream = f"http://127.0.0.1:{closed}"
    command = module_command(
        "serve", "--upstream", upstream, "--mode", "none", "--listen", f"127.0.0.1:{port}"
    )
    with started(command) as child:
        child.wait_for(listening_line(port))
        route = child.wait_for(lambda line: "[none]" in line)
        assert upstream in route
        reply = send(port, "GET", "/x")
        assert reply.status == 502, reply.body
        document = reply.json()
        assert document["error"] == "upstream_unreachable"
        assert isinstance(document["route"], str)
        assert_clean_exit(child, child.stop())


# --- bad input: exit 2 with one line --------------------------------------------------------

ROUTE = f"""\
routes:
  - name: orders
    path_prefix: /
    upstream: {CLOUDFRONT}
    function_url: {FUNCTION_URL}
"""


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (ROUTE.replace("upstream:", "upstrem:"), "routes[0].upstrem"),
        (ROUTE + "    mode: iamm\n", "routes[0].mode"),
        (ROUTE + "    max_body: lots\n", "routes[0].max_body"),
        (ROUTE + "    timeouts: {connect: soon}\n", "routes[0].timeouts.connect"),
        (ROUTE + "    sign: {region: eu-central}\n", "routes[0].sign.region"),
        (ROUTE + "    methods: [GET POST]\n", "routes[0].methods[0]"),
        ("listen: nowhere\n" + ROUTE, "listen"),
        ("routes: []\n", "routes"),
        ("routes: [1\n", "proxy.yaml:"),
    ],
    ids=[
        "unknown-key",
        "mode",
        "max_body",
        "duration",
        "region",
        "method",
        "listen",
        "no-routes",
        "yaml-syntax",
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    """Every mistake in the config file: exit 2, exactly one line on stderr naming the key."""
    config = tmp_path / "proxy.yaml"
    config.write_text(text)
    result = run(module_command("serve", "--config", str(config)))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert result.stdout == ""


def test_missing_config_file_exits_2_naming_it(tmp_path: Path) -> None:
    """A config file that does not exist: exit 2, one line naming the file."""
    missing = tmp_path / "nowhere.yaml"
    result = run(module_command("serve", "--config", str(missing)))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([], "--config"),
        (["--config", "proxy.yaml", "--upstream", CLOUDFRONT], "--upstream"),
        (["--upstream", CLOUDFRONT, "--mode", "iam"], "--function-url"),
        (["--upstream", CLOUDFRONT], "--function-url"),
        (["--upstream", CLOUDFRONT, "--mode", "none", "--inspect", "--workers", "2"], "--inspect"),
        (
            ["--upstream", CLOUDFRONT, "--mode", "none", "--inspect", "--admin", "0.0.0.0:9901"],
            "--inspect",
        ),
        (["--upstream", CLOUDFRONT, "--mode", "none", "--admin", "127.0.0.1:8080"], "--admin"),
    ],
    ids=[
        "nothing-to-serve",
        "config-and-upstream",
        "iam-without-function-url",
        "default-iam",
        "inspect-with-workers",
        "inspect-on-public-admin",
        "admin-on-listen-port",
    ],
)
def test_bad_serve_arguments_exit_2(tmp_path: Path, args: list[str], named: str) -> None:
    """Contradictory or missing serve arguments: exit 2 with one line saying what to give."""
    (tmp_path / "proxy.yaml").write_text(minimal_config(free_port()))
    args = [str(tmp_path / a) if a == "proxy.yaml" else a for a in args]
    result = run(module_command("serve", *args))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


def test_check_without_a_config_exits_2_saying_what_to_give() -> None:
    """`check` with neither a file nor flags: exit 2, one line naming check and --config."""
    result = run(module_command("check"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "signing-proxy: check: no config: give --config FILE (or set SIGNING_PROXY_CONFIG), "
        "or --upstream URL --function-url URL"
    ]


def test_listen_port_in_use_exits_2() -> None:
    """A listen address already taken: exit 2, one line, before credentials are even tried."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = module_command(
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--function-url",
            FUNCTION_URL,
            "--listen",
            f"127.0.0.1:{port}",
        )
        result = run(command)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.stderr


# --- demo and emulate -------------------------------------------------------------------------


def test_demo_verifies_every_request() -> None:
    """`signing-proxy demo` sends three requests through the emulator and all verify."""
    result = run(script_command("demo"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 3 requests arrived signed and verified" in result.stdout
    assert "FAILED" not in result.stdout


def test_demo_serve_keeps_running_until_sigterm() -> None:
    """`demo --serve` keeps proxy and emulator up: a GET through it is verified; SIGTERM ends it."""
    port, admin = free_port(), free_port()
    command = module_command(
        "demo", "--serve", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}"
    )
    with started(command) as child:
        child.wait_for(lambda line: f"http://127.0.0.1:{port}" in line)
        child.wait_for(lambda line: f"http://127.0.0.1:{admin}/inspect" in line)
        child.wait_for(lambda line: line.startswith("Send your own requests"))
        reply = send(port, "GET", "/hello?name=world")
        assert reply.status == 200, reply.body
        echoed = reply.json()
        assert echoed["verified"] is True
        assert echoed["target"] == "/hello?name=world"
        assert echoed["headers"]["host"] == FUNCTION_HOST
        assert_clean_exit(child, child.stop())


def test_emulate_and_serve_with_its_keys() -> None:
    """`emulate` prints keys; a quick-form proxy holding them gets a verified 200 on a POST."""
    emulator_port = free_port()
    proxy_port = free_port()
    with started(module_command("emulate", "--listen", f"127.0.0.1:{emulator_port}")) as emulator:
        first = emulator.wait_for(lambda line: "listening on" in line)
        cloudfront_url = first.split("listening on", 1)[1].strip()
        assert cloudfront_url == f"http://127.0.0.1:{emulator_port}"
        keys: dict[str, str] = {}
        while len(keys) < 2:
            matched = EXPORT.match(emulator.wait_for(lambda line: EXPORT.match(line) is not None))
            assert matched is not None
            keys[matched.group(1)] = matched.group(2)

        command = module_command(
            "serve",
            "--upstream",
            cloudfront_url,
            "--function-url",
            FUNCTION_URL,
            "--listen",
            f"127.0.0.1:{proxy_port}",
        )
        with started(command, env=child_env(**keys)) as proxy:
            proxy.wait_for(listening_line(proxy_port))
            body = json.dumps({"item": "book", "quantity": 2}).encode()
            reply = send(
                proxy_port,
                "POST",
                "/orders?source=cli-test",
                body=body,
                headers={"Content-Type": "application/json"},
            )
            assert reply.status == 200, reply.body
            echoed = reply.json()
            assert echoed["verified"] is True
            assert echoed["access_key_id"] == keys["AWS_ACCESS_KEY_ID"]
            assert echoed["method"] == "POST"
            assert echoed["target"] == "/orders?source=cli-test"
            assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()
            assert_clean_exit(proxy, proxy.stop())
        assert_clean_exit(emulator, emulator.stop())
    # The secret is printed for the user to export, but the proxy never echoes it.
    assert keys["AWS_SECRET_ACCESS_KEY"] not in proxy.err


def test_version() -> None:
    """`python -m proxy --version` prints the package version."""
    result = run(module_command("--version"))
    assert result.returncode == 0
    assert result.stdout.strip() == f"signing-proxy {__version__}"


def test_emulate_port_in_use_exits_2() -> None:
    """The emulator on a taken port: exit 2 with one line, not a traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(module_command("emulate", "--listen", f"127.0.0.1:{port}"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"signing-proxy: --listen: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_debug_log_of_an_assumed_role_holds_no_secret(local_sts: str) -> None:
    """--log-level debug with a role assumed through STS prints no secret key or token."""
    port = free_port()
    env = child_env(
        AWS_ENDPOINT_URL_STS=local_sts,
        AWS_ACCESS_KEY_ID="AKIABASEKEY000000001",
        AWS_SECRET_ACCESS_KEY="base-secret-never-printed",
        AWS_SESSION_TOKEN="base-session-token-never-printed",
    )
    command = module_command(
        "--log-level",
        "debug",
        "serve",
        "--upstream",
        f"http://127.0.0.1:{free_port()}",
        "--function-url",
        FUNCTION_URL,
        "--role-arn",
        "arn:aws:iam::123456789012:role/debug-check",
        "--listen",
        f"127.0.0.1:{port}",
    )
    with started(command, env=env) as child:
        child.wait_for(lambda line: "listening on" in line)
        assert send(port, "GET", "/x").status == 502  # signed, then the upstream is closed
        assert child.stop() == 0
    data = f"{local_sts}/moto-api/data.json"  # moto's own state: the keys it issued
    with urllib.request.urlopen(data, timeout=GUARD) as answer:  # noqa: S310 - local http URL
        issued = json.load(answer)["sts"]["AssumedRole"]
    secrets = ["base-secret-never-printed", "base-session-token-never-printed"]
    secrets += [role[name] for role in issued for name in ("secret_access_key", "session_token")]
    assert "DEBUG" in child.err
    for secret in secrets:
        assert secret not in child.err
        assert secret not in "".join(child.stdout)


def test_public_listen_without_inbound_auth_is_refused() -> None:
    """Listening on 0.0.0.0 with an unprotected signing route stops at start with exit 2."""
    result = run(
        module_command(
            "serve",
            "--upstream",
            CLOUDFRONT,
            "--function-url",
            FUNCTION_URL,
            "--listen",
            f"0.0.0.0:{free_port()}",
        )
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "is not a loopback address" in lines[0]
    assert "route(s) default" in lines[0]


def test_malformed_request_is_logged_in_one_line_without_its_query() -> None:
    """A request aiohttp cannot parse is refused with 400 and logged without the raw line."""
    port = free_port()
    command = module_command(
        "serve", "--upstream", CLOUDFRONT, "--mode", "none", "--listen", f"127.0.0.1:{port}"
    )
    with started(command) as child:
        child.wait_for(lambda line: "listening on" in line)
        with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
            sock.sendall(b"GET /\xff?token=caller-secret-123 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            reply = sock.recv(1024)
        assert child.stop() == 0
    assert reply.startswith(b"HTTP/1.0 400") or reply.startswith(b"HTTP/1.1 400")
    assert "caller-secret-123" not in child.err
    assert "Traceback" not in child.err
    assert "refused a malformed request" in child.err
