"""A request as it goes on the wire: where it goes (``Origin``, ``ForwardProxy``), its body
(bytes, or ``Streamed`` from a spool), and its head encoded as bytes.

Pure values and functions, no I/O: the head is built once per request and sent again as it is
when a request is retried on a new connection. The client adds no headers except Host and
Content-Length (and Proxy-Authorization to a forward proxy).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Protocol
from urllib.parse import unquote, urlsplit

# A request with one of these methods says Content-Length: 0 when it has no body.
_BODY_EXPECTED = frozenset({"POST", "PUT", "PATCH"})


class Origin(Protocol):
    """Where requests go: ``host`` without brackets, ``host_header`` as the Host header says
    it. Hashable: connections are pooled by origin."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def host_header(self) -> str: ...
    def __hash__(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ForwardProxy:
    """An HTTP forward proxy (HTTP_PROXY / HTTPS_PROXY): CONNECT tunnels for https origins,
    absolute-form targets for http ones."""

    host: str
    port: int
    authorization: str | None  # Proxy-Authorization, from user:password in the URL

    @classmethod
    def parse(cls, url: str) -> ForwardProxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// forward proxies are supported, not {parts.scheme!r}")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, parts.port or 80, authorization)

    def __repr__(self) -> str:  # the password must never reach a log
        return f"ForwardProxy({self.host}:{self.port})"


@dataclass(frozen=True, slots=True)
class Streamed:
    """A body sent from its source in chunks (a spool file), with its length; ``chunks`` reads
    it from the start on every call, so the request can be sent again."""

    length: int
    chunks: Callable[[], AsyncIterator[bytes | bytearray]]


Content = bytes | Streamed


def request_head(
    method: str,
    target: str,
    origin: Origin,
    headers: Iterable[tuple[str, str]],
    content: Content | None,
    proxy: ForwardProxy | None,
) -> bytes:
    """The request line and headers of a request, encoded, ending with the blank line."""
    if proxy is not None and origin.scheme == "http":
        target = f"http://{origin.host_header}{target}"  # absolute-form, to a forward proxy
    lines = [("Host", origin.host_header), *headers]
    if proxy is not None and origin.scheme == "http" and proxy.authorization is not None:
        lines.append(("Proxy-Authorization", proxy.authorization))
    if content is not None:
        length = len(content) if isinstance(content, bytes) else content.length
        lines.append(("Content-Length", str(length)))
    elif method in _BODY_EXPECTED:
        lines.append(("Content-Length", "0"))
    return encode_head(f"{method} {target} HTTP/1.1", lines)


def encode_head(start: str, headers: list[tuple[str, str]]) -> bytes:
    """``start`` (a request line) and ``headers`` as bytes; ValueError on a line break."""
    # A CR or LF inside a name, value or target would start a header or request of its own.
    # Looked for in all of them at once, before the line breaks of our own are added.
    written = start + "".join(chain.from_iterable(headers))
    if "\r" in written or "\n" in written:
        raise ValueError("a header or the request target contains a line break")
    lines = "".join([f"{name}: {value}\r\n" for name, value in headers])
    # Header bytes that were not UTF-8 arrived as surrogates; they leave as they came.
    return f"{start}\r\n{lines}\r\n".encode("utf-8", "surrogateescape")


def bracketed(host: str) -> str:
    """``host`` as an authority writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
