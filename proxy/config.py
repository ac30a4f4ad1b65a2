"""The configuration: YAML parsed once at start into frozen, validated objects.

``load_config`` reads a file and ``quick_config`` takes the CLI's flags; both go through
``parse_config``, where every mistake becomes a one-line ``ConfigError`` naming the key path,
the bad value and what was expected. ``proxy.strict_yaml`` reads the file and ``proxy.values``
parses single values; this module knows the shape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, Protocol, TypeVar

from proxy.errors import ConfigError
from proxy.strict_yaml import read_yaml
from proxy.values import (
    DURATION_EXAMPLE,
    REGION,
    did_you_mean,
    expect_bool,
    parse_bare_host,
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
from proxy.values import parse_duration as parse_duration
from proxy.values import parse_size as parse_size

Mode = Literal["iam", "oac", "none"]

MIB = 1024 * 1024
DEFAULT_MAX_BODY = 6 * MIB  # Lambda's cap for a buffered request payload
DEFAULT_CREDENTIALS = "default"  # the name of the botocore default chain


@dataclass(frozen=True, slots=True)
class Address:
    """A host and port to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SigningTarget:
    """What a signature is computed for: the function-URL host, its region, the service."""

    host: str
    region: str
    service: str


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where requests are sent; ``base_path`` ("" or "/prefix") is prepended to every path."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    base_path: str = ""

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``, the port only when it is not the scheme's default."""
        return f"{self.scheme}://{self.host_header}"

    @property
    def host_header(self) -> str:
        """The Host header the upstream receives."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on one upstream exchange, in seconds; ``total`` None means no overall bound."""

    connect: float = 10.0
    # A buffered Lambda function may run 15 minutes before its first byte; allow a minute more.
    first_byte: float = 960.0
    idle: float = 960.0
    total: float | None = None


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """Headers a route sets on, or removes from, every forwarded request."""

    add: tuple[tuple[str, str], ...] = ()
    remove: frozenset[str] = frozenset()  # lower-case names


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of ``routes:``; routes are tried in order and the first match wins."""

    name: str
    upstream: Upstream
    path_prefix: str = "/"
    mode: Mode = "iam"
    signing: SigningTarget | None = None  # set for mode "iam"
    methods: frozenset[str] | None = None  # None: every method
    host: str | None = None  # inbound Host to match, lower-case; "*.example.com" allowed
    strip_prefix: bool = False
    headers: HeaderRules = field(default_factory=HeaderRules)
    max_body: int = DEFAULT_MAX_BODY
    timeouts: Timeouts = field(default_factory=Timeouts)
    credentials: str = DEFAULT_CREDENTIALS


@dataclass(frozen=True, slots=True)
class CredentialSet:
    """One entry of ``credentials:``: a botocore source, optionally with a role assumed on top."""

    name: str
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str | None = None
    duration: int | None = None  # seconds
    source: str | None = None  # another set whose credentials assume role_arn (role chaining)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    routes: tuple[Route, ...]
    listen: Address = field(default_factory=lambda: Address("127.0.0.1", 8080))
    credentials: tuple[CredentialSet, ...] = (CredentialSet(DEFAULT_CREDENTIALS),)

    def credential_set(self, name: str) -> CredentialSet:
        """The set called ``name``; validation guarantees that every route's set exists."""
        for item in self.credentials:
            if item.name == name:
                return item
        raise KeyError(name)


DEFAULT_LISTEN = Address("127.0.0.1", 8080)
UPSTREAM_EXAMPLE = "https://d111111abcdef8.cloudfront.net"
FUNCTION_URL_EXAMPLE = "https://abc123xyz.lambda-url.eu-central-1.on.aws"
_SIGN_HOST_EXAMPLE = "abc123.execute-api.eu-central-1.amazonaws.com"

_TOP_KEYS = ("listen", "routes", "credentials")
_ROUTE_KEYS = (
    *("name", "path_prefix", "upstream", "mode", "function_url", "sign", "methods", "host"),
    *("strip_prefix", "headers", "max_body", "timeouts", "credentials"),
)
_SET_KEYS = ("profile", "role_arn", "external_id", "session_name", "duration", "source")
_ROLE_ONLY_KEYS = ("external_id", "session_name", "duration", "source")  # AssumeRole arguments
_MODES: tuple[Mode, ...] = ("iam", "oac", "none")

# Host names that imply the signing region and service.
_FUNCTION_HOST = re.compile(r"[a-z0-9]+\.lambda-url\.([^.]+)\.on\.aws")
_EXECUTE_API_HOST = re.compile(rf"[a-z0-9]+\.execute-api\.({REGION})\.amazonaws\.com(?:\.cn)?")

_ROLE_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_PROFILE = re.compile(r"[^\s\x00-\x1f\x7f]+(?: [^\s\x00-\x1f\x7f]+)*")
_ROLE_SECONDS = (15 * 60, 12 * 3600)  # what AssumeRole accepts as DurationSeconds
_CHAINED_ROLE_SECONDS = 3600  # AWS's cap for a role assumed with another role's credentials

