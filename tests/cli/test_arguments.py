"""What a new user types in the first ten minutes: options after the subcommand, flags next to
--config, health finding the admin port, and errors instead of tracebacks."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from proxy.cli.arguments import build_parser as _parser
from proxy.config.load import load_config, parse_config
from proxy.errors import ConfigError
from proxy.serve.server import running
from tests.processes import (
    CLOUDFRONT,
    FUNCTION_URL,
    GUARD,
    child_env,
    free_port,
    module_command,
    run,
    started,
)
from tests.stack import FIXED_KEYS

SUBCOMMANDS = {
    "serve": ["serve", "--upstream", CLOUDFRONT, "--mode", "none"],
    "check": ["check", "--config", "f.yaml"],
    "sign": ["sign", "https://abc.lambda-url.eu-central-1.on.aws/"],
    "health": ["health"],
    "emulate": ["emulate"],
    "demo": ["demo"],
}


def _config(path: Path, *, port: int, admin: int | None = None) -> Path:
    admin_line = f"admin: 127.0.0.1:{admin}\n" if admin is not None else ""
    path.write_text(
        f"listen: 127.0.0.1:{port}\n{admin_line}"
        "routes:\n"
        f"  - {{name: orders, upstream: {CLOUDFRONT}, function_url: {FUNCTION_URL}}}\n"
    )
    return path


# --- options where people put them -------------------------------------------------------------


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
@pytest.mark.parametrize("where", ["before", "after"])
def test_log_options_are_taken_before_and_after_every_subcommand(command: str, where: str) -> None:
    """--log-level and --log-format work on either side of the subcommand's name."""
    name, *rest = SUBCOMMANDS[command]
    options = ["--log-format", "json", "--log-level", "debug"]
    argv = [*options, name, *rest] if where == "before" else [name, *rest, *options]
    args = _parser().parse_args(argv)
    assert (args.log_format, args.log_level) == ("json", "debug")


def test_the_subcommand_default_log_level_stays_when_none_is_given() -> None:
    """Without --log-level, each subcommand keeps its own default (demo: warnings only)."""
    args = _parser().parse_args(["demo"])
    assert not hasattr(args, "log_level")
    assert args.default_log_level == "warning"


def test_serve_with_options_after_it_logs_json_at_debug(tmp_path: Path) -> None:
    """`serve --config f.yaml --log-format json --log-level debug` runs and logs JSON lines."""
    config = _config(tmp_path / "proxy.yaml", port=free_port())
    command = module_command(
        "serve", "--config", str(config), "--log-format", "json", "--log-level", "debug"
    )
    with started(
        command, env=child_env(AWS_ACCESS_KEY_ID="AKIA0", AWS_SECRET_ACCESS_KEY="s")
    ) as proxy:
        proxy.wait_for(lambda line: "listening on" in line)
        assert proxy.stop() == 0
    lines = [json.loads(line) for line in proxy.stderr if line.strip()]
    assert lines
    assert {"time", "level", "logger", "message"} <= set(lines[0])


# --- flags next to --config --------------------------------------------------------------------


def test_listen_and_admin_flags_override_the_file_and_the_banner_says_so(tmp_path: Path) -> None:
    """--listen and --admin with --config take the place of the file's listen: and admin:."""
    config = _config(tmp_path / "proxy.yaml", port=free_port(), admin=free_port())
    port, admin = free_port(), free_port()
    command = module_command(
        "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
        "--admin", f"127.0.0.1:{admin}",
    )  # fmt: skip
    env = child_env(AWS_ACCESS_KEY_ID="AKIA0", AWS_SECRET_ACCESS_KEY="s")
    with started(command, env=env) as proxy:
        banner = proxy.wait_for(lambda line: "listening on" in line)
        admin_line = proxy.wait_for(lambda line: "admin on" in line)
        assert proxy.stop() == 0
    out = "".join(proxy.stdout)
    assert f"http://127.0.0.1:{port}" in banner
    assert f"http://127.0.0.1:{admin}" in admin_line
    assert f"(--listen overrides listen: of {config})" in out
    assert f"(--admin overrides admin: of {config})" in out


