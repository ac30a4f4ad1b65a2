"""``${VAR}`` and ``${VAR:-default}`` in the config's string values, so one file serves every
environment (the Docker image's config is nothing but such references)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

from proxy.errors import ConfigError

# $${ is a literal ${; otherwise ${NAME} or ${NAME:-default} (the default may be empty).
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BROKEN = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})")


def expand_env(data: object, env: Mapping[str, str], *, path: str = "") -> object:
    """``data`` with every reference in its strings replaced from ``env``.

    A string that is a single reference becomes whatever YAML reads in the value, so that
    ``max_concurrent: ${MAX:-32}`` is the number 32 and ``strip_prefix: ${STRIP:-false}`` a
    boolean; references inside longer strings are plain text.
    """
    if isinstance(data, dict):
        return {key: expand_env(value, env, path=_join(path, key)) for key, value in data.items()}
    if isinstance(data, list):
        return [expand_env(item, env, path=f"{path}[{i}]") for i, item in enumerate(data)]
    if isinstance(data, str) and "${" in data:
        return _expand_string(data, env, path=path)
    return data


def _expand_string(text: str, env: Mapping[str, str], *, path: str) -> object:
    if _BROKEN.search(text.replace("$${", "")):
        raise ConfigError(
            path, f"{text!r} has a malformed reference (expected ${{NAME}} or ${{NAME:-default}})"
        )

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name, default = match[1], match[2]
        value = env.get(name)
        # As in a shell: ${NAME:-default} takes the default when NAME is unset or empty.
        if default is not None and not value:
            return default
        if value is not None:
            return value
        raise ConfigError(
            path,
            f"the environment variable {name} is not set (expected it set, or a default: "
            f"${{{name}:-value}})",
        )

    expanded = _REFERENCE.sub(replace, text)
    whole = _REFERENCE.fullmatch(text)
    if whole is None or whole[0] == "$${":
        return expanded
    try:
        parsed = yaml.safe_load(expanded) if expanded else expanded
    except yaml.YAMLError:
        return expanded
    # Only a scalar may come out of a variable: a list, mapping or null stays the text it was.
    return parsed if isinstance(parsed, str | int | float | bool) else expanded


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)
