"""The configuration: YAML parsed once at start into frozen, validated objects.

``load_config`` reads a file and ``quick_config`` takes the CLI's flags; both go through
``parse_config``, where every mistake becomes a one-line ``ConfigError`` naming the key path,
the bad value and what was expected. This module holds the file as a whole (its top-level keys,
listen:, admin: and the exposure checks); ``routes.py`` parses each route.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from proxy.config.credentials import parse_credentials
from proxy.config.env_expansion import expand_env
from proxy.config.inbound import parse_secret
from proxy.config.routes import parse_routes
from proxy.config.signing import FUNCTION_URL_EXAMPLE
from proxy.config.strict_yaml import Section, read_yaml
from proxy.config.tls import client_context, server_context
from proxy.config.values import (
    CONFIG_FOLDER,
    expect_bool,
    parse_duration,
    parse_file_path,
    parse_host_port,
    parse_inbound_host,
    show,
)
from proxy.errors import ConfigError
from proxy.model import (
    DEFAULT_CREDENTIALS,
    DEFAULT_LISTEN,
    Address,
    ClientTimeouts,
    Config,
    CredentialSet,
    TlsFiles,
)

_TOP_KEYS = (
    *("listen", "routes", "credentials", "client_timeouts", "allow_unauthenticated"),
    *("admin", "shutdown_grace", "tls", "upstream_tls", "allowed_hosts"),
    *("reload_token_env", "reload_token_file"),
)

# The flag quick_config names for each key path parse_config reports.
_FLAGS = {
    "listen": "--listen",
    "routes[0].upstream": "--upstream",
    "routes[0].function_url": "--function-url",
    "routes[0].web_function": "--web-function",
    "routes[0].mode": "--mode",
    f"credentials.{DEFAULT_CREDENTIALS}.role_arn": "--role-arn",
}


def load_config(path: str | os.PathLike[str], *, listen: str | None = None) -> Config:
    """Read the YAML config file at ``path``, expand ${VAR} references, parse and validate;
    ``listen`` (``serve --listen``) stands in for the file's listen:. Relative file paths in
    the file are taken from its folder."""
    name = os.fspath(path)
    folder = CONFIG_FOLDER.set(Path(name).resolve().parent)
    try:
        data = expand_env(read_yaml(name), os.environ)
        if listen is not None and isinstance(data, dict):
            data["listen"] = listen
        return parse_config(data)
    except ConfigError as exc:
        if listen is not None and exc.path == "listen":
            raise ConfigError("--listen", exc.message) from exc
        if exc.path:
            raise
        # A mistake in the document as a whole is located by the file's name.
        raise ConfigError(name, exc.message) from exc
    finally:
        CONFIG_FOLDER.reset(folder)


def admin_of(path: str) -> Address | None:
    """The admin address the config file at ``path`` names (None: it has none), read without
    the rest of the file: a health check must not depend on secrets or certificates."""
    data = read_yaml(path)
    value = data.get("admin") if isinstance(data, dict) else None
    if value is None:
        return None
    return _parse_admin(expand_env(value, os.environ, path="admin"), path=f"{path}: admin")


def parse_config(data: object) -> Config:
    """Validate a parsed YAML document (plain dicts, lists and scalars) into a ``Config``."""
    if data is None:
        raise ConfigError("", "the document is empty (expected a mapping with a routes: list)")
    top = Section(data, path="", keys=_TOP_KEYS, expected="a mapping with a routes: list")
    listen = top.get("listen", _parse_listen, DEFAULT_LISTEN)
    credentials = top.get("credentials", parse_credentials, (CredentialSet(DEFAULT_CREDENTIALS),))
    names = [item.name for item in credentials]
    routes = top.require(
        "routes", partial(parse_routes, credential_names=names), "a list of routes"
    )
    config = Config(
        routes=routes,
        listen=listen,
        credentials=credentials,
        client_timeouts=top.get("client_timeouts", _parse_client_timeouts, ClientTimeouts()),
        allow_unauthenticated=top.get("allow_unauthenticated", expect_bool, False),
        admin=top.get("admin", _parse_admin, None),
        shutdown_grace=top.get("shutdown_grace", parse_duration, 30.0),
        tls=top.get("tls", _parse_tls, None),
        upstream_ca_file=top.get("upstream_tls", _parse_upstream_tls, None),
        allowed_hosts=top.get("allowed_hosts", _parse_allowed_hosts, ()),
        reload_token=parse_secret(top, env_key="reload_token_env", file_key="reload_token_file"),
    )
    check_exposure(config, config.listen)
    if config.admin is not None:
        check_admin_address(config.admin, config.listen, key="admin")
    return config


def check_admin_address(admin: Address, listen: Address, *, key: str) -> None:
    """The admin listener needs a port of its own; else the proxy would fail at start with
    "address already in use", as if another program held the port."""
    if admin.overlaps(listen):
        raise ConfigError(
            key,
            f"{str(admin)!r} is the proxy's listen address {str(listen)!r} "
            "(expected another port, e.g. 127.0.0.1:9901)",
        )


def check_exposure(config: Config, listen: Address, *, bound: bool = False) -> None:
    """Refuse to listen on ``listen`` beyond loopback with signing routes anyone could call,
    unless asked. Also run against the socket actually ``bound``, at start and on every
    reload: a reload must not open what the start kept shut."""
    if listen.is_loopback or config.allow_unauthenticated:
        return
    unprotected = config.unauthenticated_routes
    if unprotected and bound:
        raise ConfigError(
            "listen",
            f"the proxy listens on {str(listen)!r}, beyond loopback (listen: changes only at a "
            f"restart), and route(s) {', '.join(unprotected)} would sign requests for anyone "
            "who reaches it (expected inbound: on each of them, or allow_unauthenticated: "
            "true; to listen on loopback, restart the proxy)",
        )
    if unprotected:
        raise ConfigError(
            "listen",
            f"{str(listen)!r} is not a loopback address, and route(s) "
            f"{', '.join(unprotected)} sign requests for anyone who reaches it "
            "(expected inbound: on each of them, a loopback listen address, or "
            "allow_unauthenticated: true)",
        )


def _parse_allowed_hosts(value: object, *, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        expected = "expected host names, e.g. [proxy.internal, '*.svc.cluster.local']"
        raise ConfigError(path, f"{show(value)} is not a list ({expected})")
    return tuple(parse_inbound_host(item, path=f"{path}[{i}]") for i, item in enumerate(value))


def _parse_tls(value: object, *, path: str) -> TlsFiles:
    fields = Section(
        value, path=path, keys=("cert_file", "key_file"), expected="cert_file and key_file"
    )
    expected = "a PEM file path"
    files = TlsFiles(
        cert_file=fields.require("cert_file", parse_file_path, expected),
        key_file=fields.require("key_file", parse_file_path, expected),
    )
    server_context(files, path=path)  # a certificate that will not load stops the start
    return files


def _parse_upstream_tls(value: object, *, path: str) -> str | None:
    fields = Section(value, path=path, keys=("ca_file",), expected="ca_file")
    ca_file = fields.get("ca_file", parse_file_path, None)
    client_context(ca_file, path=fields.at("ca_file"))
    return ca_file


def _parse_client_timeouts(value: object, *, path: str) -> ClientTimeouts:
    keys = ("headers", "body", "body_total")
    fields = Section(value, path=path, keys=keys, expected="headers, body and body_total")
    default = ClientTimeouts()
    return ClientTimeouts(
        headers=fields.get("headers", parse_duration, default.headers),
        body=fields.get("body", parse_duration, default.body),
        body_total=fields.get("body_total", parse_duration, default.body_total),
    )


def quick_config(
    *,
    upstream: str,
    function_url: str | None,
    mode: str,
    listen: str | None,
    role_arn: str | None,
    web_function: str | None = None,
) -> Config:
    """The config ``serve --upstream URL --function-url URL ...`` (or ``--web-function URL``)
    stands for; errors name flags."""
    if function_url is not None and web_function is not None:
        raise ConfigError("--web-function", "give --function-url or --web-function, not both")
    if function_url is None and web_function is None and mode == "iam":
        expected = f"expected e.g. {FUNCTION_URL_EXAMPLE}, or --mode oac or none"
        raise ConfigError("--function-url", f"required with --mode iam ({expected})")
    route: dict[str, object] = {"name": "default", "path_prefix": "/", "upstream": upstream}
    route["mode"] = mode  # validated like the file's, so a typo gets the same message
    if function_url is not None:
        route["function_url"] = function_url
    if web_function is not None:
        route["web_function"] = web_function
    data: dict[str, object] = {"routes": [route]}
    if listen is not None:
        data["listen"] = listen
    if role_arn is not None:
        # Assumed with the default chain's credentials, like `aws sts assume-role` would.
        data["credentials"] = {DEFAULT_CREDENTIALS: {"role_arn": role_arn}}
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(_FLAGS.get(exc.path, exc.path), exc.message) from exc


def _parse_listen(value: object, *, path: str) -> Address:
    return Address(*parse_host_port(value, path=path, example="127.0.0.1:8080"))


def _parse_admin(value: object, *, path: str) -> Address:
    return Address(*parse_host_port(value, path=path, example="127.0.0.1:9901"))
