"""The configuration: YAML parsed once at start into frozen, validated objects.

``load_config`` reads a file and ``quick_config`` takes the CLI's flags; both go through
``parse_config``, where every mistake becomes a one-line ``ConfigError`` naming the key path,
the bad value and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from proxy.config.credentials import parse_credentials
from proxy.config.env_expansion import expand_env
from proxy.config.inbound import parse_count, parse_inbound, parse_rate_limit, parse_secret
from proxy.config.probe import check_probe, parse_probe
from proxy.config.strict_yaml import Section, join, read_yaml
from proxy.config.tls import client_context, server_context
from proxy.config.values import (
    CONFIG_FOLDER,
    DURATION_EXAMPLE,
    REGION,
    did_you_mean,
    expect_bool,
    parse_bare_host,
    parse_file_path,
    parse_header_name,
    parse_header_value,
    parse_host_port,
    parse_inbound_host,
    parse_method,
    parse_name,
    parse_path_prefix,
    parse_region,
    parse_service,
    parse_url,
    path_problem,
    show,
)

# Re-exported: the CLI and tests parse durations and sizes the way the file does.
from proxy.config.values import parse_duration as parse_duration
from proxy.config.values import parse_size as parse_size
from proxy.errors import ConfigError
from proxy.model import (
    DEFAULT_CREDENTIALS,
    DEFAULT_LISTEN,
    DEFAULT_MAX_BODY,
    Address,
    ClientTimeouts,
    Config,
    CredentialSet,
    HeaderRules,
    Mode,
    Probe,
    Retries,
    Route,
    SigningTarget,
    Timeouts,
    TlsFiles,
    Upstream,
)

UPSTREAM_EXAMPLE = "https://d111111abcdef8.cloudfront.net"
FUNCTION_URL_EXAMPLE = "https://abc123xyz.lambda-url.eu-central-1.on.aws"
_SIGN_HOST_EXAMPLE = "abc123.execute-api.eu-central-1.amazonaws.com"

_TOP_KEYS = (
    *("listen", "routes", "credentials", "client_timeouts", "allow_unauthenticated"),
    *("admin", "shutdown_grace", "tls", "upstream_tls", "allowed_hosts"),
    *("reload_token_env", "reload_token_file"),
)
_ROUTE_KEYS = (
    *("name", "path_prefix", "upstream", "mode", "function_url", "sign", "methods", "host"),
    *("strip_prefix", "headers", "max_body", "timeouts", "credentials", "inbound"),
    *("rate_limit", "max_concurrent", "max_connections", "retries", "probe"),
    *("allowed_origins", "allow_encoded_slashes"),
)
_MODES: tuple[Mode, ...] = ("iam", "oac", "none")

# Host names that imply the signing region and service.
_FUNCTION_HOST = re.compile(r"[a-z0-9]+\.lambda-url\.([^.]+)\.on\.aws")
_EXECUTE_API_HOST = re.compile(rf"[a-z0-9]+\.execute-api\.({REGION})\.amazonaws\.com(?:\.cn)?")


# The flag quick_config names for each key path parse_config reports.
_FLAGS = {
    "listen": "--listen",
    "routes[0].upstream": "--upstream",
    "routes[0].function_url": "--function-url",
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
        "routes", partial(_parse_routes, credential_names=names), "a list of routes"
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
) -> Config:
    """The config ``serve --upstream URL --function-url URL ...`` stands for; errors name flags."""
    if function_url is None and mode == "iam":
        expected = f"expected e.g. {FUNCTION_URL_EXAMPLE}, or --mode oac or none"
        raise ConfigError("--function-url", f"required with --mode iam ({expected})")
    route: dict[str, object] = {"name": "default", "path_prefix": "/", "upstream": upstream}
    route["mode"] = mode  # validated like the file's, so a typo gets the same message
    if function_url is not None:
        route["function_url"] = function_url
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


def _parse_routes(
    value: object, *, path: str, credential_names: Sequence[str]
) -> tuple[Route, ...]:
    expected = "a list of routes, each with name and upstream"
    if not isinstance(value, list) or not value:
        shown = "an empty list" if value == [] else show(value)
        raise ConfigError(path, f"{shown} is not a list of routes (expected {expected})")
    routes: list[Route] = []
    for index, item in enumerate(value):
        route = _parse_route(item, path=f"{path}[{index}]", credential_names=credential_names)
        first = next((i for i, other in enumerate(routes) if other.name == route.name), None)
        if first is not None:
            raise ConfigError(
                f"{path}[{index}].name",
                f"{route.name!r} is already the name of {path}[{first}] (expected a unique name)",
            )
        routes.append(route)
    return tuple(routes)


def _parse_route(value: object, *, path: str, credential_names: Sequence[str]) -> Route:
    fields = Section(value, path=path, keys=_ROUTE_KEYS, expected="a route with name and upstream")
    route = Route(
        name=fields.require("name", partial(parse_name, what="route"), "a route name, e.g. orders"),
        upstream=fields.require("upstream", _parse_upstream, f"e.g. {UPSTREAM_EXAMPLE}"),
        path_prefix=fields.get("path_prefix", parse_path_prefix, "/"),
        mode=fields.get("mode", _parse_mode, "iam"),
        signing=_parse_signing(fields),
        methods=fields.get("methods", _parse_methods, None),
        host=fields.get("host", parse_inbound_host, None),
        strip_prefix=fields.get("strip_prefix", expect_bool, False),
        headers=fields.get("headers", _parse_headers, HeaderRules()),
        max_body=fields.get("max_body", parse_size, DEFAULT_MAX_BODY),
        timeouts=fields.get("timeouts", _parse_timeouts, Timeouts()),
        retries=fields.get("retries", _parse_retries, Retries()),
        credentials=fields.get(
            "credentials", partial(_parse_set_name, names=credential_names), DEFAULT_CREDENTIALS
        ),
        inbound=fields.get("inbound", parse_inbound, None),
        rate_limit=fields.get("rate_limit", parse_rate_limit, None),
        max_concurrent=fields.get("max_concurrent", parse_count, None),
        max_connections=fields.get("max_connections", parse_count, None),
        probe=fields.get("probe", parse_probe, Probe()),
        allowed_origins=fields.get("allowed_origins", _parse_origins, frozenset[str]()),
        allow_encoded_slashes=fields.get("allow_encoded_slashes", expect_bool, False),
    )
    check_probe(route, path=join(path, "probe"))
    if route.mode == "iam" and route.signing is None:
        raise ConfigError(
            path, "mode iam needs function_url or sign (the host the signature is computed for)"
        )
    return route


def _parse_origins(value: object, *, path: str) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise ConfigError(
            path, f"{show(value)} is not a list of origins (expected e.g. [http://localhost:3000])"
        )
    return frozenset(_parse_origin(item, path=f"{path}[{i}]") for i, item in enumerate(value))


def _parse_origin(value: object, *, path: str) -> str:
    """An origin as browsers send it in Origin: ``scheme://host[:port]``, lower-case, the
    scheme's default port left out."""
    example = "expected scheme://host[:port] as a browser's address bar shows it, e.g. "
    example += "http://localhost:3000"
    if value in ("*", "null"):
        why = "any site" if value == "*" else "sandboxed frames and local files of any site"
        raise ConfigError(path, f"{show(value)} would let {why} call your function ({example})")
    url = parse_url(value, path=path, schemes=("http", "https"), example="http://localhost:3000")
    if url.path not in ("", "/"):
        raise ConfigError(path, f"{show(value)} has a path ({example})")
    default = 443 if url.scheme == "https" else 80
    port = "" if url.port in (None, default) else f":{url.port}"
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host.lower()}{port}"


