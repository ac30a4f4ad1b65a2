"""TLS on both sides and forward proxies: an HTTPS listener, a corporate CA, HTTP(S)_PROXY."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from proxy.config.load import parse_config
from proxy.emulator import Emulator
from proxy.errors import ConfigError
from proxy.serve.server import running
from proxy.serve.upstream import forward_proxy
from tests.stack import FIXED_KEYS, proxy, route


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A throwaway certificate authority, made by the test."""
    return trustme.CA()


@pytest.fixture
def certificate(authority: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 and its key, as PEM files."""
    issued = authority.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No forward proxy from the machine; the per-upstream choice is recomputed."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    forward_proxy.cache_clear()
    yield monkeypatch
    forward_proxy.cache_clear()


def _client_trusting(authority: trustme.CA) -> aiohttp.ClientSession:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


async def test_https_listener(
    authority: trustme.CA, certificate: tuple[Path, Path], emulator: Emulator
) -> None:
    """With tls: the proxy answers HTTPS with its certificate, and requests still verify."""
    cert, key = certificate
    document = {
        "listen": "127.0.0.1:0",
        "tls": {"cert_file": str(cert), "key_file": str(key)},
        "routes": [route(emulator.cloudfront_url)],
    }
    async with (
        running(parse_config(document), credential_overrides=FIXED_KEYS) as started,
        _client_trusting(authority) as client,
        client.get(f"{started.url}/secure") as response,
    ):
        echoed = await response.json()
    assert started.url.startswith("https://127.0.0.1:")
    assert echoed["verified"] is True


async def test_plain_http_to_the_https_listener_gets_nothing(
    certificate: tuple[Path, Path], client: aiohttp.ClientSession
) -> None:
    """A plain-HTTP client does not get a reply from the TLS listener."""
    cert, key = certificate
    document = {
        "listen": "127.0.0.1:0",
        "tls": {"cert_file": str(cert), "key_file": str(key)},
        "routes": [route("http://127.0.0.1:9", mode="none")],
    }
    async with running(parse_config(document)) as started:
        plain = started.url.replace("https://", "http://")
        with pytest.raises(aiohttp.ClientError):
            async with client.get(f"{plain}/x") as response:
                await response.read()


async def _https_upstream(aiohttp_server: AiohttpServer, authority: trustme.CA) -> str:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="over tls")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    server = await aiohttp_server(app, ssl=context)
    return f"https://localhost:{server.port}"


async def test_upstream_certificate_from_a_corporate_ca(
    aiohttp_server: AiohttpServer,
    authority: trustme.CA,
    tmp_path: Path,
    client: aiohttp.ClientSession,
    clean_proxy_env: pytest.MonkeyPatch,
) -> None:
    """An upstream signed by a private CA is refused (502) until upstream_tls.ca_file names it."""
    upstream = await _https_upstream(aiohttp_server, authority)
    ca_file = tmp_path / "corporate-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    async with (
        proxy(route(upstream, mode="none")) as untrusting,
        client.get(f"{untrusting.url}/x") as refused,
    ):
        refusal = await refused.json()
    async with (
        running(
            parse_config(
                {
                    "listen": "127.0.0.1:0",
                    "upstream_tls": {"ca_file": str(ca_file)},
                    "routes": [route(upstream, mode="none")],
                }
            )
        ) as trusting,
        client.get(f"{trusting.url}/x") as accepted,
    ):
        text = await accepted.text()
    assert refused.status == 502
    assert "certificate" in refusal["message"]
    assert (accepted.status, text) == (200, "over tls")


async def test_http_proxy_from_the_environment_and_no_proxy(
    aiohttp_server: AiohttpServer,
    client: aiohttp.ClientSession,
    clean_proxy_env: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY carries requests to the upstream; NO_PROXY exempts a host."""
    seen: list[str] = []

    async def forward_proxy_stub(request: web.Request) -> web.Response:
        seen.append(request.raw_path)  # a forward proxy gets the absolute URL
        return web.Response(text="through the corporate proxy")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward_proxy_stub)
    stub = await aiohttp_server(app)
    clean_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{stub.port}")
    clean_proxy_env.setenv("NO_PROXY", "direct.internal")
    routes: list[dict[str, Any]] = [
        route("http://orders.internal", mode="none", name="proxied", path_prefix="/p"),
        route("http://direct.internal:9", mode="none", name="direct", path_prefix="/d"),
    ]
    async with proxy(*routes) as started:
        async with client.get(f"{started.url}/p/1?x=1") as through:
            text = await through.text()
        async with client.get(f"{started.url}/d/1") as direct:
            await direct.read()
    assert (through.status, text) == (200, "through the corporate proxy")
    assert seen == ["http://orders.internal/p/1?x=1"]
    assert direct.status == 502  # tried directly: direct.internal does not resolve


@pytest.mark.parametrize(
    ("section", "says"),
    [
        (
            {"tls": {"cert_file": "/nonexistent/cert.pem", "key_file": "/nonexistent/key.pem"}},
            "cannot read",
        ),
        ({"tls": {"cert_file": "/etc/hostname", "key_file": "/etc/hostname"}}, "cannot load"),
        ({"upstream_tls": {"ca_file": "/etc/hostname"}}, "no usable certificate"),
        ({"tls": {"cert_file": "x.pem"}}, "required"),
    ],
    ids=["missing", "not-pem", "bad-ca", "no-key"],
)
def test_tls_mistakes_stop_the_start(section: dict[str, Any], says: str) -> None:
    """A certificate, key or CA bundle that will not load is a config error at start."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"routes": [route("http://127.0.0.1:9", mode="none")], **section})
    assert says in caught.value.message
    assert caught.value.path.split(".")[0] in section
