"""The package's shape: a core that does no I/O, and no import cycles anywhere."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import proxy

PACKAGE = Path(proxy.__file__).parent
# What the pure core may not import: the clock and the credentials are passed in instead.
IO_MODULES = frozenset(
    {"aiohttp", "asyncio", "socket", "ssl", "botocore", "subprocess", "threading", "sqlite3"}
)


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at any depth of its code (TYPE_CHECKING blocks too)."""
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                )
            yield base.strip(".")
            # ``from proxy.core import sigv4`` imports the module proxy.core.sigv4
            yield from (f"{base}.{alias.name}".strip(".") for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {found for found in _imports(path) if found in modules and found != name}
        for name, path in modules.items()
    }


def test_the_core_imports_no_io() -> None:
    """Nothing in proxy/core reaches a socket, a thread, a subprocess, botocore or aiohttp."""
    found = {
        _module(path): sorted(
            name for name in _imports(path) if name.partition(".")[0] in IO_MODULES
        )
        for path in (PACKAGE / "core").glob("*.py")
    }
    assert {module: names for module, names in found.items() if names} == {}


def test_the_core_imports_only_the_core_the_model_and_the_errors() -> None:
    """The core's own imports stay inside it, so its purity cannot leak in through another."""
    allowed = ("proxy.core", "proxy.model", "proxy.errors")
    graph = _graph()
    leaks = {
        module: sorted(name for name in imported if not name.startswith(allowed))
        for module, imported in graph.items()
        if module.startswith("proxy.core")
    }
    assert {module: names for module, names in leaks.items() if names} == {}


def test_there_are_no_import_cycles() -> None:
    """No module reaches itself through its imports (Tarjan's strongly connected components)."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while (top := stack.pop()) != module:
                component.append(top)
            if component:
                cycles.append(sorted([module, *component]))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert cycles == []
