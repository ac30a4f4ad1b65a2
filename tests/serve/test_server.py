"""The whole pipeline on real sockets: client -> proxy -> emulated CloudFront -> function URL."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from yarl import URL

from proxy.core import outgoing
from proxy.emulator import DEFAULT_FUNCTION_HOST, Emulator
from tests.stack import KEY_ID, RAW_TIMEOUT, proxy, raw_request, route

MIB = 1024 * 1024


async def _echo(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.status == 200, await response.text()
    echoed: dict[str, Any] = await response.json()
    assert echoed["verified"] is True
    return echoed


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_every_method_arrives_signed_for_the_function_host(
    emulator: Emulator, client: aiohttp.ClientSession, method: str
) -> None:
    """Each method is signed for the function-URL host and verified behind CloudFront."""
    async with (
        proxy(route(emulator.cloudfront_url)) as running,
        client.request(method, f"{running.url}/orders?id=7") as response,
    ):
        await response.read()

    seen = emulator.requests[-1]
    assert response.status == 200
    assert seen.verdict.ok, seen.verdict.message
    assert seen.method == method
    assert dict(seen.headers)["Host"] == DEFAULT_FUNCTION_HOST


@pytest.mark.parametrize(
    ("target", "wire"),
    [
        ("/a%20b/c", "/a%20b/c"),
        ("/a%2Fb", "/a%2Fb"),
        ("/a%2fb", "/a%2Fb"),
        ("/%7Euser/%61", "/~user/a"),
        ("/a/./b/../c", "/a/c"),
        ("//double//slash/", "/double/slash/"),
        ("/sub-delims/!$&'()*+,;=:@", "/sub-delims/!$&'()*+,;=:@"),
        ("/%E1%88%B4", "/%E1%88%B4"),
        ("/p?b=2&a=1&a=0", "/p?b=2&a=1&a=0"),
        ("/p?flag&empty=&x=y=z", "/p?flag&empty=&x=y%3Dz"),  # the query goes as signed
        ("/p?q=a+b&r=a%20b&s=%2f%2F", "/p?q=a%2Bb&r=a%20b&s=%2F%2F"),  # a raw + is a plus
        ("/p?x=!'()*,&t=%7e", "/p?x=%21%27%28%29%2A%2C&t=~"),
        ("/p?%E1%88%B4=%F0%9F%98%80", "/p?%E1%88%B4=%F0%9F%98%80"),
        ("/p?a=1&&b=2&", "/p?a=1&b=2"),
        ("/p?k=%5B%5D&k[]=v", "/p?k=%5B%5D&k%5B%5D=v"),
    ],
)
async def test_tricky_paths_and_queries_verify(
    emulator: Emulator, client: aiohttp.ClientSession, target: str, wire: str
) -> None:
    """Encoded, dotted, doubled and unicode targets are sent as signed, byte for byte (on a
    route that lets encoded slashes through)."""
    async with (
        proxy(route(emulator.cloudfront_url, allow_encoded_slashes=True)) as running,
        client.get(URL(running.url + target, encoded=True)) as response,
    ):
        echoed = await _echo(response)
    assert echoed["target"] == wire


async def test_hostile_client_headers_never_reach_the_function(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Client Authorization, X-Amz-*, Date, Host and hop-by-hop headers are replaced or dropped."""
    hostile = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEVIL/20200101/us-east-1/lambda/x",
        "X-Amz-Date": "20000101T000000Z",
        "X-Amz-Security-Token": "stolen-token",
        "X-Amz-Content-Sha256": "0" * 64,
        "X-Amz-Target": "Evil.Action",
        "Date": "Sat, 01 Jan 2000 00:00:00 GMT",
        "Host": "localhost:9999",
        "Connection": "keep-alive, X-Internal-Secret",
        "X-Internal-Secret": "hop-by-hop",
        "Proxy-Authorization": "Basic ZXZpbDpldmls",
        "Keep-Alive": "timeout=1",
        "X-Custom": "kept",
    }
    async with (
        proxy(route(emulator.cloudfront_url)) as running,
        client.post(f"{running.url}/orders", data=b'{"a": 1}', headers=hostile) as response,
    ):
        echoed = await _echo(response)

    headers = echoed["headers"]
    assert echoed["access_key_id"] == KEY_ID
    assert headers["host"] == DEFAULT_FUNCTION_HOST
    assert headers["x-amz-content-sha256"] == hashlib.sha256(b'{"a": 1}').hexdigest()
    assert headers["x-amz-date"] != "20000101T000000Z"
    assert headers["x-custom"] == "kept"
    for name in ("x-amz-security-token", "x-amz-target", "date", "x-internal-secret"):
        assert name not in headers
    assert "proxy-authorization" not in headers


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [0, 1, 70_000, 5 * MIB])
async def test_chunked_upload_is_sent_with_content_length(
    emulator: Emulator, client: aiohttp.ClientSession, size: int
) -> None:
    """A chunked upload is hashed, then sent whole with Content-Length, and verifies."""
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    async with (
        proxy(route(emulator.cloudfront_url)) as running,
        client.put(f"{running.url}/upload", data=_chunks(data, 65536)) as response,
    ):
        echoed = await _echo(response)

    assert echoed["body_length"] == size
    assert echoed["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert echoed["headers"]["content-length"] == str(size)
    assert "transfer-encoding" not in echoed["headers"]


async def test_five_mib_body_with_content_length_verifies(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A 5 MiB body (spooled to disk on the way) arrives intact and signed."""
    data = hashlib.sha256(b"seed").digest() * (5 * MIB // 32)
    async with (
        proxy(route(emulator.cloudfront_url)) as running,
        client.post(f"{running.url}/big", data=io.BytesIO(data)) as response,
    ):
        echoed = await _echo(response)
    assert echoed["body_sha256"] == hashlib.sha256(data).hexdigest()


async def test_gzip_request_body_is_forwarded_as_sent(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A compressed request body is hashed and forwarded compressed, never inflated."""
    compressed = gzip.compress(b"hello " * 1000)
    async with (
        proxy(route(emulator.cloudfront_url)) as running,
        client.post(
            f"{running.url}/gz", data=compressed, headers={"Content-Encoding": "gzip"}
        ) as response,
    ):
        echoed = await _echo(response)
    assert echoed["body_sha256"] == hashlib.sha256(compressed).hexdigest()
    assert echoed["headers"]["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (b"Content-Length: 2049\r\n", b"x" * 2049),
        (b"Transfer-Encoding: chunked\r\n", b"801\r\n" + b"x" * 2049 + b"\r\n0\r\n\r\n"),
    ],
    ids=["declared", "chunked"],
)
async def test_over_max_body_is_413_and_nothing_is_sent(
    emulator: Emulator, headers: bytes, body: bytes
) -> None:
    """A body over max_body is answered 413 before anything goes upstream."""
    async with proxy(route(emulator.cloudfront_url, max_body="2KiB")) as running:
        reply = await raw_request(
            running.port,
            b"POST /orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            + headers
            + b"\r\n"
            + body,
        )
    assert reply.status == 413
    assert reply.json()["error"] == "body_too_large"
    assert reply.json()["route"] == "r"
    assert not emulator.requests


async def test_413_closes_the_connection_once_the_body_is_drained(emulator: Emulator) -> None:
    """A 413 says Connection: close and the proxy closes after taking the rest of the body."""
    async with proxy(route(emulator.cloudfront_url, max_body="2KiB")) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(
            b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
        )
        async with asyncio.timeout(RAW_TIMEOUT):
            reply = await reader.read()  # to the end: the proxy closes
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"\r\nConnection: close" in head
    assert json.loads(body)["error"] == "body_too_large"


async def test_stalled_body_is_408_with_connection_close(emulator: Emulator) -> None:
    """A client that stops sending its body gets a 408 that says Connection: close."""
    async with proxy(route(emulator.cloudfront_url), client_timeouts={"body": "0.2s"}) as running:
        reply = await raw_request(
            running.port, b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\nabc"
        )
    assert reply.status == 408
    assert reply.header("connection") == "close"
    assert reply.json()["error"] == "request_timeout"
    assert not emulator.requests


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize(
    "body",
    [b"Content-Length: 4\r\n\r\nbody", b"Transfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n"],
    ids=["declared", "chunked"],
)
async def test_get_or_head_with_body_is_refused(
    emulator: Emulator, method: bytes, body: bytes
) -> None:
    """CloudFront refuses GET/HEAD with a body; the proxy says so instead of forwarding it."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(
            running.port,
            method + b" /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + body,
        )
    assert reply.status == 400
    assert not emulator.requests


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
async def test_get_or_head_with_an_empty_chunked_body_is_forwarded(
    emulator: Emulator, method: bytes
) -> None:
    """A GET/HEAD sent chunked whose body ends at once goes upstream with no body at all."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(
            running.port,
            method + b" /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
    assert reply.status == 200
    [forwarded] = emulator.requests
    assert forwarded.method == method.decode()
    assert forwarded.verdict.ok
    assert forwarded.body_length == 0
    names = {name.lower() for name, _ in forwarded.headers}
    assert not names & {"transfer-encoding", "content-length"}


async def test_transfer_coding_other_than_chunked_is_501(emulator: Emulator) -> None:
    """A gzip transfer coding is refused with 501; the still-encoded body is never sent."""
    body = gzip.compress(b"hello")
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(
            running.port,
            b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n"
            b"Connection: close\r\n\r\n" + chunked,
        )
    assert reply.status == 501
    assert json.loads(reply.body)["error"] == "not_implemented"
    assert reply.header("x-request-id")
    assert not emulator.requests


async def test_oac_route_adds_the_payload_hash(client: aiohttp.ClientSession) -> None:
    """Mode oac sends no signature of its own, drops the client's, and adds the body hash."""
    async with (
        Emulator(keys={}, oac=True) as oac_emulator,
        proxy(route(oac_emulator.cloudfront_url, mode="oac")) as running,
        client.post(
            f"{running.url}/hooks",
            data=b'{"event": "push"}',
            headers={"Authorization": "Bearer tunnel-token", "Content-Type": "application/json"},
        ) as response,
    ):
        echoed = await _echo(response)
    assert echoed["access_key_id"] == oac_emulator.oac_access_key_id
    assert (
        echoed["headers"]["x-amz-content-sha256"]
        == hashlib.sha256(b'{"event": "push"}').hexdigest()
    )


async def test_streamed_reply_relays_the_first_event_before_the_last_is_written(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A Lambda-style stream reaches the client event by event, not when it is complete."""
    async with (
        proxy(route(emulator.cloudfront_url)) as running,
        client.get(f"{running.url}/stream?chunks=3&delay=0.5") as response,
    ):
        first = await response.content.readuntil(b"\n\n")
        written_when_first_arrived = emulator.requests[-1].stream_events_written
        rest = await response.read()
    assert first == b"data: 0\n\n"
    assert written_when_first_arrived < 3
    assert rest == b"data: 1\n\ndata: 2\n\n"
    assert response.headers["Content-Type"] == "text/event-stream"


async def _reply_server(aiohttp_server: AiohttpServer, handler: Any) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


def _held_stream(gate: asyncio.Event, *, status: int = 200) -> Any:
    """An upstream handler that streams "first;", then waits for ``gate`` to send "second"."""

    async def held_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status)
        await response.prepare(request)
        await response.write(b"first;")
        await asyncio.wait_for(gate.wait(), timeout=10)
        with contextlib.suppress(ConnectionError):  # the proxy may have left by then
            await response.write(b"second")
            await response.write_eof()
        return response

    return held_stream


async def test_first_chunk_arrives_while_the_upstream_is_still_held(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """A chunk is relayed as soon as it arrives: the upstream waits until the client saw it."""
    gate = asyncio.Event()
    upstream = await _reply_server(aiohttp_server, _held_stream(gate))
    async with (
        proxy(route(upstream, mode="none")) as running,
        client.get(f"{running.url}/s") as response,
    ):
        first = await asyncio.wait_for(response.content.readuntil(b";"), timeout=10)
        assert not gate.is_set()
        gate.set()
        rest = await response.read()
    assert (first, rest) == (b"first;", b"second")


async def test_client_leaving_mid_stream_is_logged_with_what_it_was_sent(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that leaves during a streamed reply: its status, the bytes sent, client_gone."""
    released = asyncio.Event()
    upstream = await _reply_server(aiohttp_server, _held_stream(released, status=201))
    with caplog.at_level(logging.INFO, logger="signing_proxy.access"):
        async with proxy(route(upstream, mode="none")) as running:
            async with client.get(f"{running.url}/s") as response:
                assert await response.content.readuntil(b";") == b"first;"
                response.close()  # the client goes away mid-reply
            for _ in range(200):
                lines = [r for r in caplog.records if r.name == "signing_proxy.access"]
                if lines:
                    break
                await asyncio.sleep(0.01)
            released.set()
    (line,) = lines
    assert (line.status, line.bytes_out, line.cut) == (201, 6, "client_gone")  # type: ignore[attr-defined]


async def test_reply_headers_and_body_pass_through_unchanged(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """Status, body bytes, Set-Cookies and Content-Encoding pass; hop-by-hop headers do not."""
    compressed = gzip.compress(b"zipped body")

    async def handler(request: web.Request) -> web.Response:
        response = web.Response(status=418, body=compressed)
        response.headers.add("Content-Encoding", "gzip")
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; HttpOnly")
        response.headers.add("Keep-Alive", "timeout=99")
        response.headers.add("Proxy-Authenticate", "Basic")
        response.headers.add("X-Upstream", "yes")
        return response

    upstream = await _reply_server(aiohttp_server, handler)
    async with (
        proxy(route(upstream, mode="none")) as running,
        client.get(f"{running.url}/teapot") as response,
    ):
        body = await response.read()
    assert response.status == 418
    assert body == compressed
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.headers["X-Upstream"] == "yes"
    assert "Keep-Alive" not in response.headers
    assert "Proxy-Authenticate" not in response.headers


async def test_redirects_are_returned_not_followed(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """A 302 from the upstream goes back to the client as it is."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    upstream = await _reply_server(aiohttp_server, handler)
    async with (
        proxy(route(upstream, mode="none")) as running,
        client.get(f"{running.url}/old", allow_redirects=False) as response,
    ):
        await response.read()
    assert response.status == 302
    assert response.headers["Location"] == "/elsewhere"


async def test_upstream_gets_its_own_host_and_the_prefixed_path(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """Host names the upstream; strip_prefix and the upstream's base path shape the path."""
    seen: list[tuple[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.headers["Host"], request.raw_path))
        return web.Response(text="ok")

    upstream = await _reply_server(aiohttp_server, handler)
    routes = route(upstream + "/v1", mode="none", path_prefix="/api", strip_prefix=True)
    async with (
        proxy(routes) as running,
        client.get(f"{running.url}/api/orders?x=1", headers={"Host": "localhost:1234"}) as response,
    ):
        await response.read()
    assert seen == [(URL(upstream).raw_authority, "/v1/orders?x=1")]


async def test_no_route_is_404_json(client: aiohttp.ClientSession) -> None:
    """A request no route takes gets the proxy's JSON error with route null."""
    routes = route("http://127.0.0.1:9", path_prefix="/api")
    async with proxy(routes) as running, client.get(f"{running.url}/other") as response:
        body = await response.json()
    assert response.status == 404
    assert body["error"] == "no_route"
    assert body["route"] is None
    assert "/other" in body["message"]


async def test_method_not_allowed_is_405_with_allow(client: aiohttp.ClientSession) -> None:
    """A method a route does not take is a 405 with an Allow header."""
    routes = route("http://127.0.0.1:9", methods=["POST"])
    async with proxy(routes) as running, client.get(f"{running.url}/x") as response:
        body = await response.json()
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert body["error"] == "method_not_allowed"


async def test_unexpected_error_is_500_json_with_the_request_id(
    client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug's exception is a JSON 500 carrying X-Request-Id; its details go to the log only."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-looking detail")

    monkeypatch.setattr(outgoing, "upstream_headers", broken)  # a fault inside the pipeline
    async with (
        proxy(route("http://127.0.0.1:9")) as running,
        client.get(f"{running.url}/x", headers={"X-Request-Id": "bug-1"}) as response,
    ):
        body = await response.json()
    assert response.status == 500
    assert response.headers["X-Request-Id"] == "bug-1"
    assert body["error"] == "internal_error"
    assert "bug-1" in body["message"]
    assert "secret-looking detail" not in body["message"]
    logged = [r.exc_info for r in caplog.records if r.exc_info and "bug-1" in r.getMessage()]
    assert logged[0] is not None
    assert "secret-looking detail" in str(logged[0][1])


async def test_connect_is_refused() -> None:
    """CONNECT is never tunnelled: this is not a forward proxy."""
    async with proxy(route("http://127.0.0.1:9")) as running:
        reply = await raw_request(
            running.port,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert reply.status == 405


async def test_absolute_form_target_is_refused(emulator: Emulator) -> None:
    """An absolute-form target naming another host is a 400 and goes nowhere."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(
            running.port,
            b"GET http://evil.example/steal HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert reply.status == 400
    assert not emulator.requests


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_upstream_is_502(client: aiohttp.ClientSession) -> None:
    """A refused connection is a 502 naming the upstream."""
    upstream = f"http://127.0.0.1:{_closed_port()}"
    async with proxy(route(upstream)) as running, client.get(f"{running.url}/x") as response:
        body = await response.json()
    assert response.status == 502
    assert body["error"] == "upstream_unreachable"
    assert upstream in body["message"]


async def test_silent_upstream_is_504(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """No reply within timeouts.first_byte is a 504 naming that timeout."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), timeout=10)
        return web.Response(text="late")

    upstream = await _reply_server(aiohttp_server, handler)
    routes = route(upstream, mode="none", timeouts={"first_byte": "200ms"})
    async with proxy(routes) as running, client.get(f"{running.url}/slow") as response:
        body = await response.json()
        release.set()
    assert response.status == 504
    assert "first_byte" in body["message"]


async def test_upstream_reset_mid_reply_aborts_the_client(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession
) -> None:
    """A reply cut short upstream is cut short for the client too, never made to look whole."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.abort()
        return response

    upstream = await _reply_server(aiohttp_server, handler)
    async with (
        proxy(route(upstream, mode="none")) as running,
        client.get(f"{running.url}/cut") as response,
    ):
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_upstream_reset_mid_reply_resets_an_http10_client(
    aiohttp_server: AiohttpServer,
) -> None:
    """An HTTP/1.0 reply ends where the connection does: a cut one is reset, not closed."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"hello")
        await asyncio.sleep(0.2)  # the proxy relays the first chunk on its own
        assert request.transport is not None
        request.transport.abort()
        return response

    upstream = await _reply_server(aiohttp_server, handler)
    async with proxy(route(upstream, mode="none")) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET /cut HTTP/1.0\r\n\r\n")
        received = bytearray()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(_read_to_end(reader, received), timeout=10)
        writer.close()
    assert received.startswith(b"HTTP/1.0 200 ")
    assert received.endswith(b"hello")


async def _read_to_end(reader: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await reader.read(65536):
        into += chunk


async def test_unavailable_credentials_are_503_naming_the_set(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A route whose credential set cannot resolve answers 503 saying which set and why."""
    routes = route(emulator.cloudfront_url, credentials="dev")
    async with (
        proxy(routes, credentials={"dev": {"profile": "nowhere"}}, overrides=None) as running,
        client.get(f"{running.url}/x") as response,
    ):
        body = await response.json()
    assert response.status == 503
    assert body["error"] == "credentials_unavailable"
    assert "'dev'" in body["message"]
    assert "nowhere" in body["message"]
    assert not emulator.requests


async def test_wrong_region_403_is_explained_in_the_log(
    emulator: Emulator, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Lambda's 403 passes through unchanged and the log says to fix the region."""
    routes = route(emulator.cloudfront_url, sign={"region": "us-east-1"})
    with caplog.at_level(logging.WARNING, logger="signing_proxy"):
        async with proxy(routes) as running, client.get(f"{running.url}/x") as response:
            body = await response.json()
    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "scoped to a valid region" in body["Message"]
    assert "wrong region" in caplog.text


async def test_cloudfront_403_is_explained_in_the_log(
    aiohttp_server: AiohttpServer, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 without x-amzn-ErrorType is reported as CloudFront's own."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=403, text="<html>Request blocked.</html>")

    upstream = await _reply_server(aiohttp_server, handler)
    with caplog.at_level(logging.WARNING, logger="signing_proxy"):
        async with proxy(route(upstream)) as running, client.get(f"{running.url}/x") as response:
            body = await response.read()
    assert response.status == 403
    assert body == b"<html>Request blocked.</html>"
    assert "403 from CloudFront itself" in caplog.text


async def test_expect_continue_is_answered_only_when_the_body_is_wanted(
    emulator: Emulator,
) -> None:
    """With Expect: 100-continue a too-large body is refused before the client uploads it."""
    async with proxy(route(emulator.cloudfront_url, max_body="1KiB")) as running:
        reply = await raw_request(
            running.port,
            b"POST /orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
        )
    assert reply.status == 413
    assert not emulator.requests


async def test_expect_continue_then_body_verifies(emulator: Emulator) -> None:
    """A client that waits for 100 Continue gets it, sends its body, and the request verifies."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        try:
            writer.write(
                b"POST /orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            writer.write(b"hello")
            final = await asyncio.wait_for(reader.read(), timeout=10)
        finally:
            writer.close()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200")
    assert emulator.requests[-1].verdict.ok
    assert emulator.requests[-1].body_sha256 == hashlib.sha256(b"hello").hexdigest()


async def test_unknown_expectation_is_ignored(
    emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """An Expect value other than 100-continue does not stop the request."""
    async with (
        proxy(route(emulator.cloudfront_url)) as running,
        client.post(f"{running.url}/x", data=b"{}", headers={"Expect": "something"}) as response,
    ):
        await _echo(response)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /x HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    ids=["header-field", "request-line"],
)
async def test_oversized_request_head_is_refused(emulator: Emulator, request_bytes: bytes) -> None:
    """A header field or request line over 8 KiB is a 400 and goes nowhere."""
    async with proxy(route(emulator.cloudfront_url)) as running:
        reply = await raw_request(running.port, request_bytes)
    assert reply.status in (400, 431)
    assert not emulator.requests
