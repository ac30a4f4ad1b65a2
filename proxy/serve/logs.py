"""Logging: text or JSON lines on stderr, and the two loggers that must never leak a secret."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def setup_logging(*, level: str, form: str) -> None:
    """Log ``level`` and up to stderr, as ``text`` or one ``json`` object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if form == "json"
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # botocore's debug log prints the requests it signs, session tokens included: it stays
    # at warnings, whatever the level.
    logging.getLogger("botocore").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.server").addFilter(malformed_requests_in_one_line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the record's extras
    (the access log's fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which worker, with serve --workers
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
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
