"""Read a YAML config file into plain data, refusing duplicate keys, with one-line errors.

Errors are ``ConfigError``s: ``config.yaml:3:5: YAML syntax error: <problem>`` for syntax, and
``routes[0]: duplicate key 'upstream' (line 7)`` for a key written twice (an empty path when the
duplicate is at the top level; the caller names the file then).
"""

from __future__ import annotations

from typing import Any

import yaml

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
