"""Read a YAML config file strictly: duplicate and unknown keys refused, one-line errors.

Errors are ``ConfigError``s: ``config.yaml:3:5: YAML syntax error: <problem>`` for syntax, and
``routes[0]: duplicate key 'upstream' (line 7)`` for a key written twice (an empty path when the
duplicate is at the top level; the caller names the file then).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Protocol, TypeVar

import yaml

from proxy.config.values import did_you_mean, show
from proxy.errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_yaml(name: str) -> object:
    """The document in the file called ``name``: dicts, lists and scalars, or None when empty."""
    return parse_yaml(_read_text(name), name=name)


def parse_yaml(text: str, *, name: str) -> object:
    """The document in ``text``; ``name`` locates errors, e.g. ``config.yaml:3:5``."""
    try:
        return _load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        # A constructor error (an unknown !tag, say) is well-formed YAML this loader refuses.
        kind = (
            "YAML error"
            if isinstance(exc, yaml.constructor.ConstructorError)
            else "YAML syntax error"
        )
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and problem.startswith("but "):  # "expected one document but found ..."
            problem = f"{exc.context} {problem}"
        problem = " ".join(problem.split())
        if "'\\t'" in problem:  # PyYAML's words for a tab where YAML allows none
            problem += (
                "; YAML forbids tabs in indentation and between a key and its value: use spaces"
            )
        elif mark and (hint := _quoting_hint(text, mark.line)):
            problem += f"; {hint}"
        raise ConfigError(where, f"{kind}: {problem}") from exc
    except yaml.reader.ReaderError as exc:
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        problem = f"character U+{character:04X} is not allowed (offset {exc.position})"
        raise ConfigError(name, f"YAML syntax error: {problem}") from exc
    except RecursionError as exc:
        raise ConfigError(name, "YAML syntax error: nested too deeply") from exc


def _load(text: str) -> object:
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys, which PyYAML would resolve to the last silently."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _reject_duplicate_keys(node, path="", seen=set())
        return self.construct_document(node)


# "listen: [::1]:8080" reads as the start of a YAML list; quoted, it is the address it looks like.
_BARE_BRACKETED = re.compile(r"\s*(?:- )?([\w-]+):\s+(\[[0-9A-Fa-f:.]+\]:\d+)\s*(?:#.*)?")


def _quoting_hint(text: str, line: int) -> str | None:
    """How to write the line as meant, when it is an IPv6 address and port left unquoted."""
    lines = text.splitlines()
    found = _BARE_BRACKETED.fullmatch(lines[line]) if line < len(lines) else None
    if found is None:
        return None
    key, value = found.groups()
    return f'an IPv6 address with a port must be quoted: {key}: "{value}"'


def _read_text(name: str) -> str:
    try:
        # utf-8-sig: editors on Windows like to start the file with a byte-order mark.
        with open(name, encoding="utf-8-sig") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(name, f"cannot read the config file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(name, f"not UTF-8 text (bad byte at offset {exc.start})") from exc


def _reject_duplicate_keys(node: yaml.Node, *, path: str, seen: set[int]) -> None:
    # Walks nodes rather than constructed data: only nodes still know both keys and their lines.
    if id(node) in seen:  # an alias may point back at an enclosing node
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(item, path=f"{path}[{index}]", seen=seen)
    elif isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            # `<<: *defaults` merges are meant to be overridden by the keys beside them.
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                if key in keys:
                    line = key_node.start_mark.line + 1
                    raise ConfigError(path, f"duplicate key {key!r} (line {line})")
                keys.add(key)
            _reject_duplicate_keys(value_node, path=f"{path}.{key}" if path else key, seen=seen)


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Parser(Protocol[T_co]):
    """Parses one value; errors name ``path``."""

    def __call__(self, value: object, *, path: str) -> T_co: ...


class Section:
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
                    join(path, key), f"unknown key (expected one of: {choices}){hint}"
                )
        self.path = path
        self.fields: dict[str, object] = {str(key): item for key, item in value.items()}

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def at(self, key: str) -> str:
        """The key path of ``key`` in this section."""
        return join(self.path, key)

    def get(self, key: str, parse: Parser[T], default: T) -> T:
        """``key`` parsed, or ``default`` when it is absent."""
        return parse(self.fields[key], path=self.at(key)) if key in self.fields else default

    def require(self, key: str, parse: Parser[T], expected: str) -> T:
        """``key`` parsed; its absence is an error saying what was ``expected``."""
        if key not in self.fields:
            raise ConfigError(self.at(key), f"required (expected {expected})")
        return parse(self.fields[key], path=self.at(key))


def join(path: str, key: object) -> str:
    """The key path of ``key`` under ``path``: ``routes[0]`` + ``sign`` = ``routes[0].sign``."""
    name = key if isinstance(key, str) else show(key)
    return f"{path}.{name}" if path else name
