"""One route of the config: its keys, upstream, path, methods and host, header rules, timeouts
and retries; the signing target comes from ``signing.py``, inbound: and probe: from theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from proxy.config.inbound import parse_count, parse_inbound, parse_rate_limit
from proxy.config.probe import check_probe, parse_probe
from proxy.config.signing import parse_signing
from proxy.config.strict_yaml import Section, join
from proxy.config.values import (
    DURATION_EXAMPLE,
    did_you_mean,
    expect_bool,
    parse_duration,
    parse_header_name,
    parse_header_value,
    parse_inbound_host,
    parse_method,
    parse_name,
    parse_path_prefix,
    parse_size,
    parse_url,
    path_problem,
    show,
)
from proxy.errors import ConfigError
from proxy.model import (
    DEFAULT_CREDENTIALS,
    DEFAULT_MAX_BODY,
    HeaderRules,
    Mode,
    Probe,
    Retries,
    Route,
    Timeouts,
    Upstream,
)

UPSTREAM_EXAMPLE = "https://d111111abcdef8.cloudfront.net"

_ROUTE_KEYS = (
    *("name", "path_prefix", "upstream", "mode", "function_url", "web_function", "sign"),
    *("methods", "host"),
    *("strip_prefix", "headers", "max_body", "timeouts", "credentials", "inbound"),
    *("rate_limit", "max_concurrent", "max_connections", "retries", "probe"),
    *("allowed_origins", "allow_encoded_slashes"),
)
_MODES: tuple[Mode, ...] = ("iam", "oac", "none")


def parse_routes(value: object, *, path: str, credential_names: Sequence[str]) -> tuple[Route, ...]:
    """The routes: list, each route parsed and its name unique."""
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
        signing=parse_signing(fields),
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
            path,
            "mode iam needs function_url or sign (the host the signature is computed for), "
            "or web_function",
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
