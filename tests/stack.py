"""The proxy in front of the emulator, on real sockets, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.config.load import parse_config
from proxy.emulator import DEFAULT_FUNCTION_HOST, Key
from proxy.serve.credentials import Fetch, static_fetch
from proxy.serve.server import Running, running

KEY_ID = "AKIATESTKEY000000001"
KEY = Key("test/secret+key")
FUNCTION_URL = f"https://{DEFAULT_FUNCTION_HOST}"
RAW_TIMEOUT = 10.0  # a guard against a hung test, not a measurement
FIXED_KEYS: Mapping[str, Fetch] = {"default": static_fetch(KEY_ID, KEY.secret_access_key)}
StartHeld = Callable[[str], Awaitable["HeldUpstream"]]  # the held_upstream fixture


@dataclass(frozen=True)
class HeldUpstream:
    """An upstream that holds every GET until ``release`` is set; ``entered`` tells one came."""

    url: str
    entered: asyncio.Event
    release: asyncio.Event


def route(upstream: str, **fields: Any) -> dict[str, Any]:
    """One route's YAML mapping: iam, signing for the emulator's function URL, unless overridden."""
    return {
        "name": "r",
        "path_prefix": "/",
        "upstream": upstream,
        "function_url": FUNCTION_URL,
        "mode": "iam",
        **fields,
    }


@contextlib.asynccontextmanager
async def proxy(
    *routes: dict[str, Any],
    credentials: dict[str, Any] | None = None,
    overrides: Mapping[str, Fetch] | None = FIXED_KEYS,
    client_timeouts: dict[str, str] | None = None,
    **top: Any,
) -> AsyncIterator[Running]:
    """The proxy on 127.0.0.1, a free port, signing with the emulator's test key by default;
    ``top`` adds top-level keys of the config (``allowed_hosts=[...]``)."""
    document: dict[str, Any] = {"listen": "127.0.0.1:0", "routes": list(routes), **top}
    if credentials is not None:
        document["credentials"] = credentials
    if client_timeouts is not None:
        document["client_timeouts"] = client_timeouts
    async with running(parse_config(document), credential_overrides=overrides) as started:
        yield started


@dataclass(frozen=True)
class RawReply:
    """A reply read off a raw socket."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of ``name``, case-insensitive."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


async def raw_request(port: int, data: bytes) -> RawReply:
    """Send bytes exactly as given and read one reply (the request should say Connection: close)."""
    async with asyncio.timeout(RAW_TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(data)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = [
                (name.strip(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            ]
            reply = RawReply(status, headers, b"")
            length = reply.header("content-length")
            if data.startswith(b"HEAD "):
                body = b""  # a reply to HEAD has headers only
            elif length is not None:
                body = await reader.readexactly(int(length))
            elif (reply.header("transfer-encoding") or "").lower() == "chunked":
                body = await _read_chunked(reader)
            else:
                body = await reader.read()
            return RawReply(status, headers, body)
        finally:
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return bytes(body)
        body += chunk[:-2]