def _parse_upstream(value: object, *, path: str) -> Upstream:
    url = parse_url(value, path=path, schemes=("http", "https"), example=UPSTREAM_EXAMPLE)
    problem = path_problem(url.path) if url.path else None
    if problem:
        expected = f"expected e.g. {UPSTREAM_EXAMPLE}/prod"
        raise ConfigError(path, f"{show(value)} has a path that {problem} ({expected})")
    base_path = url.path.rstrip("/")
    if url.scheme == "https":
        return Upstream("https", url.host, url.port or 443, base_path)
    return Upstream("http", url.host, url.port or 80, base_path)


def _parse_mode(value: object, *, path: str) -> Mode:
    for mode in _MODES:
        if value == mode:
            return mode
    hint = did_you_mean(value, _MODES)
    raise ConfigError(path, f"{show(value)} is not a mode (expected one of: iam, oac, none){hint}")


def _parse_methods(value: object, *, path: str) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        shown = "an empty list" if value == [] else show(value)
        expected = "expected e.g. [GET, POST]; leave methods out to allow every method"
        raise ConfigError(path, f"{shown} is not a list of methods ({expected})")
    return frozenset(parse_method(item, path=f"{path}[{i}]") for i, item in enumerate(value))


def _parse_set_name(value: object, *, path: str, names: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in names:
        expected = f"expected one of: {', '.join(names)}"
        hint = did_you_mean(value, names)
        raise ConfigError(path, f"{show(value)} is not a credential set ({expected}){hint}")
    return value


def _parse_signing(route: Section) -> SigningTarget | None:
    """function_url's target, with the fields given in sign: overriding it."""
    base = route.get("function_url", _parse_function_url, None)
    if route.fields.get("sign") is None:
        return base
    return _parse_sign(route.fields["sign"], path=route.at("sign"), base=base)


def _parse_function_url(value: object, *, path: str) -> SigningTarget:
    url = parse_url(value, path=path, schemes=("https",), example=FUNCTION_URL_EXAMPLE)
    match = _FUNCTION_HOST.fullmatch(url.host)
    if match is None:
        shape = "https://<url-id>.lambda-url.<region>.on.aws"
        raise ConfigError(path, f"{show(value)} is not a function URL (expected {shape})")
    if url.port is not None or url.path not in ("", "/"):
        expected = f"expected only scheme and host, e.g. {FUNCTION_URL_EXAMPLE}"
        raise ConfigError(path, f"{show(value)} has a port or path ({expected})")
    return SigningTarget(url.host, parse_region(match[1], path=path), "lambda")


def _parse_sign(value: object, *, path: str, base: SigningTarget | None) -> SigningTarget:
    sign = Section(
        value, path=path, keys=("host", "region", "service"), expected="host, region and service"
    )
    defaults = base
    if "host" in sign:
        host = sign.get("host", partial(parse_bare_host, example=_SIGN_HOST_EXAMPLE), "")
        defaults = implied_target(host, path=sign.at("host")) or base
    elif base is not None:
        host = base.host
    else:
        expected = f"expected a bare host name such as {_SIGN_HOST_EXAMPLE}"
        raise ConfigError(sign.at("host"), f"required without function_url ({expected})")
    region = sign.get("region", parse_region, defaults.region if defaults else None)
    service = sign.get("service", parse_service, defaults.service if defaults else None)
    implied = f"required, as host {host!r} implies none"
    if region is None:
        raise ConfigError(
            sign.at("region"), f"{implied} (expected an AWS region, e.g. eu-central-1)"
        )
    if service is None:
        raise ConfigError(sign.at("service"), f"{implied} (expected e.g. execute-api or lambda)")
    return SigningTarget(host, region, service)


def implied_target(host: str, *, path: str | None = None) -> SigningTarget | None:
    """The target a function-URL or execute-api host name implies, region and service included;
    with ``path``, a function-URL host whose region is no AWS region is a ConfigError there."""
    if match := _FUNCTION_HOST.fullmatch(host):
        if re.fullmatch(REGION, match[1]):
            return SigningTarget(host, match[1], "lambda")
        if path is not None:
            parse_region(match[1], path=path)  # raises, naming the region
    if match := _EXECUTE_API_HOST.fullmatch(host):
        return SigningTarget(host, match[1], "execute-api")
    return None


def _parse_headers(value: object, *, path: str) -> HeaderRules:
    rules = Section(
        value, path=path, keys=("add", "remove"), expected="add and remove", null_ok=True
    )
    add = rules.get("add", _parse_header_add, ())
    remove = rules.get("remove", _parse_header_remove, frozenset[str]())
    clash = sorted(remove & {name.lower() for name, _ in add})
    if clash:
        expected = "expected each header either added or removed"
        raise ConfigError(rules.at("remove"), f"{clash[0]!r} is also in add ({expected})")
    return HeaderRules(add=add, remove=remove)


def _parse_header_add(value: object, *, path: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        expected = "expected header names and values, e.g. X-Team: orders"
        raise ConfigError(path, f"{show(value)} is not a mapping ({expected})")
    spelling: dict[str, str] = {}  # lower-case name -> the name as first written
    pairs: list[tuple[str, str]] = []
    for key, item in value.items():
        name = parse_header_name(key, path=join(path, key))
        if name.lower().startswith("x-amz-"):
            # Added after signing, it would travel unsigned, and AWS rejects unsigned x-amz-*.
            expected = "expected a header outside x-amz-*, which AWS requires to be signed"
            raise ConfigError(join(path, key), f"{name!r} cannot be added ({expected})")
        if name.lower() in spelling:
            expected = "expected each header once; names are case-insensitive"
            message = f"{name!r} repeats {spelling[name.lower()]!r} ({expected})"
            raise ConfigError(join(path, key), message)
        spelling[name.lower()] = name
        pairs.append((name, parse_header_value(item, path=join(path, key))))
    return tuple(pairs)


def _parse_header_remove(value: object, *, path: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise ConfigError(
            path, f"{show(value)} is not a list (expected header names, e.g. [X-Debug])"
        )
    names = (parse_header_name(item, path=f"{path}[{i}]") for i, item in enumerate(value))
    return frozenset(name.lower() for name in names)


def _parse_timeouts(value: object, *, path: str) -> Timeouts:
    expected = "connect, first_byte, idle and total"
    bounds = Section(
        value,
        path=path,
        keys=("connect", "first_byte", "idle", "total"),
        expected=expected,
        null_ok=True,
    )
    default = Timeouts()
    return Timeouts(
        connect=bounds.get("connect", parse_duration, default.connect),
        first_byte=bounds.get("first_byte", parse_duration, default.first_byte),
        idle=bounds.get("idle", parse_duration, default.idle),
        total=bounds.get("total", _parse_total, default.total),
    )


def _parse_retries(value: object, *, path: str) -> Retries:
    keys = ("attempts", "backoff", "max_backoff", "budget", "statuses", "methods")
    fields = Section(value, path=path, keys=keys, expected=", ".join(keys), null_ok=True)
    default = Retries()
    return Retries(
        attempts=fields.get("attempts", partial(parse_count, example=3), default.attempts),
        backoff=fields.get("backoff", parse_duration, default.backoff),
        max_backoff=fields.get("max_backoff", parse_duration, default.max_backoff),
        budget=fields.get("budget", parse_duration, default.budget),
        statuses=fields.get("statuses", _parse_statuses, default.statuses),
        methods=fields.get("methods", _parse_methods, default.methods),
    )


def _parse_statuses(value: object, *, path: str) -> frozenset[int]:
    expected = "expected a list of statuses from 500 to 599, or 429, e.g. [502, 503]"
    if not isinstance(value, list):
        raise ConfigError(path, f"{show(value)} is not a list ({expected})")
    for index, item in enumerate(value):
        if (
            isinstance(item, bool)
            or not isinstance(item, int)
            or not (item == 429 or 500 <= item <= 599)
        ):
            raise ConfigError(f"{path}[{index}]", f"{show(item)} is not retryable ({expected})")
    return frozenset(value)


def _parse_total(value: object, *, path: str) -> float | None:
    # YAML reads an unquoted `off` as false; both mean no overall bound.
    if value is None or value is False or value == "off":
        return None
    return parse_duration(value, path=path, expected=f"{DURATION_EXAMPLE}, or off")
