"""`signing-proxy check`, probe step: send one route's probe upstream as the proxy would send
it (signed as the route signs, for mode iam) and keep what the reply says about it."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDict
from yarl import URL

from proxy.core import routing, sigv4
from proxy.core.headers import request_headers
from proxy.model import Route
from proxy.serve.credentials import Credentials
from proxy.serve.upstream import ERROR_BODY_LIMIT, forward_proxy

# The probe adds no headers of its own (a User-Agent or Accept-Encoding would change what the
# origin sees and answers).
_SKIP_AUTO_HEADERS = frozenset(
    {hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE}
)


def client_session(ssl_context: ssl.SSLContext) -> aiohttp.ClientSession:
    """The session probes go through: no cookies, no decompression, no redirects."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_context),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=_SKIP_AUTO_HEADERS,
        timeout=aiohttp.ClientTimeout(total=None),
    )


# Refusals that come before the function runs; a HEAD refused with one of these is asked
# again as GET, whose reply carries AWS's message (a reply to HEAD has no body).
_AUTH_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "ExpiredTokenException",
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "UnrecognizedClientException",
    }
)


@dataclass(frozen=True, slots=True)
class ProbeReply:
    """What came back for one probe; ``body`` is at most ERROR_BODY_LIMIT bytes."""

    method: str
    target: str  # the path and query as sent upstream
    status: int
    headers: CIMultiDict[str]
    body: bytes
    skew: float | None  # the reply's Date minus this machine's clock, seconds
    canonical_request: str | None  # what the proxy signed (mode iam)
    asked_again: bool = False  # a refused HEAD was sent again as GET to read AWS's message

    @property
    def error_type(self) -> str | None:
        """Lambda's x-amzn-ErrorType, without the namespace it sometimes appends."""
        value = self.headers.get("x-amzn-ErrorType")
        return value.partition(":")[0] if value else None


class ProbeFailed(Exception):
    """No reply: the connection failed or timed out."""


async def send_probe(
    session: aiohttp.ClientSession,
    route: Route,
    credentials: Credentials | None,
    *,
    within: float,
) -> ProbeReply:
    """Send the route's probe (signed when ``credentials`` are given) within ``within`` s."""
    path, query = routing.split_target(route.probe.target or route.path_prefix)
    path = routing.upstream_path(route, path)
    reply = await _send(session, route, route.probe.method, path, query, credentials, within)
    if reply.method == "HEAD" and reply.error_type in _AUTH_ERRORS:
        # Refused before the function runs, so a GET runs nothing either; it says why.
        again = await _send(session, route, "GET", path, query, credentials, within)
        return ProbeReply(
            method=reply.method,  # what the probe is; the GET only reads the reason
            target=again.target,
            status=again.status,
            headers=again.headers,
            body=again.body,
            skew=again.skew,
            canonical_request=again.canonical_request,
            asked_again=True,
        )
    return reply


async def _send(
    session: aiohttp.ClientSession,
    route: Route,
    method: str,
    path: str,
    query: str,
    credentials: Credentials | None,
    within: float,
) -> ProbeReply:
    headers = request_headers(CIMultiDict(), mode=route.mode, rules=route.headers)
    canonical = None
    if route.mode != "none":
        headers["x-amz-content-sha256"] = sigv4.EMPTY_SHA256  # as the proxy sends it (OAC needs it)
    if route.mode == "iam" and credentials is not None and route.signing is not None:
        signature, sent = route.signing.sign(
            credentials,
            method=method,
            path=path,
            query=query,
            payload_hash=sigv4.EMPTY_SHA256,
            amz_date=sigv4.format_amz_date(time.time()),
        )
        headers.update(sent)
        canonical = signature.canonical_request
    target = path + (f"?{query}" if query else "")
    # encoded=True: sent byte for byte as signed, as the proxy sends it.
    url = URL(route.upstream.origin + target, encoded=True)
    try:
        async with asyncio.timeout(within):
            async with session.request(
                method,
                url,
                headers=headers,
                allow_redirects=False,
                proxy=forward_proxy(route.upstream.scheme, route.upstream.host),
            ) as response:
                local = time.time()
                body = await response.content.read(ERROR_BODY_LIMIT)
                return ProbeReply(
                    method=method,
                    target=target,
                    status=response.status,
                    headers=CIMultiDict(response.headers),
                    body=body,
                    skew=_skew(response.headers.get("Date"), local),
                    canonical_request=canonical,
                )
    except TimeoutError:
        raise ProbeFailed(f"no reply within {within:g}s (--timeout)") from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise ProbeFailed(f"the TLS certificate was not accepted: {exc.certificate_error}") from exc
    except aiohttp.ClientConnectorError as exc:
        raise ProbeFailed(f"could not connect: {exc.os_error}") from exc
    except aiohttp.ClientError as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ProbeFailed(f"the connection failed before a reply ({text})") from exc


def _skew(date: str | None, local: float) -> float | None:
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp() - local
    except (TypeError, ValueError):
        return None