# The flag quick_config names for each key path parse_config reports.
_FLAGS = {
    "listen": "--listen",
    "routes[0].upstream": "--upstream",
    "routes[0].function_url": "--function-url",
    "routes[0].mode": "--mode",
    f"credentials.{DEFAULT_CREDENTIALS}.role_arn": "--role-arn",
}

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class _Parser(Protocol[T_co]):
    def __call__(self, value: object, *, path: str) -> T_co: ...


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate the YAML config file at ``path``."""
    name = os.fspath(path)
    try:
        return parse_config(read_yaml(name))
    except ConfigError as exc:
        if exc.path:
            raise
        # A mistake in the document as a whole is located by the file's name.
        raise ConfigError(name, exc.message) from exc


def parse_config(data: object) -> Config:
    """Validate a parsed YAML document (plain dicts, lists and scalars) into a ``Config``."""
    if data is None:
        raise ConfigError("", "the document is empty (expected a mapping with a routes: list)")
    top = _Section(data, path="", keys=_TOP_KEYS, expected="a mapping with a routes: list")
    listen = top.get("listen", _parse_listen, DEFAULT_LISTEN)
    credentials = top.get("credentials", _parse_credentials, (CredentialSet(DEFAULT_CREDENTIALS),))
    names = [item.name for item in credentials]
    routes = top.require(
        "routes", partial(_parse_routes, credential_names=names), "a list of routes"
    )
    return Config(routes=routes, listen=listen, credentials=credentials)


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


class _Section:
    """One mapping from the file, read key by key; unknown keys are refused up front."""

    def __init__(
        self,
        value: object,
        *,
        path: str,
        keys: Collection[str],
        expected: str,
        null_ok: bool = False,
    ) -> None:
        if value is None and null_ok:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(path, f"{show(value)} is not a mapping (expected {expected})")
        for key in value:
            if key not in keys:
                choices = ", ".join(sorted(keys))
                hint = did_you_mean(key, keys)
                raise ConfigError(
                    _join(path, key), f"unknown key (expected one of: {choices}){hint}"
                )
        self.path = path
        self.fields: dict[str, object] = {str(key): item for key, item in value.items()}

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def at(self, key: str) -> str:
        """The key path of ``key`` in this section."""
        return _join(self.path, key)

    def get(self, key: str, parse: _Parser[T], default: T) -> T:
        """``key`` parsed, or ``default`` when it is absent."""
        return parse(self.fields[key], path=self.at(key)) if key in self.fields else default

    def require(self, key: str, parse: _Parser[T], expected: str) -> T:
        """``key`` parsed; its absence is an error saying what was ``expected``."""
        if key not in self.fields:
            raise ConfigError(self.at(key), f"required (expected {expected})")
        return parse(self.fields[key], path=self.at(key))


def _join(path: str, key: object) -> str:
    name = key if isinstance(key, str) else show(key)
    return f"{path}.{name}" if path else name


def _parse_listen(value: object, *, path: str) -> Address:
    return Address(*parse_host_port(value, path=path, example="127.0.0.1:8080"))


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
    fields = _Section(value, path=path, keys=_ROUTE_KEYS, expected="a route with name and upstream")
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
        credentials=fields.get(
            "credentials", partial(_parse_set_name, names=credential_names), DEFAULT_CREDENTIALS
        ),
    )
    if route.mode == "iam" and route.signing is None:
        raise ConfigError(
            path, "mode iam needs function_url or sign (the host the signature is computed for)"
        )
    return route


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


def _parse_signing(route: _Section) -> SigningTarget | None:
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
    sign = _Section(
        value, path=path, keys=("host", "region", "service"), expected="host, region and service"
    )
    defaults = base
    if "host" in sign:
        host = sign.get("host", partial(parse_bare_host, example=_SIGN_HOST_EXAMPLE), "")
        defaults = _implied_target(host) or base
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


def _implied_target(host: str) -> SigningTarget | None:
    """The target a function-URL or execute-api host name implies, region and service included."""
    if (match := _FUNCTION_HOST.fullmatch(host)) and re.fullmatch(REGION, match[1]):
        return SigningTarget(host, match[1], "lambda")
    if match := _EXECUTE_API_HOST.fullmatch(host):
        return SigningTarget(host, match[1], "execute-api")
    return None


def _parse_headers(value: object, *, path: str) -> HeaderRules:
    rules = _Section(
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
        name = parse_header_name(key, path=_join(path, key))
        if name.lower().startswith("x-amz-"):
            # Added after signing, it would travel unsigned, and AWS rejects unsigned x-amz-*.
            expected = "expected a header outside x-amz-*, which AWS requires to be signed"
            raise ConfigError(_join(path, key), f"{name!r} cannot be added ({expected})")
        if name.lower() in spelling:
            expected = "expected each header once; names are case-insensitive"
            message = f"{name!r} repeats {spelling[name.lower()]!r} ({expected})"
            raise ConfigError(_join(path, key), message)
        spelling[name.lower()] = name
        pairs.append((name, parse_header_value(item, path=_join(path, key))))
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
    bounds = _Section(
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


def _parse_total(value: object, *, path: str) -> float | None:
    # YAML reads an unquoted `off` as false; both mean no overall bound.
    if value is None or value is False or value == "off":
        return None
    return parse_duration(value, path=path, expected=f"{DURATION_EXAMPLE}, or off")


def _parse_credentials(value: object, *, path: str) -> tuple[CredentialSet, ...]:
    """Every set in file order, with the implicit "default" first unless the file defines it."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        expected = "expected set names, each mapped to a set, e.g. ci: {profile: ci}"
        raise ConfigError(path, f"{show(value)} is not a mapping ({expected})")
    sets = [
        _parse_credential_set(
            item,
            path=_join(path, key),
            name=parse_name(key, path=_join(path, key), what="credential set"),
        )
        for key, item in value.items()
    ]
    if all(item.name != DEFAULT_CREDENTIALS for item in sets):
        sets.insert(0, CredentialSet(DEFAULT_CREDENTIALS))
    by_name = {item.name: item for item in sets}
    for item in sets:
        _check_source(item, by_name=by_name, parent=path)
    return tuple(sets)


