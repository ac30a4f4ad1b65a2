"""Generated requests through the real proxy to the emulator: every one verifies, unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, unquote_to_bytes

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from proxy.core.routing import normalize_path
from proxy.core.sigv4 import canonical_query
from proxy.emulator import Emulator, SeenRequest
from tests.stack import KEY, KEY_ID, proxy, route

TIMEOUT = aiohttp.ClientTimeout(total=20)
# One proxy and one emulator serve every example of a test; the whole file stays well under 30 s.
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


class Tap:
    """A TCP relay between the proxy and the fake CloudFront that records the bytes the proxy
    sends, so a test can see the proxy's own request before CloudFront rewrites anything."""

    def __init__(self, target_port: int) -> None:
        self.sent = bytearray()
        self._target_port = target_port
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def request_target(self) -> str:
        """The target of the request recorded since the last ``sent.clear()``."""
        line = bytes(self.sent).split(b"\r\n", 1)[0].decode("latin-1")
        return line.split(" ")[1]

    def request_head(self) -> list[tuple[str, str]]:
        """The header fields of the request recorded since the last ``sent.clear()``."""
        head = bytes(self.sent).split(b"\r\n\r\n", 1)[0].decode("latin-1")
        fields = head.split("\r\n")[1:]
        return [(name, value.strip()) for name, _, value in (f.partition(":") for f in fields)]

    async def __aenter__(self) -> Tap:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        # Closing every stream ends every relay on its own (no cancellation needed).
        for writer in self._writers:
            writer.close()
        async with asyncio.timeout(10):
            await asyncio.gather(*self._handlers)
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            with contextlib.suppress(OSError):
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    "127.0.0.1", self._target_port
                )
                self._writers.add(upstream_writer)
                await asyncio.gather(
                    self._pipe(reader, upstream_writer, record=True),
                    self._pipe(upstream_reader, writer, record=False),
                )
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, record: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if record:
                    self.sent += data
                sink.write(data)
                await sink.drain()
        sink.close()


@dataclass
class Stack:
    """The proxy, a recording tap, the emulator, and a client session talking to the proxy."""

    emulator: Emulator
    tap: Tap
    url: str
    session: aiohttp.ClientSession

    async def send(
        self,
        method: str,
        target: str,
        *,
        headers: Any = None,
        data: Any = None,
    ) -> tuple[int, Any, SeenRequest | None]:
        """Send ``target`` byte for byte; the status, the JSON echo and what the function saw."""
        seen_before = len(self.emulator.requests)
        self.tap.sent.clear()
        async with self.session.request(
            method, URL(self.url + target, encoded=True), headers=headers, data=data
        ) as response:
            status = response.status
            body = await response.read()
        seen = self.emulator.requests[-1] if len(self.emulator.requests) > seen_before else None
        try:
            echoed = json.loads(body) if body else None
        except ValueError:
            echoed = body
        return status, echoed, seen


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """The proxy (one catch-all iam route, which lets encoded slashes through) in front of the
    emulator, signing with the test key."""
    async with (
        Emulator(keys={KEY_ID: KEY}) as emulator,
        Tap(URL(emulator.cloudfront_url).port or 80) as tap,
        proxy(
            route(tap.url, allow_encoded_slashes=True), allowed_hosts=[f"{MARK}.test"]
        ) as started,
        aiohttp.ClientSession(timeout=TIMEOUT, auto_decompress=False) as session,
    ):
        yield Stack(emulator, tap, started.url, session)


def assert_verified(status: int, echoed: Any, seen: SeenRequest | None) -> dict[str, Any]:
    """The function URL accepted the signature and answered with its echo."""
    assert seen is not None, f"the request never reached the function: {status} {echoed!r}"
    assert seen.verdict.ok, seen.verdict.message
    assert seen.verdict.access_key_id == KEY_ID
    assert status == 200, echoed
    assert isinstance(echoed, dict)
    assert echoed["verified"] is True
    return echoed


# --- paths ------------------------------------------------------------------------------------

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_SUB_DELIMS = "!$&'()*+,;=:@"
_HEX = "0123456789abcdefABCDEF"

random_escape = st.builds(
    lambda hi, lo: f"%{hi}{lo}", st.sampled_from(_HEX), st.sampled_from(_HEX)
).filter(lambda escape: escape != "%00")  # always refused: tests/e2e/test_side_doors.py
path_atom = st.one_of(
    st.sampled_from(_UNRESERVED + _SUB_DELIMS),
    st.sampled_from(["%20", "%2F", "%2f", "%25", "%41", "%2E", "%2e", "%7E", "%3F", "%23"]),
    random_escape,
)
path_segment = st.one_of(
    st.just(""),
    st.sampled_from([".", "..", "%2E", "%2e%2E"]),
    st.lists(path_atom, max_size=8).map("".join),
)
paths = st.lists(path_segment, max_size=8).map(lambda segments: "/" + "/".join(segments))


