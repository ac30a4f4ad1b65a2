"""A route's inbound side in the config: ``inbound:`` (who may call it) and ``rate_limit:``.

Secrets are read here, once at start, from the environment (``secret_env``) or a file
(``secret_file``); the YAML itself never has to hold one.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Literal

from proxy.config.strict_yaml import Section
from proxy.config.values import (
    did_you_mean,
    parse_duration,
    parse_file_path,
    parse_header_name,
    show,
)
from proxy.errors import ConfigError
from proxy.model import Inbound, InboundType, Network, RateLimit, Secret

_TYPES: tuple[InboundType, ...] = (
    "github",
    "stripe",
    "slack",
    "shopify",
    "hmac",
    "bearer",
    "basic",
)
_KEYS = (
    *("type", "secret_env", "secret_file", "header", "encoding", "prefix", "username"),
    *("tolerance", "allow_ips", "trusted_proxies"),
)
# Which optional keys each type takes; anything else given is a mistake worth reporting.
_TYPE_KEYS: dict[InboundType | None, frozenset[str]] = {
    "github": frozenset(),
    "shopify": frozenset(),
    "stripe": frozenset({"tolerance"}),
    "slack": frozenset({"tolerance"}),
    "hmac": frozenset({"header", "encoding", "prefix"}),
    "bearer": frozenset({"header"}),
    "basic": frozenset({"username"}),
    None: frozenset(),
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_PER |= {"h": 3600, "hour": 3600}
RATE_EXAMPLE = "e.g. 10/s, 600/m or 5000/h"


def parse_inbound(value: object, *, path: str) -> Inbound:
    """The ``inbound:`` mapping of a route."""
    fields = Section(value, path=path, keys=_KEYS, expected="a mapping with type and secret_env")
    kind = fields.get("type", _parse_type, None)
    allow_ips = fields.get("allow_ips", _parse_networks, ())
    if kind is None and not allow_ips:
        expected = f"expected type: one of {', '.join(_TYPES)}, or allow_ips"
        raise ConfigError(path, f"inbound names no check ({expected})")
    _refuse_foreign_keys(fields, kind)
    secret = _parse_secret(fields, kind)
    if kind == "basic" and "username" not in fields:
        raise ConfigError(fields.at("username"), "required for type basic (expected e.g. ci)")
    if kind == "hmac" and "header" not in fields:
        expected = "expected the header that carries the signature, e.g. X-Signature"
        raise ConfigError(fields.at("header"), f"required for type hmac ({expected})")
    return Inbound(
        type=kind,
        secret=secret,
        header=fields.get("header", _parse_header, None),
        encoding=fields.get("encoding", _parse_encoding, "hex"),
        prefix=fields.get("prefix", _parse_prefix, ""),
        username=fields.get("username", _parse_username, None),
        tolerance=fields.get("tolerance", parse_duration, 300.0),
        allow_ips=allow_ips,
        trusted_proxies=fields.get("trusted_proxies", _parse_networks, ()),
    )


def _parse_type(value: object, *, path: str) -> InboundType:
    for kind in _TYPES:
        if value == kind:
            return kind
    expected = f"expected one of: {', '.join(_TYPES)}"
    raise ConfigError(
        path, f"{show(value)} is not an inbound type ({expected}){did_you_mean(value, _TYPES)}"
    )


def _refuse_foreign_keys(fields: Section, kind: InboundType | None) -> None:
    shared = {"type", "secret_env", "secret_file", "allow_ips", "trusted_proxies"}
    allowed = shared | _TYPE_KEYS[kind]
    for key in fields.fields:
        if key not in allowed:
            owners = [str(t) for t, keys in _TYPE_KEYS.items() if key in keys]
            raise ConfigError(
                fields.at(key),
                f"does not apply to type {kind or '(none)'} (expected it with type "
                f"{' or '.join(owners)})",
            )


def _parse_secret(fields: Section, kind: InboundType | None) -> Secret | None:
    if kind is None:
        for key in ("secret_env", "secret_file"):
            if key in fields:
                raise ConfigError(fields.at(key), "needs a type that uses a secret (expected type)")
        return None
    secret = parse_secret(fields)
    if secret is None:
        raise ConfigError(
            fields.at("secret_env"),
            f"required for type {kind} (expected the name of an environment variable holding "
            "the secret, or secret_file)",
        )
    return secret


def parse_secret(
    fields: Section, *, env_key: str = "secret_env", file_key: str = "secret_file"
) -> Secret | None:
    """A secret named by ``env_key`` (an environment variable) or ``file_key`` (a file), read
    now; None when the section has neither key."""
    has_env, has_file = env_key in fields, file_key in fields
    if has_env and has_file:
        raise ConfigError(
            fields.at(file_key), f"{env_key} is given too (expected one source of the secret)"
        )
    if has_env:
        return _secret_from_env(fields.fields[env_key], path=fields.at(env_key))
    if has_file:
        return _secret_from_file(fields.fields[file_key], path=fields.at(file_key))
    return None


def _secret_from_env(value: object, *, path: str) -> Secret:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ConfigError(
            path, f"{show(value)} is not an environment variable name (expected e.g. HOOK_SECRET)"
        )
    secret = os.environ.get(value, "")
    if not secret:
        raise ConfigError(
            path, f"the environment variable {value} is not set or empty (expected the secret)"
        )
    return Secret(secret.encode(), f"env {value}")


def _secret_from_file(value: object, *, path: str) -> Secret:
    value = parse_file_path(value, path=path, example="/run/secrets/hook")
    try:
        content = Path(value).read_bytes()
    except OSError as exc:
        raise ConfigError(path, f"cannot read {value}: {exc.strerror or exc}") from exc
    # Files written with echo or by secret managers end in a newline that is not the secret.
    secret = content.rstrip(b"\r\n")
    if not secret:
        raise ConfigError(path, f"{value} is empty (expected the secret)")
    return Secret(secret, f"file {value}")


def _parse_header(value: object, *, path: str) -> str | None:
    # Authorization is the bearer default; any other header the proxy owns cannot carry a secret.
    if isinstance(value, str) and value.lower() == "authorization":
        return None
    return parse_header_name(value, path=path)


def _parse_encoding(value: object, *, path: str) -> Literal["hex", "base64"]:
    if value == "hex":
        return "hex"
    if value == "base64":
        return "base64"
    raise ConfigError(path, f"{show(value)} is not an encoding (expected hex or base64)")


def _parse_prefix(value: object, *, path: str) -> str:
    if not isinstance(value, str) or any(c in value for c in "\r\n\x00"):
        raise ConfigError(path, f"{show(value)} is not a prefix (expected e.g. sha256=)")
    return value


def _parse_username(value: object, *, path: str) -> str:
    if not isinstance(value, str) or not value or ":" in value or not value.isprintable():
        raise ConfigError(path, f"{show(value)} is not a user name (expected e.g. ci, no ':')")
    return value


def _parse_networks(value: object, *, path: str) -> tuple[Network, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(path, f"{show(value)} is not a list (expected e.g. [10.0.0.0/8])")
    return tuple(_parse_network(item, path=f"{path}[{i}]") for i, item in enumerate(value))


def _parse_network(value: object, *, path: str) -> Network:
    expected = "expected an address or network such as 203.0.113.7, 10.0.0.0/8 or ::1"
    if not isinstance(value, str):
        raise ConfigError(path, f"{show(value)} is not an address ({expected})")
    try:
        return ipaddress.ip_network(value.strip())
    except ValueError as exc:
        raise ConfigError(path, f"{show(value)} is not a network: {exc} ({expected})") from None


def parse_rate_limit(value: object, *, path: str) -> RateLimit:
    """``rate_limit: {rate: 10/s, burst: 20}``; burst defaults to one second's worth."""
    fields = Section(value, path=path, keys=("rate", "burst"), expected=f"rate: {RATE_EXAMPLE}")
    rate = fields.require("rate", _parse_rate, RATE_EXAMPLE)
    default_burst = max(1, math.ceil(rate))
    return RateLimit(rate=rate, burst=fields.get("burst", parse_count, default_burst))


def _parse_rate(value: object, *, path: str) -> float:
    match = _RATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or float(match[1]) <= 0:
        raise ConfigError(path, f"{show(value)} is not a rate (expected {RATE_EXAMPLE})")
    return float(match[1]) / _PER[match[2]]


def parse_count(value: object, *, path: str, example: int = 32) -> int:
    """A whole number of at least 1 (max_concurrent, burst, retries.attempts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = f"expected e.g. {example}"
        raise ConfigError(path, f"{show(value)} is not a whole number >= 1 ({expected})")
    return value