def _parse_credential_set(value: object, *, path: str, name: str) -> CredentialSet:
    expected = f"a mapping with some of: {', '.join(_SET_KEYS)}"
    fields = _Section(value, path=path, keys=_SET_KEYS, expected=expected, null_ok=True)
    for key in _ROLE_ONLY_KEYS:
        if key in fields and "role_arn" not in fields:
            expected = f"expected role_arn in the same set; {key} applies to assuming a role"
            raise ConfigError(
                fields.at(key), f"{show(fields.fields[key])} needs role_arn ({expected})"
            )
    if "profile" in fields and "source" in fields:
        profile, source = show(fields.fields["profile"]), show(fields.fields["source"])
        expected = "expected one of them: keep profile to use that profile, or source for that set"
        message = f"profile {profile} and source {source} both name the base credentials"
        raise ConfigError(path, f"{message} ({expected})")
    return CredentialSet(
        name=name,
        profile=fields.get("profile", _parse_profile, None),
        role_arn=fields.get("role_arn", _parse_role_arn, None),
        external_id=fields.get("external_id", _parse_external_id, None),
        session_name=fields.get("session_name", _parse_session_name, None),
        duration=fields.get("duration", _parse_role_duration, None),
        source=fields.get("source", partial(parse_name, what="credential set"), None),
    )


def _matching(
    value: object, pattern: re.Pattern[str], *, path: str, what: str, expected: str
) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(path, f"{show(value)} is not {what} (expected {expected})")
    return value


def _parse_profile(value: object, *, path: str) -> str:
    expected = "the name of a profile in ~/.aws/config, e.g. dev"
    return _matching(value, _PROFILE, path=path, what="a profile name", expected=expected)


def _parse_role_arn(value: object, *, path: str) -> str:
    expected = "e.g. arn:aws:iam::123456789012:role/name"
    return _matching(value, _ROLE_ARN, path=path, what="an IAM role ARN", expected=expected)


def _parse_external_id(value: object, *, path: str) -> str:
    expected = "2-1224 characters of letters, digits and _+=,.@:/-"
    return _matching(value, _EXTERNAL_ID, path=path, what="an external ID", expected=expected)


def _parse_session_name(value: object, *, path: str) -> str:
    expected = "2-64 characters of letters, digits and _+=,.@-"
    return _matching(value, _SESSION_NAME, path=path, what="a session name", expected=expected)


def _parse_role_duration(value: object, *, path: str) -> int:
    expected = "a duration from 15m to 12h in whole seconds, e.g. 1h"
    seconds = parse_duration(value, path=path, expected=expected)
    low, high = _ROLE_SECONDS
    if not (low <= seconds <= high and seconds.is_integer()):
        raise ConfigError(path, f"{show(value)} is not a session duration (expected {expected})")
    return int(seconds)


def _check_source(
    start: CredentialSet, *, by_name: Mapping[str, CredentialSet], parent: str
) -> None:
    """``start``'s chain of sources names defined sets, ends, and keeps chained roles within 1h."""
    chain = [start.name]
    current = start
    while current.source is not None:
        if current.source not in by_name:
            expected = f"expected one of: {', '.join(by_name)}"
            hint = did_you_mean(current.source, by_name)
            message = f"{current.source!r} is not a credential set ({expected}){hint}"
            raise ConfigError(f"{parent}.{current.name}.source", message)
        current = by_name[current.source]
        if current.name in chain:
            cycle = " -> ".join([*chain[chain.index(current.name) :], current.name])
            expected = "expected a chain that ends at a set without source"
            message = f"{start.source!r} makes a cycle {cycle} ({expected})"
            raise ConfigError(f"{parent}.{start.name}.source", message)
        chain.append(current.name)
    source = by_name[start.source] if start.source else None
    if source and source.role_arn and (start.duration or 0) > _CHAINED_ROLE_SECONDS:
        raise ConfigError(
            f"{parent}.{start.name}.duration",
            f"{start.duration} seconds is over 1h, the most AWS allows for a role assumed with "
            f"another role's credentials (expected at most 1h, as source {source.name!r} "
            "has role_arn)",
        )
