"""Logging: text or JSON lines on stderr, and the two loggers that must never leak a secret."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import IO, Any

from aiohttp.http_exceptions import HttpProcessingError

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def setup_logging(*, level: str, form: str) -> None:
    """Log ``level`` and up to stderr, as ``text`` or one ``json`` object per line."""
    handler = BatchingStreamHandler(sys.stderr)
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


class BatchingStreamHandler(logging.StreamHandler[IO[str]]):
    """A StreamHandler that, inside a running event loop, writes once per turn of the loop.

    Each line is formatted when it is logged (so nothing it refers to can change), but the
    lines of one turn go out in one write and one flush, scheduled with ``call_soon``: under
    load the access lines of the dozens of requests that finish in one turn cost one system
    call, not dozens, and the loop never blocks on stderr once per request. Outside a running
    loop (start-up, shutdown, other threads) a line is written at once, after any pending
    ones, so the order holds. ``flush()`` (which ``logging.shutdown`` calls at exit) writes what
    is pending: no line is lost on a normal stop.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock around this call.
        try:
            line = self.format(record) + self.terminator
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            self._pending.append(line)
            if loop is None:
                self._write_pending()
            elif not self._scheduled:
                self._scheduled = True
                loop.call_soon(self.flush)
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._scheduled = False
            self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self.stream.write(text)
        if self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()


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