@pytest.mark.parametrize(
    "flag",
    [
        ["--mode", "none"],
        ["--upstream", CLOUDFRONT],
        ["--function-url", FUNCTION_URL],
        ["--role-arn", "arn:aws:iam::123456789012:role/x"],
    ],
    ids=lambda flag: flag[0],
)
@pytest.mark.parametrize("source", ["--config", "SIGNING_PROXY_CONFIG"])
def test_quick_form_flags_with_a_config_file_are_refused_naming_the_flag(
    tmp_path: Path, flag: list[str], source: str
) -> None:
    """--mode, --upstream, --function-url and --role-arn make the route of the quick form:
    next to a config file (flag or environment) they exit 2 naming the flag, not ignored."""
    config = _config(tmp_path / "proxy.yaml", port=free_port())
    given = ["--config", str(config)] if source == "--config" else []
    env = child_env(SIGNING_PROXY_CONFIG=str(config)) if source != "--config" else child_env()
    result = run(module_command("serve", *given, *flag), env=env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"signing-proxy: {flag[0]}: ")
    assert source in line


def test_a_bad_listen_flag_with_a_config_file_names_the_flag(tmp_path: Path) -> None:
    """A --listen that does not parse is reported as --listen's, not the file's."""
    config = _config(tmp_path / "proxy.yaml", port=free_port())
    result = run(module_command("serve", "--config", str(config), "--listen", "nowhere"))
    assert result.returncode == 2
    assert result.stderr.startswith("signing-proxy: --listen: 'nowhere'")


# --- health finds the admin port ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["--config", "SIGNING_PROXY_CONFIG", "SIGNING_PROXY_ADMIN"])
def test_health_finds_the_admin_port_itself(tmp_path: Path, how: str) -> None:
    """`signing-proxy health` asks the admin address the config or SIGNING_PROXY_ADMIN names."""
    admin = free_port()
    config = _config(tmp_path / "proxy.yaml", port=free_port(), admin=admin)
    env = child_env(AWS_ACCESS_KEY_ID="AKIA0", AWS_SECRET_ACCESS_KEY="s")
    with started(module_command("serve", "--config", str(config)), env=env) as proxy:
        proxy.wait_for(lambda line: "admin on" in line)
        if how == "--config":
            result = run(module_command("health", "--config", str(config)))
        elif how == "SIGNING_PROXY_CONFIG":
            result = run(module_command("health"), env=child_env(SIGNING_PROXY_CONFIG=str(config)))
        else:
            admin_env = child_env(SIGNING_PROXY_ADMIN=f"0.0.0.0:{admin}")
            result = run(module_command("health"), env=admin_env)
        assert proxy.stop() == 0
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"http://127.0.0.1:{admin}/healthz: 200"


def test_health_fails_when_nothing_answers_there(tmp_path: Path) -> None:
    """An admin address where nothing listens: exit 1 with the URL and the reason."""
    admin = free_port()
    result = run(module_command("health"), env=child_env(SIGNING_PROXY_ADMIN=f"127.0.0.1:{admin}"))
    assert result.returncode == 1
    assert result.stdout.startswith(f"http://127.0.0.1:{admin}/healthz: ")


# --- errors, not tracebacks --------------------------------------------------------------------


def test_output_piped_to_a_reader_that_left_ends_quietly(tmp_path: Path) -> None:
    """`signing-proxy check ... | head -1`: a closed pipe ends the command without a traceback."""
    config = _config(tmp_path / "proxy.yaml", port=free_port())
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone before the first line is written
    try:
        process = subprocess.run(  # noqa: S603 - this interpreter, this project
            [sys.executable, "-m", "proxy", "check", "--config", str(config), "--timeout", "1s"],
            stdout=writer,
            stderr=subprocess.PIPE,
            env=child_env(),
            timeout=GUARD,
            check=False,
        )
    finally:
        os.close(writer)
    assert b"Traceback" not in process.stderr, process.stderr.decode()
    assert b"BrokenPipeError" not in process.stderr
    assert process.returncode == 141  # 128 + SIGPIPE, as if the signal had ended it