@given(path=paths)
@example(path="/%0A")  # an escaped newline is a path character like any other
@example(path="/a/%2e%2E/./b//%2f%20/%7e%41")
@PROPERTY
async def test_any_path_verifies_and_arrives_normalised(stack: Stack, path: str) -> None:
    """Any well-formed path is signed as sent, and the function sees its normalised form."""
    status, echoed, seen = await stack.send("GET", path)
    assert stack.tap.request_target() == normalize_path(path)  # what the proxy sent
    echo = assert_verified(status, echoed, seen)
    assert echo["path"] == normalize_path(path)  # what the function saw
    assert echo["query"] == ""


# --- queries ----------------------------------------------------------------------------------


_LOWER_ESCAPE = re.compile("%[0-9A-F]{2}")


def _encoders() -> st.SearchStrategy[Any]:
    """How clients percent-encode a name or value."""
    return st.sampled_from(
        [
            lambda text: quote(text, safe=""),
            lambda text: quote(text),  # "/" left bare
            quote_plus,  # space as "+"
            lambda text: quote(text, safe="+=/:@!$'()*,;?"),  # raw "+" and "=" inside
            lambda text: _LOWER_ESCAPE.sub(lambda m: m.group().lower(), quote(text, safe="")),
        ]
    )


@st.composite
def query_parts(draw: st.DrawFn) -> str:
    """One ``&``-separated part: ``name=value``, a bare name, or nothing (``&&``)."""
    kind = draw(st.sampled_from(["pair", "pair", "pair", "bare", "empty", "empty-value"]))
    if kind == "empty":
        return ""
    encode = draw(_encoders())
    name = encode(draw(st.text(max_size=12)))
    if kind == "bare":
        return str(name)
    if kind == "empty-value":
        return f"{name}="
    return f"{name}={encode(draw(st.text(max_size=16)))}"


queries = st.lists(query_parts(), min_size=1, max_size=6).map("&".join).filter(bool)


@given(query=queries, path=st.sampled_from(["/", "/search", "/a/b/"]))
@PROPERTY
async def test_any_query_verifies_and_arrives_as_signed(
    stack: Stack, query: str, path: str
) -> None:
    """Any client-encoded query (UTF-8, +, =, &&, bare names) verifies and arrives in the
    encoding it was signed in, with the client's parameters (a raw + a plus)."""
    status, echoed, seen = await stack.send("GET", f"{path}?{query}")
    echo = assert_verified(status, echoed, seen)
    sent = echo["query"]
    assert _parameters(sent) == _parameters(query.replace("+", "%2B"))
    pairs = sorted(part.partition("=")[::2] for part in sent.split("&") if part)
    assert canonical_query(sent) == "&".join(f"{name}={value}" for name, value in pairs)
    assert echo["target"] == path + (f"?{sent}" if sent else "")


def _parameters(query: str) -> list[tuple[bytes, bytes | None]]:
    """Each parameter percent-decoded (not form-decoded), None for a bare name's value."""
    pairs: list[tuple[bytes, bytes | None]] = []
    for part in query.split("&"):
        if part:
            name, equals, value = part.partition("=")
            pairs.append((unquote_to_bytes(name), unquote_to_bytes(value) if equals else None))
    return pairs


# --- header values ----------------------------------------------------------------------------

_PRINTABLE = "".join(chr(code) for code in range(0x20, 0x7F))
header_values = st.builds(
    lambda lead, middle, trail: lead + middle + trail,
    st.sampled_from(["", " ", "  ", "\t", " \t "]),
    st.text(alphabet=_PRINTABLE + "\t", max_size=40),
    st.sampled_from(["", " ", "  ", "\t", "\t \t"]),
)
custom_headers = st.lists(
    st.tuples(st.integers(min_value=0, max_value=3).map(lambda n: f"X-Custom-{n}"), header_values),
    min_size=1,
    max_size=8,
)


@given(headers=custom_headers)
@PROPERTY
async def test_any_header_value_verifies_and_is_forwarded(
    stack: Stack, headers: list[tuple[str, str]]
) -> None:
    """Unsigned custom headers with any printable value (repeats too) pass through unchanged."""
    status, echoed, seen = await stack.send("GET", "/headers", headers=headers)
    echo = assert_verified(status, echoed, seen)
    expected: dict[str, list[str]] = {}
    for name, value in headers:
        # HTTP strips optional whitespace around a field value; the inside stays as it was.
        expected.setdefault(name.lower(), []).append(value.strip(" \t"))
    for name, values in expected.items():
        assert echo["headers"].get(name) == ", ".join(values)


