"""`signing-proxy check`'s output: findings printed as marked lines, details and fixes, coloured
only when asked (a terminal), plain text otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from typing import TextIO


class Mark(Enum):
    """How a step went: passed, failed, or passed with something to look at."""

    OK = "✓"
    FAIL = "✗"
    WARN = "!"


@dataclass(frozen=True, slots=True)
class Finding:
    """One step's outcome: a headline, then indented details, a diff, and fixes."""

    mark: Mark
    headline: str
    details: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()
    diff: tuple[str, ...] = ()  # unified diff lines, shown as they are

    @property
    def failed(self) -> bool:
        return self.mark is Mark.FAIL


_GREEN, _RED, _YELLOW, _BOLD, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[1m", "\033[0m"
_MARK_COLOURS = {Mark.OK: _GREEN, Mark.FAIL: _RED, Mark.WARN: _YELLOW}
_INDENT = "    "


class Report:
    """Prints findings to ``out`` (stdout by default) as they come."""

    def __init__(self, *, color: bool, out: TextIO | None = None) -> None:
        self._color = color
        self._out = out or sys.stdout

    def show(self, finding: Finding) -> None:
        """The headline with its mark, then the details, the diff and the fixes, indented."""
        mark = self._paint(finding.mark.value, _MARK_COLOURS[finding.mark] + _BOLD)
        self._print(f"{mark} {finding.headline}")
        for detail in finding.details:
            self._print_block(detail)
        for line in finding.diff:
            self._print(_INDENT * 2 + self._diff_line(line))
        for fix in finding.fixes:
            label = self._paint("fix:", _BOLD)
            first, *rest = fix.split("\n")
            self._print(f"{_INDENT}{label} {first}")
            for line in rest:  # a multi-line fix (a command) keeps its lines under the first
                self._print(f"{_INDENT}     {line}")

    def summary(self, *, passed: int, total: int, code: int) -> None:
        """The last line: how many routes pass, and the exit code."""
        routes = "route" if total == 1 else "routes"
        verb = "passes" if passed == 1 else "pass"
        text = f"{passed} of {total} {routes} {verb}; exit code {code}"
        self._print(self._paint(text, (_GREEN if code == 0 else _RED) + _BOLD))
        self._out.flush()

    def _print_block(self, text: str) -> None:
        for line in text.split("\n"):
            self._print(_INDENT + line)

    def _diff_line(self, line: str) -> str:
        if line.startswith(("---", "+++")):
            return self._paint(line, _BOLD)
        if line.startswith("-"):
            return self._paint(line, _RED)
        if line.startswith("+"):
            return self._paint(line, _GREEN)
        return line

    def _paint(self, text: str, codes: str) -> str:
        return f"{codes}{text}{_RESET}" if self._color else text

    def _print(self, line: str) -> None:
        # An empty context line of a diff would otherwise end in spaces.
        print(line.rstrip(), file=self._out)
