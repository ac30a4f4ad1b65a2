"""Upstream TLS trust: the operating system's authorities (truststore on macOS and Windows) plus
``upstream_tls.ca_file``; an authority in neither is refused."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from proxy.config import tls

GUARD = 30.0


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """The authority that signed the local server's certificate (a corporate CA, say)."""
    return trustme.CA()


@pytest.fixture
def ca_file(authority: trustme.CA, tmp_path: Path) -> str:
    """That authority's certificate as a PEM file, what upstream_tls.ca_file names."""
    path = tmp_path / "corporate-ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def https_port(authority: trustme.CA) -> AsyncIterator[int]:
    """A local TLS server for localhost whose certificate ``authority`` issued."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.fixture(params=["truststore", "openssl"])
def verifier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way client_context can verify: truststore (as on macOS and Windows), or OpenSSL."""
    # truststore is a test dependency: no skip, the test fails where it is missing.
    monkeypatch.setattr(tls, "_OS_VERIFIES", request.param == "truststore")
    return str(request.param)


async def _handshake(port: int, context: ssl.SSLContext) -> None:
    async with asyncio.timeout(GUARD):
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        writer.close()
        await writer.wait_closed()


def _is_truststore(context: ssl.SSLContext) -> bool:
    found = sys.modules.get("truststore")
    return found is not None and isinstance(context, found.SSLContext)


async def test_ca_file_authority_is_trusted(verifier: str, ca_file: str, https_port: int) -> None:
    """A server whose authority is in ca_file passes verification, with either verifier."""
    context = tls.client_context(ca_file)
    assert _is_truststore(context) == (verifier == "truststore")
    await _handshake(https_port, context)


@pytest.mark.parametrize("with_ca_file", [False, True], ids=["no-ca-file", "other-ca-file"])
async def test_unknown_authority_is_refused(
    verifier: str, with_ca_file: bool, tmp_path: Path, https_port: int
) -> None:
    """A server whose authority is neither the system's nor ca_file's fails verification."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    context = tls.client_context(str(other) if with_ca_file else None)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(https_port, context)


async def test_without_truststore_openssl_verifies(
    monkeypatch: pytest.MonkeyPatch, ca_file: str, https_port: int
) -> None:
    """Where the OS would verify but truststore is not installed, OpenSSL verifies, ca_file too."""
    monkeypatch.setattr(tls, "_OS_VERIFIES", True)
    monkeypatch.setitem(sys.modules, "truststore", None)  # import truststore raises ImportError
    context = tls.client_context(ca_file)
    assert type(context) is ssl.SSLContext
    await _handshake(https_port, context)
