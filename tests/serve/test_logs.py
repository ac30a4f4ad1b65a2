"""The access line written straight to stderr is the line ``logging`` would write, and yields
to ``logging`` as soon as anything else listens."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator

import pytest

from proxy.serve import logs
from proxy.serve.logs import ACCESS_LOGGER, JsonFormatter, log_access, setup_logging

TEXT = "orders GET /orders -> 200 (upstream 200) 1.2 ms in=0 out=2 id=abc"
FIELDS = {"request_id": "abc", "route": "orders", "status": 200, "cut": None}


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Each test sets logging up as the CLI does; the process's logging is put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    botocore, server = logging.getLogger("botocore"), logging.getLogger("aiohttp.server")
    botocore_level, server_filters = botocore.level, server.filters[:]
    yield
    root.handlers[:], root.level = handlers, level
    botocore.setLevel(botocore_level)
    server.filters[:] = server_filters
    logs._direct = None


def _reference(form: str, level: int = logging.INFO) -> str:
    """The line logging's own handler and formatter make of the same record."""
    record = logging.LogRecord(ACCESS_LOGGER, level, __file__, 1, "%s", (TEXT,), None)
    record.__dict__.update(FIELDS)
    formatter = JsonFormatter() if form == "json" else logging.Formatter(logs._TEXT_FORMAT)
    return formatter.format(record)


def test_the_text_line_is_the_formatters_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A text access line matches the Formatter's, the time to the millisecond aside."""
    setup_logging(level="info", form="text")
    before = time.time()
    log_access(logging.WARNING, TEXT, lambda: dict(FIELDS))
    line = capsys.readouterr().err
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert (
        re.sub(stamp, "T", line) == re.sub(stamp, "T", _reference("text", logging.WARNING)) + "\n"
    )
    written = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
    assert int(before) <= written <= time.time()


def test_the_json_line_is_the_json_formatters_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A JSON access line has the JsonFormatter's keys in its order, the fields after."""
    setup_logging(level="info", form="json")
    log_access(logging.INFO, TEXT, lambda: dict(FIELDS))
    written = json.loads(capsys.readouterr().err)
    expected = json.loads(_reference("json"))
    assert list(written) == list(expected)
    assert written["pid"] == os.getpid()
    assert {k: v for k, v in written.items() if k != "time"} == {
        k: v for k, v in expected.items() if k != "time"
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", written["time"])


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_added_handler_gets_the_record_with_its_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With a handler added to the root, the line goes through logging: both see it."""
    setup_logging(level="info", form="text")
    kept = _Kept()
    logging.getLogger().addHandler(kept)
    log_access(logging.INFO, TEXT, lambda: dict(FIELDS))
    assert [(r.name, r.getMessage(), r.__dict__["route"]) for r in kept.records] == [
        (ACCESS_LOGGER, TEXT, "orders")
    ]
    assert capsys.readouterr().err.endswith(f"INFO    {ACCESS_LOGGER}: {TEXT}\n")


@pytest.mark.parametrize("on", ["access logger", "handler"])
def test_a_filter_someone_added_still_drops_the_line(
    on: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filter on the access logger or on the stderr handler is obeyed."""
    setup_logging(level="info", form="text")
    where: logging.Filterer = logging.getLogger(ACCESS_LOGGER)
    if on == "handler":
        where = logging.getLogger().handlers[0]
    seen: list[str] = []

    def drop(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return False

    where.addFilter(drop)
    try:
        log_access(logging.INFO, TEXT, lambda: dict(FIELDS))
    finally:
        where.removeFilter(drop)
    assert seen == [TEXT]
    assert capsys.readouterr().err == ""