# --- bodies -----------------------------------------------------------------------------------


async def _chunks(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    """``body`` in pieces of the given sizes (the rest in one), sent chunked."""
    offset = 0
    for size in sizes:
        if offset >= len(body):
            break
        yield body[offset : offset + size]
        offset += size
    if offset < len(body):
        yield body[offset:]


@given(
    body=st.binary(max_size=4096),
    method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]),
    chunked=st.booleans(),
    sizes=st.lists(st.integers(min_value=1, max_value=1500), max_size=5),
)
@PROPERTY
async def test_any_body_verifies_with_its_hash(
    stack: Stack, body: bytes, method: str, chunked: bool, sizes: list[int]
) -> None:
    """Any body, with Content-Length or chunked, reaches the function whole and hashed right."""
    data: Any = _chunks(body, sizes) if chunked else body
    status, echoed, seen = await stack.send(method, "/upload", data=data)
    echo = assert_verified(status, echoed, seen)
    assert echo["method"] == method
    assert echo["body_length"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["headers"]["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert "transfer-encoding" not in echo["headers"]


# --- hostile inbound headers ------------------------------------------------------------------

MARK = "hostile"
_TOKEN = string.ascii_letters + string.digits + "-_.=/+:, "
hostile_values = st.text(alphabet=_TOKEN, max_size=20).map(lambda text: f"{MARK}-{text}".strip())
# Names whose value, whatever it is, must never reach the function.
HOSTILE_NAMES = [
    "Authorization",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
    "X-Amz-Target",
    "Date",
    "Host",
    "Proxy-Authorization",
    "Proxy-Connection",
    "Proxy-Custom",
    "Keep-Alive",
    "TE",
    "Upgrade",
    "Trailer",
]


@st.composite
def hostile_headers(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Some of the headers a client must not get through, plus Connection naming others."""
    names = draw(st.lists(st.sampled_from(HOSTILE_NAMES), unique=True, max_size=len(HOSTILE_NAMES)))
    # A Host the proxy serves (any other is refused before routing: see the stack).
    headers = [(n, f"{MARK}.test:8080" if n == "Host" else draw(hostile_values)) for n in names]
    hops = draw(st.lists(st.sampled_from(["X-Hop-A", "X-Hop-B", "X-Hop-C"]), unique=True))
    if hops:
        extra = draw(st.lists(st.sampled_from(["keep-alive", "upgrade", "te"]), unique=True))
        headers.append(("Connection", ", ".join([*hops, *extra])))
        headers.extend((hop, draw(hostile_values)) for hop in hops)
    if draw(st.booleans()):
        # 100-continue is answered by the proxy; other expectations are ignored.
        expectations = ["100-continue", "100-Continue", "something-else", "a=b"]
        headers.append(("Expect", draw(st.sampled_from(expectations))))
    return headers


@given(
    headers=hostile_headers(),
    method=st.sampled_from(["GET", "POST", "PUT"]),
    body=st.binary(max_size=256),
)
@PROPERTY
async def test_hostile_headers_never_reach_the_function(
    stack: Stack, headers: list[tuple[str, str]], method: str, body: bytes
) -> None:
    """Client Authorization, X-Amz-*, Date, Host and hop-by-hop headers are dropped; it verifies."""
    data = body if method != "GET" and body else None
    status, echoed, seen = await stack.send(method, "/hostile", headers=headers, data=data)
    echo = assert_verified(status, echoed, seen)
    # What the function saw (secrets masked there, so Authorization is checked by its shape).
    assert seen is not None
    assert [(name, value) for name, value in seen.headers if MARK in value] == []
    assert echo["headers"]["host"] == stack.emulator.function_host
    assert echo["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "x-amz-security-token" not in echo["headers"]  # the test key has no session token
    assert echo["body_sha256"] == hashlib.sha256(body if data else b"").hexdigest()
    # What the proxy itself sent, before the fake CloudFront dropped hop-by-hop headers.
    wire = stack.tap.request_head()
    assert [(name, value) for name, value in wire if MARK in value] == []
    names = [name.lower() for name, _ in wire]
    for dropped in ("connection", "keep-alive", "te", "upgrade", "trailer", "expect"):
        assert dropped not in names
    assert not any(name.startswith(("proxy-", "x-hop-")) for name in names)
    for single in ("host", "authorization", "x-amz-date", "x-amz-content-sha256"):
        assert names.count(single) == 1
    assert dict((n.lower(), v) for n, v in wire)["host"] == URL(stack.tap.url).authority
