"""Fixtures shared by the tests: no real AWS credentials, a local STS (moto), the emulator,
an upstream that holds requests in flight."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from moto.server import ThreadedMotoServer
from pytest_aiohttp import AiohttpServer

from proxy.emulator import Emulator
from tests.stack import KEY, KEY_ID, HeldUpstream, StartHeld


@pytest.fixture(autouse=True)
def isolated_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests never see real credentials: no AWS_* variables, HOME in a temp dir, no IMDS."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    # The chain would otherwise try 169.254.169.254 and wait for its timeout.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


@pytest.fixture(scope="session")
def moto_sts_url() -> Iterator[str]:
    """moto's server on a free port of 127.0.0.1, standing in for STS."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def local_sts(moto_sts_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point botocore's STS client at moto, with throwaway keys for the caller."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_sts_url)
    return moto_sts_url


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """Emulated CloudFront in front of an emulated function URL that knows the test key."""
    async with Emulator(keys={KEY_ID: KEY}) as started:
        yield started


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that changes nothing it is given: no decompression, no redirects followed,
    and a 30 s bound so that a broken test fails instead of hanging."""
    async with aiohttp.ClientSession(
        auto_decompress=False, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session


HOLD_GUARD = 30.0  # upper bound against a hung test, never a measurement


@pytest.fixture
def held_upstream(aiohttp_server: AiohttpServer) -> StartHeld:
    """Start a ``HeldUpstream`` on 127.0.0.1 that answers ``text`` once released."""

    async def start(text: str) -> HeldUpstream:
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            entered.set()
            await asyncio.wait_for(release.wait(), HOLD_GUARD)
            return web.Response(text=text)

        app = web.Application()
        app.router.add_get("/{tail:.*}", slow)
        server = await aiohttp_server(app)
        return HeldUpstream(str(server.make_url("")), entered, release)

    return start
