"""Logging: text or JSON lines on stderr, and the two loggers that must never leak a secret."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
ACCESS_LOGGER = "signing_proxy.access"
_access_log = logging.getLogger(ACCESS_LOGGER)
# The milliseconds of a text line's asctime, looked up: formatting "03d" costs more.
_MILLISECONDS = tuple(f"{n:03d}" for n in range(1000))


def setup_logging(*, level: str, form: str) -> None:
    """Log ``level`` and up to stderr, as ``text`` or one ``json`` object per line."""
    global _direct  # the logging set-up is the process's, as logging's own is
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _direct = _DirectAccessLine(handler, json_lines=form == "json")
    root.setLevel(level.upper())
    # botocore's debug log prints the requests it signs, session tokens included: it stays
    # at warnings, whatever the level.
    logging.getLogger("botocore").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.server").addFilter(malformed_requests_in_one_line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the record's extras
    (the access log's fields)."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            extras["exception"] = self.formatException(record.exc_info)
        return json_line(
            record.created,
            record.levelname,
            record.name,
            record.process,
            record.getMessage(),
            extras,
        )


def json_line(
    created: float,
    level: str,
    logger: str,
    pid: int | None,
    message: str,
    extras: dict[str, Any],
) -> str:
    """The JSON format's line: time, level, logger, pid (which worker, with serve --workers),
    message, then ``extras`` in their order."""
    entry: dict[str, Any] = {
        "time": _iso_time(created),
        "level": level.lower(),
        "logger": logger,
        "pid": pid,
        "message": message,
    }
    entry.update(extras)
    return json.dumps(entry, default=str, ensure_ascii=False)


def _iso_time(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


def malformed_requests_in_one_line(record: logging.LogRecord) -> bool:
    """aiohttp logs a malformed request with a traceback quoting the raw request line, which
    may carry a caller's token in its query: keep one line naming the problem instead."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError):
        record.msg = "refused a malformed request: %s (HTTP %s)"
        record.args = (type(exc).__name__, exc.code)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def log_access(level: int, text: str, fields: Callable[[], dict[str, Any]]) -> None:
    """One access line: ``text`` as its message, ``fields()`` as its extras (the JSON format's
    keys). Written straight to stderr while the logging set-up is still :func:`setup_logging`'s
    own; through ``logging`` as any other line once anything else listens (a test's capture, a
    handler or filter someone added)."""
    direct = _direct
    if direct is not None and direct.in_charge(level):
        direct.write(level, text, fields)
    else:
        _access_log.log(level, "%s", text, extra=fields())


class _DirectAccessLine:
    """The access line as ``logging`` would write it through the handler :func:`setup_logging`
    made, without the ``LogRecord``, caller lookup and ``Formatter`` that cost more than the
    rest of a proxied request (counted: ~107k of the line's ~124k instructions)."""

    def __init__(self, handler: logging.StreamHandler[Any], *, json_lines: bool) -> None:
        self._handler = handler
        self._formatter = handler.formatter
        self._json = json_lines
        self._second = -1
        self._asctime = ""
        self._padded: dict[str, str] = {}  # "%(levelname)-7s" of each level name seen

    def in_charge(self, level: int) -> bool:
        """Whether ``logging`` would hand the line to our handler alone, unchanged."""
        logger: logging.Logger | None = _access_log
        while logger is not None and logger is not logging.root:
            if logger.filters or logger.handlers or not logger.propagate:
                return False
            logger = logger.parent
        root, handler = logging.root, self._handler
        return (
            not root.filters
            and len(root.handlers) == 1
            and root.handlers[0] is handler
            and not handler.filters
            and handler.formatter is self._formatter
            and level >= handler.level
        )

    def write(self, level: int, text: str, fields: Callable[[], dict[str, Any]]) -> None:
        now = time.time()
        name = logging.getLevelName(level)
        if self._json:
            line = json_line(now, name, ACCESS_LOGGER, os.getpid(), text, fields())
        else:  # _TEXT_FORMAT, written out: the Formatter is what this path saves
            second = int(now)
            if second != self._second:  # one strftime a second, not one a line
                self._second = second
                self._asctime = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            padded = self._padded.get(name)
            if padded is None:
                padded = self._padded[name] = f"{name:<7}"
            milliseconds = _MILLISECONDS[int(now % 1 * 1000)]
            line = f"{self._asctime},{milliseconds} {padded} {ACCESS_LOGGER}: {text}"
        handler = self._handler
        stream = handler.stream
        # Handler.acquire and release only call the lock's own; a line-buffered stream
        # (stderr is one) has flushed at the line's end already.
        with handler.lock or contextlib.nullcontext():
            try:
                stream.write(line + handler.terminator)
                if not getattr(stream, "line_buffering", False):
                    stream.flush()
            except (OSError, ValueError):
                # stderr closed or broken: logging's own path reports it as any line's.
                _access_log.log(level, "%s", text, extra=fields())


_direct: _DirectAccessLine | None = None