def test_a_missing_tls_file_names_its_key(tmp_path: Path) -> None:
    """tls.cert_file (or key_file) that does not exist is named, with its path."""
    text = _config(tmp_path / "proxy.yaml", port=0).read_text()
    (tmp_path / "proxy.yaml").write_text(text + "tls: {cert_file: nowhere.pem, key_file: k.pem}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "proxy.yaml")
    assert caught.value.path == "tls.cert_file"
    assert f"cannot read {tmp_path / 'nowhere.pem'}" in caught.value.message


def test_relative_file_paths_are_taken_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cert_file, key_file and secret_file written relative work from any working directory."""
    authority = trustme.CA()
    issued = authority.issue_cert("localhost")
    folder = tmp_path / "etc"
    folder.mkdir()
    issued.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    issued.private_key_pem.write_to_path(str(folder / "key.pem"))
    (folder / "hook-secret").write_text("s3cret\n")
    config = _config(folder / "proxy.yaml", port=0)
    config.write_text(
        config.read_text().replace("}\n", ", inbound: {type: github, secret_file: hook-secret}}\n")
        + "tls: {cert_file: cert.pem, key_file: key.pem}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config("../etc/proxy.yaml")
    assert loaded.tls is not None
    assert loaded.tls.cert_file == str(folder / "cert.pem")
    inbound = loaded.routes[0].inbound
    assert inbound is not None
    assert inbound.secret is not None
    assert inbound.secret.value == b"s3cret"


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ({"function_url": "https://abc.lambda-url.eu-central.on.aws"}, "routes[0].function_url"),
        ({"sign": {"host": "abc.lambda-url.eu-central.on.aws"}}, "routes[0].sign.host"),
    ],
)
def test_a_function_host_without_an_aws_region_is_refused_at_load(
    route: dict[str, object], path: str
) -> None:
    """abc.lambda-url.eu-central.on.aws names no AWS region: refused like sign.region is."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"routes": [{"name": "r", "upstream": CLOUDFRONT, **route}]})
    assert caught.value.path == path
    assert "'eu-central' is not an AWS region" in caught.value.message


def test_sign_with_a_function_host_without_a_region_says_so() -> None:
    """`signing-proxy sign` names the host's bad region instead of asking for --region."""
    result = run(module_command("sign", "https://abc.lambda-url.eu-central.on.aws/x"))
    assert result.returncode == 2
    assert "'eu-central' is not an AWS region" in result.stderr


async def test_a_plain_http_upstream_beyond_this_machine_starts_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """http:// to another host (never contacted here) warns of clear text; to 127.0.0.1 not."""
    document = {
        "listen": "127.0.0.1:0",
        "routes": [
            {"name": "far", "path_prefix": "/far", "upstream": "http://192.0.2.10", "mode": "none"},
            {"name": "near", "upstream": "http://127.0.0.1:9", "mode": "none"},
        ],
    }
    with caplog.at_level(logging.WARNING, logger="signing_proxy"):
        async with running(parse_config(document), credential_overrides=FIXED_KEYS):
            pass
    warned = [r.getMessage() for r in caplog.records if "plain HTTP" in r.getMessage()]
    assert warned == [
        "route far sends requests to http://192.0.2.10 over plain HTTP: anyone on the way can "
        "read them (signatures, tokens and bodies) and change them; use https://"
    ]


@pytest.mark.parametrize(
    "text",
    ["routes:\n\t- name: a\n", "routes:\n  - name: a\n    upstream:\thttps://x\n"],
    ids=["indent", "after-colon"],
)
def test_a_tab_in_yaml_says_that_yaml_forbids_tabs(tmp_path: Path, text: str) -> None:
    """A tab where YAML allows none gets a message that says so."""
    (tmp_path / "proxy.yaml").write_text(text)
    with pytest.raises(ConfigError, match="YAML forbids tabs"):
        load_config(tmp_path / "proxy.yaml")


async def test_a_reload_of_one_route_says_route(caplog: pytest.LogCaptureFixture) -> None:
    """The reload's log line counts in words that agree: 1 route, 2 routes."""
    document = {
        "listen": "127.0.0.1:0",
        "routes": [{"name": "r", "upstream": CLOUDFRONT, "mode": "none"}],
    }
    with caplog.at_level(logging.INFO, logger="signing_proxy"):
        async with running(parse_config(document), credential_overrides=FIXED_KEYS) as proxy:
            await proxy.reload()
    assert "reload: 1 route in effect" in caplog.text
