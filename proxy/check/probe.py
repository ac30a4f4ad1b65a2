"""`signing-proxy check`, probe step: send one route's probe upstream as the proxy would send
it (signed as the route signs, for mode iam) and keep what the reply says about it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from multidict import CIMultiDict

from proxy.core import outgoing, routing, sigv4
from proxy.core.credentials import Credentials
from proxy.core.refusals import before_function, classify
from proxy.errors import UpstreamTimeoutError, UpstreamUnreachableError
from proxy.model import Route
from proxy.serve.body import EMPTY_BODY
from proxy.serve.upstream import Pools, exchange, read_error_body


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
    pools: Pools,
    route: Route,
    credentials: Credentials | None,
    *,
    within: float,
) -> ProbeReply:
    """Send the route's probe (signed when ``credentials`` are given) within ``within`` s."""
    path, query = routing.split_target(route.probe.target or route.path_prefix)
    path = routing.upstream_path(route, path)
    reply = await _send(pools, route, route.probe.method, path, query, credentials, within)
    # A HEAD refused before the function runs is asked again as GET, whose reply carries
    # AWS's message (a reply to HEAD has no body).
    if reply.method == "HEAD" and before_function(classify(reply.status, reply.error_type)):
        # Refused before the function runs, so a GET runs nothing either; it says why.
        again = await _send(pools, route, "GET", path, query, credentials, within)
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
    pools: Pools,
    route: Route,
    method: str,
    path: str,
    query: str,
    credentials: Credentials | None,
    within: float,
) -> ProbeReply:
    """One probe through the proxy's own upstream client, built as ``serve`` builds requests:
    what ``check`` finds is what ``serve`` meets."""
    headers = outgoing.upstream_headers(CIMultiDict(), route, payload_hash=sigv4.EMPTY_SHA256)
    canonical = None
    if route.mode == "iam" and credentials is not None and route.signing is not None:
        signature = outgoing.sign(
            headers,
            route.signing,
            credentials,
            method=method,
            path=path,
            query=query,
            payload_hash=sigv4.EMPTY_SHA256,
            amz_date=sigv4.format_amz_date(time.time()),
        )
        canonical = signature.canonical_request
    target = outgoing.request_target(path, query)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        reply = await exchange(
            pools.pool(route),
            route=route,
            method=method,
            target=target,
            headers=headers,
            body=EMPTY_BODY,
            deadline=deadline,
        )
        try:
            local = time.time()
            # Up to ERROR_BODY_LIMIT bytes: enough for AWS's or CloudFront's reason.
            body = await read_error_body(reply, route=route, deadline=deadline)
        finally:
            reply.release()
    except (UpstreamUnreachableError, UpstreamTimeoutError) as exc:
        if loop.time() >= deadline:
            raise ProbeFailed(f"no reply within {within:g}s (--timeout)") from exc
        raise ProbeFailed(exc.message) from exc
    return ProbeReply(
        method=method,
        target=target,
        status=reply.status,
        headers=CIMultiDict(reply.headers),
        body=body,
        skew=_skew(reply.headers.get("Date"), local),
        canonical_request=canonical,
    )


def _skew(date: str | None, local: float) -> float | None:
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp() - local
    except (TypeError, ValueError):
        return None
