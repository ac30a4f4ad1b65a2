"""A request head as bytes: exactly the lines given, and never a line break smuggled in."""

from __future__ import annotations

import pytest

from proxy.http11.wire import encode_head


def test_a_head_is_its_lines_and_a_blank_line() -> None:
    """The request line, each header as ``name: value``, CRLF after each and at the end."""
    head = encode_head("GET /a HTTP/1.1", [("Host", "x"), ("Accept", "*/*")])
    assert head == b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"


def test_a_head_without_headers_ends_after_its_request_line() -> None:
    """No headers: the request line and the blank line."""
    assert encode_head("GET / HTTP/1.1", []) == b"GET / HTTP/1.1\r\n\r\n"


def test_bytes_that_were_not_utf8_leave_as_they_came() -> None:
    """A value decoded with surrogateescape is encoded back to its original bytes."""
    value = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert encode_head("GET / HTTP/1.1", [("X", value)]).endswith(b"X: caf\xe9\r\n\r\n")


@pytest.mark.parametrize(
    ("start", "headers"),
    [
        ("GET /a\r\nX: 1 HTTP/1.1", [("Host", "x")]),
        ("GET /a\n HTTP/1.1", [("Host", "x")]),
        ("GET / HTTP/1.1", [("Host", "x\r")]),
        ("GET / HTTP/1.1", [("Host", "x"), ("X", "a\nInjected: 1")]),
        ("GET / HTTP/1.1", [("X\r\nInjected", "1")]),
        ("GET / HTTP/1.1", [("X", "a\r\n\r\nGET /smuggled HTTP/1.1")]),
    ],
)
def test_a_line_break_anywhere_is_refused(start: str, headers: list[tuple[str, str]]) -> None:
    """CR or LF in the request line, a header name or a value raises ValueError."""
    with pytest.raises(ValueError, match="line break"):
        encode_head(start, headers)
