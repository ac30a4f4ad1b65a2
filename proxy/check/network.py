"""`signing-proxy check`, upstream step: resolve each upstream's host, connect to it, and
complete a TLS handshake (SNI, the configured CA file) for https upstreams."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from typing import Any

from proxy.check.report import Finding, Mark
from proxy.model import Upstream
from proxy.serve.upstream import forward_proxy


class _Failed(Exception):
    """A step that failed: what happened, and how to fix it."""

    def __init__(self, what: str, fixes: tuple[str, ...] = ()) -> None:
        super().__init__(what)
        self.what = what
        self.fixes = fixes


async def check_upstream(
    upstream: Upstream, *, ssl_context: ssl.SSLContext, within: float
) -> Finding:
    """DNS, TCP and (https) TLS for one upstream, each bounded by ``within`` seconds."""
    headline = f"upstream {upstream.origin}"
    via = forward_proxy(upstream.scheme, upstream.host)
    if via is not None:
        note = (
            f"reached through the forward proxy {via} (HTTPS_PROXY/HTTP_PROXY): the probes test it"
        )
        return Finding(Mark.OK, headline, (note,))
    details: list[str] = []
    try:
        addresses = await _resolve(upstream, within)
        details.append(f"DNS: {', '.join(addresses)}")
        address, elapsed, writer = await _connect(upstream, addresses, within)
        details.append(f"TCP: connected to {_joined(address, upstream.port)} in {elapsed}")
        try:
            if upstream.scheme == "https":
                details.append(await _handshake(upstream, writer, ssl_context, within))
        finally:
            await _close(writer, within)
    except _Failed as failed:
        return Finding(Mark.FAIL, headline, (*details, failed.what), failed.fixes)
    return Finding(Mark.OK, headline, tuple(details))


async def _resolve(upstream: Upstream, within: float) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            infos = await loop.getaddrinfo(upstream.host, upstream.port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise _Failed(
            f"DNS: no answer for {upstream.host} within {within:g}s",
            ("check this machine's DNS servers (a VPN that must be up?)",),
        ) from None
    except socket.gaierror as exc:
        raise _Failed(
            f"DNS: cannot resolve {upstream.host} ({exc.strerror})",
            (
                f"check the upstream's host name {upstream.host!r} (routes[].upstream), and "
                "this machine's DNS (a VPN that must be up?)",
            ),
        ) from exc
    # getaddrinfo lists an address once per protocol family entry; keep the first of each.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _connect(
    upstream: Upstream, addresses: list[str], within: float
) -> tuple[str, str, asyncio.StreamWriter]:
    """The first address that accepts a connection, as the proxy's client would use."""
    problems: list[str] = []
    for address in addresses:
        started = time.monotonic()
        try:
            async with asyncio.timeout(within):
                _, writer = await asyncio.open_connection(address, upstream.port)
        except TimeoutError:
            problems.append(f"{_joined(address, upstream.port)}: no answer within {within:g}s")
            continue
        except OSError as exc:
            problems.append(f"{_joined(address, upstream.port)}: {exc.strerror or exc}")
            continue
        return address, f"{(time.monotonic() - started) * 1000:.0f} ms", writer
    raise _Failed(
        f"TCP: could not connect ({'; '.join(problems)})",
        (
            f"check that {upstream.origin} is up and listens on port {upstream.port}, and that "
            "no firewall blocks it (set HTTPS_PROXY if this network only goes out through a "
            "proxy)",
        ),
    )


async def _handshake(
    upstream: Upstream, writer: asyncio.StreamWriter, context: ssl.SSLContext, within: float
) -> str:
    try:
        async with asyncio.timeout(within):
            await writer.start_tls(context, server_hostname=upstream.host)
    except TimeoutError:
        raise _Failed(
            f"TLS: no handshake within {within:g}s", ("check that the port speaks HTTPS",)
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise _Failed(
            f"TLS: the certificate was not accepted: {exc.verify_message}",
            _certificate_fixes(upstream, exc.verify_message or ""),
        ) from exc
    except (ssl.SSLError, OSError) as exc:
        raise _Failed(
            f"TLS: handshake failed: {getattr(exc, 'reason', None) or exc}",
            ("check that the upstream speaks HTTPS on this port (else use an http:// upstream)",),
        ) from exc
    tls = writer.get_extra_info("ssl_object")
    certificate = writer.get_extra_info("peercert") or {}
    until = certificate.get("notAfter", "?")
    version = tls.version() if tls else "?"
    return f"TLS: {version}, certificate for {_subject(certificate)}, valid until {until}"


async def _close(writer: asyncio.StreamWriter, within: float) -> None:
    writer.close()
    # A TLS close waits for the peer's close_notify; a peer that never sends one is not waited for.
    with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
        async with asyncio.timeout(within):
            await writer.wait_closed()


def _certificate_fixes(upstream: Upstream, reason: str) -> tuple[str, ...]:
    if "local issuer" in reason or "self-signed" in reason or "self signed" in reason:
        return (
            "the certificate comes from an authority this machine does not trust (a "
            "TLS-inspecting corporate proxy?): put that authority's PEM in upstream_tls.ca_file",
        )
    if "Hostname mismatch" in reason or "doesn't match" in reason:
        return (
            f"the certificate is not for {upstream.host}: use the distribution's own "
            "d….cloudfront.net name, or add this name as an alternate domain name with a "
            "matching ACM certificate",
        )
    if "expired" in reason:
        return (f"the certificate of {upstream.host} has expired: renew it (ACM)",)
    return ()


def _subject(certificate: dict[str, Any]) -> str:
    """The certificate's common name, else its DNS names."""
    for entry in certificate.get("subject", ()):
        for key, value in entry:
            if key == "commonName":
                return str(value)
    names = [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]
    return ", ".join(names) or "?"


def _joined(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
