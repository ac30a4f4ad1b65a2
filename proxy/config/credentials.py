"""The ``credentials:`` section: named credential sets, each a botocore source and optional role."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial

from proxy.config.strict_yaml import Section, join
from proxy.config.values import did_you_mean, parse_duration, parse_name, show
from proxy.errors import ConfigError
from proxy.model import DEFAULT_CREDENTIALS, CredentialSet

_SET_KEYS = ("profile", "role_arn", "external_id", "session_name", "duration", "source")
_ROLE_ONLY_KEYS = ("external_id", "session_name", "duration", "source")  # AssumeRole arguments
_ROLE_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_PROFILE = re.compile(r"[^\s\x00-\x1f\x7f]+(?: [^\s\x00-\x1f\x7f]+)*")
_ROLE_SECONDS = (15 * 60, 12 * 3600)  # what AssumeRole accepts as DurationSeconds
_CHAINED_ROLE_SECONDS = 3600  # AWS's cap for a role assumed with another role's credentials


def parse_credentials(value: object, *, path: str) -> tuple[CredentialSet, ...]:
    """Every set in file order, with the implicit "default" first unless the file defines it."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        expected = "expected set names, each mapped to a set, e.g. ci: {profile: ci}"
        raise ConfigError(path, f"{show(value)} is not a mapping ({expected})")
    sets = [
        _parse_credential_set(
            item,
            path=join(path, key),
            name=parse_name(key, path=join(path, key), what="credential set"),
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
    fields = Section(value, path=path, keys=_SET_KEYS, expected=expected, null_ok=True)
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
