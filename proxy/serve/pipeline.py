"""The one request pipeline: route, admit, check the caller, read and hash the body, sign, send,
stream the reply back. What the request did is written to its ``Outcome`` on the way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy.core import routing, sigv4
from proxy.core.front_door import check_browser
from proxy.core.headers import request_headers
from proxy.core.inbound import InboundCheck
from proxy.core.refusals import explain_403, message_of
from proxy.core.retries import RetryPolicy
from proxy.errors import (
    BadRequestError,
    BodyTooLargeError,
    NotImplementedByProxyError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)
from proxy.http11.client import Reply
from proxy.model import Route
from proxy.serve.body import MEMORY_LIMIT, Body, read_body, received_body, too_large
from proxy.serve.clock import SigningClock, refused_for_time
from proxy.serve.credentials import CredentialProvider, Credentials, mask
from proxy.serve.state import Generation, State
from proxy.serve.upstream import Pools, Relayed, exchange, read_error_body, relay

log = logging.getLogger("signing_proxy")

EMPTY_BODY = Body(size=0, sha256=sigv4.EMPTY_SHA256, memory=b"", file=None)
_XFF = "X-Forwarded-For"
# GET and HEAD with a body are refused by CloudFront (403); say so here instead.
_BODILESS = frozenset({"GET", "HEAD"})


@dataclass(slots=True)
class Outcome:
    """What one request did, filled in as it goes; logged and counted when it ends."""

    request_id: str
    route: str | None = None
    path: str | None = None
    upstream_status: int | None = None
    upstream_seconds: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    amzn_request_id: str | None = None
    amzn_error_type: str | None = None
    cut: str | None = None  # why the reply stopped short, when it did
    # What the inspector shows; references to what was built anyway, so cheap to keep.
    upstream_url: str | None = None
    sent_headers: CIMultiDict[str] | None = None
    signature: sigv4.Signature | None = None
    diagnosis: str | None = None
    body: bytes | None = None  # kept only while the inspector is on
    replay_of: int | None = None  # the inspector entry this request replays
    relayed: Relayed | None = None  # the reply to the client, once it is being sent

    def relaying(self, relayed: Relayed) -> None:
        self.relayed = relayed


async def handle(
    request: web.BaseRequest, state: State, pools: Pools, outcome: Outcome
) -> web.StreamResponse:
    """The pipeline, for one request, on the generation current when it arrived; ``state``
    and ``pools`` are what all requests share."""
    generation = state.current
    headers = request.headers
    host = headers.get("Host")
    named_only = False
    if not generation.hosts.allows(host):  # before anything else: a rebinding page's Host
        if not generation.route_hosts.allows(host):
            raise generation.hosts.refuse(host)
        named_only = True  # a tunnel's host: only the routes that name it, not the catch-all
    if state.inspector is not None:
        outcome.replay_of = state.inspector.replay_of(headers)
    found = routing.match(
        generation.config.routes,
        method=request.method,
        host=host,
        target=request.raw_path,
        named_only=named_only,
    )
    route = found.route
    outcome.route, outcome.path = route.name, found.path
    check_browser(headers, route, host=host, scheme=request.scheme)
    guard = generation.guards[route.name]
    with state.metrics.in_flight_on(route.name):
        body_check = None
        # A replay from the inspector (loopback admin port, secret token) was checked when
        # it first came; its webhook delivery id would now look like a replay attack.
        inbound = guard.inbound if outcome.replay_of is None else None
        if inbound is not None:
            inbound.check_peer(peer=request.remote, forwarded_for=headers.getall(_XFF, []))
            body_check = inbound.check_headers(headers, now=time.time())
        # Credentials in the headers are checked before a rate-limit token or a slot is
        # taken, so that strangers cannot spend them; a signature over the body is known
        # only once the body is read, so such a route admits a request after it verified.
        admitted = None if body_check is not None else guard.admission.admit(time.monotonic())
        try:
            body = await _read_body(
                request, generation, found, observe=body_check.update if body_check else None
            )
            outcome.bytes_in = body.size
            if state.inspector is not None:
                outcome.body = body.in_memory
            delivered = False
            try:
                if body_check is not None:
                    body_check.verify()  # before anything is signed or sent
                    admitted = guard.admission.admit(time.monotonic())
                relayed = await _forward(
                    request, state, pools, outcome, generation, found, body, inbound=inbound
                )
                outcome.bytes_out, outcome.cut = relayed.bytes_out, relayed.cut
                delivered = relayed.complete and 200 <= relayed.response.status < 300
            finally:
                body.close()
                if body_check is not None:
                    # A webhook the function did not take may come again without being a
                    # replay.
                    body_check.settle(delivered=delivered)
        finally:
            if admitted is not None:
                admitted.leave()
    return relayed.response


async def _forward(
    request: web.BaseRequest,
    state: State,
    pools: Pools,
    outcome: Outcome,
    generation: Generation,
    found: routing.Match,
    body: Body,
    *,
    inbound: InboundCheck | None,
) -> Relayed:
    """Sign, send and relay; when AWS rejects the credentials themselves, refresh them and
    send once more, re-signed (the body is re-sent from memory or the spool)."""
    route = found.route
    headers = request_headers(request.headers, mode=route.mode, rules=route.headers)
    if inbound is not None:
        inbound.strip_credentials(headers)  # the tunnel's token is not the function's business
    headers["X-Request-Id"] = outcome.request_id
    if peer := request.remote:
        # Appended, as nginx's $proxy_add_x_forwarded_for: passed on alone, a client's own
        # X-Forwarded-For would name whoever it liked as the caller.
        earlier = headers.getall(_XFF, None)
        headers[_XFF] = ", ".join([*earlier, peer]) if earlier else peer
    if route.mode != "none":
        # OAC and Lambda need it on every request with a body; it costs nothing on the rest.
        headers["x-amz-content-sha256"] = body.sha256
    provider = generation.providers[route.credentials] if route.mode == "iam" else None
    target = found.path + (f"?{found.query}" if found.query else "")
    outcome.upstream_url, outcome.sent_headers = route.upstream.origin + target, headers
    loop = asyncio.get_running_loop()
    total = route.timeouts.total
    deadline = None if total is None else loop.time() + total
    policy = RetryPolicy(route.retries, request.method, now=loop.time(), wall_clock=time.time())
    clock = state.clock
    may_refresh = may_fix_clock = True
    while True:
        # Signed afresh for every attempt: a new X-Amz-Date, the current credentials.
        used = None
        if provider is not None:
            used, outcome.signature = _sign(
                request.method, found, headers, body, provider, now=clock.now()
            )
        attempt = _Attempt(request, pools, clock, outcome, route, target, headers, body, deadline)
        step = await attempt.run(
            policy,
            refresh=used is not None and may_refresh,
            fix_clock=used is not None and may_fix_clock,
        )
        if isinstance(step, Relayed):
            return step
        if not isinstance(step, _Again):
            await asyncio.sleep(step)  # a retry's wait
        elif step is _CLOCK:
            may_fix_clock = False  # the attempt corrected the clock: sign again
        else:  # _REFRESH
            assert provider is not None  # noqa: S101 - only signed attempts ask for it
            assert used is not None  # noqa: S101
            log.warning(
                "route %s: AWS answered %s for credentials %r (%s); refreshing them and "
                "retrying once",
                route.name,
                outcome.amzn_error_type,
                provider.name,
                mask(used.access_key),
            )
            await provider.replace(used)
            may_refresh = False


class _Again:
    """Send again at once, signed afresh: after fresh credentials (AWS refused the ones it
    got), or with a corrected clock (AWS refused the signature's time). Each once."""


_REFRESH = _Again()
_CLOCK = _Again()


@dataclass(slots=True)
class _Attempt:
    """One send of the request, and what to do next: the relayed reply, a retry after some
    seconds, or fresh credentials first."""

    request: web.BaseRequest
    pools: Pools
    clock: SigningClock
    outcome: Outcome
    route: Route
    target: str  # path and query, as signed
    headers: CIMultiDict[str]
    body: Body
    deadline: float | None

    async def run(
        self, policy: RetryPolicy, *, refresh: bool, fix_clock: bool
    ) -> Relayed | float | _Again:
        route = self.route
        loop = asyncio.get_running_loop()
        sent = time.monotonic()
        try:
            upstream = await exchange(
                self.pools.pool(route),
                route=route,
                method=self.request.method,
                target=self.target,
                headers=self.headers,
                body=self.body,
                deadline=self.deadline,
            )
        except (UpstreamUnreachableError, UpstreamTimeoutError) as exc:
            # Only a connection never made is safe to try again whatever the method.
            wait = policy.after_connect_failure(now=loop.time()) if exc.nothing_sent else None
            if wait is None or _past(self.deadline, loop.time() + wait):
                raise
            log.warning("route %s: %s; trying again in %.2fs", route.name, exc.message, wait)
            return wait
        try:
            self.outcome.upstream_seconds = time.monotonic() - sent
            return await self._answered(upstream, policy, refresh=refresh, fix_clock=fix_clock)
        finally:
            upstream.release()

    async def _answered(
        self, upstream: Reply, policy: RetryPolicy, *, refresh: bool, fix_clock: bool
    ) -> Relayed | float | _Again:
        """What to do with the upstream's reply: relay it, or try again (and when)."""
        route, outcome = self.route, self.outcome
        outcome.upstream_status = upstream.status
        outcome.amzn_request_id = upstream.headers.get("x-amzn-RequestId")
        error_type = outcome.amzn_error_type = upstream.headers.get("x-amzn-ErrorType")
        if refresh and _rejects_credentials(upstream.status, error_type):
            return _REFRESH
        error_body = None
        clock = self.clock
        # The first reply tells whether this clock is off; a 403 may say AWS minds.
        if not clock.checked or upstream.status == 403:
            skew = clock.observe(upstream.headers.get("Date"), local=time.time())
            if fix_clock and skew is not None and upstream.status == 403:
                error_body = await read_error_body(upstream, route=route, deadline=self.deadline)
                if refused_for_time(error_type, message_of(error_body)):
                    clock.correct(skew)
                    return _CLOCK
        now = asyncio.get_running_loop().time()
        wait = policy.after_status(upstream.status, upstream.headers.get("Retry-After"), now=now)
        if wait is None or _past(self.deadline, now + wait):
            return await _relay(
                self.request, outcome, upstream, route, self.deadline, error_type, error_body
            )
        log.warning(
            "route %s: upstream answered %d; trying again in %.2fs (attempt %d of %d)",
            route.name,
            upstream.status,
            wait,
            policy.attempts,
            route.retries.attempts,
        )
        return wait


async def _relay(
    request: web.BaseRequest,
    outcome: Outcome,
    upstream: Reply,
    route: Route,
    deadline: float | None,
    error_type: str | None,
    error_body: bytes | None,
) -> Relayed:
    relayed = await relay(
        request,
        upstream,
        route=route,
        deadline=deadline,
        request_id=outcome.request_id,
        error_body=error_body,
        started=outcome.relaying,
    )
    if upstream.status == 403:
        explanation = outcome.diagnosis = explain_403(
            route=route, error_type=error_type, body=relayed.error_body or b""
        )
        log.warning(
            "route %s: upstream answered 403 %s: %s",
            route.name,
            error_type or "(from CloudFront)",
            explanation,
        )
    return relayed


def _past(deadline: float | None, moment: float) -> bool:
    """Whether ``moment`` is beyond timeouts.total's deadline (no retry can start then)."""
    return deadline is not None and moment >= deadline


def _rejects_credentials(status: int, error_type: str | None) -> bool:
    """Lambda refused the key or token itself, which fresh credentials can cure."""
    kind = (error_type or "").partition(":")[0]
    return status == 403 and kind in ("ExpiredTokenException", "UnrecognizedClientException")


async def _read_body(
    request: web.BaseRequest,
    generation: Generation,
    found: routing.Match,
    *,
    observe: Callable[[bytes], None] | None,
) -> Body:
    """The whole body, hashed; refused early when its declared length is already too much."""
    route = found.route
    if not request.body_exists:
        return EMPTY_BODY
    codings = [
        token.strip().lower()
        for value in request.headers.getall("Transfer-Encoding", ())
        for token in value.split(",")
    ]
    if any(coding not in ("chunked", "") for coding in codings):
        # aiohttp undoes only the chunking: the body would go on still encoded, as if plain.
        raise NotImplementedByProxyError(
            f"Transfer-Encoding {', '.join(codings)} is not supported; send the body with "
            "Content-Length or chunked only (a compressed body says so in Content-Encoding)",
            route=route.name,
        )
    declared = request.content_length
    if request.method in _BODILESS:
        # Some clients send every request chunked: a last chunk straight away is no body.
        if declared is None and await _chunked_is_empty(request, generation, route.name):
            return EMPTY_BODY
        raise BadRequestError(
            f"a {request.method} request with a body is refused by CloudFront; "
            "send the body with POST or PUT",
            route=route.name,
        )
    if declared is not None and declared > route.max_body:
        raise too_large(route.max_body, route.name)
    if (
        request.version == aiohttp.HttpVersion11
        and request.headers.get("Expect", "").lower() == "100-continue"
    ):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # an interim reply: the real one has not started
    elif declared is not None and declared <= MEMORY_LIMIT and request.content.is_eof():
        # The whole body came with the headers (most small requests): take it as it is.
        return received_body(
            request.content.read_nowait(), limit=route.max_body, route=route.name, observe=observe
        )
    timeouts = generation.config.client_timeouts
    return await read_body(
        request.content.iter_any(),
        limit=route.max_body,
        route=route.name,
        idle_timeout=timeouts.body,
        total_timeout=timeouts.body_total,
        observe=observe,
    )


async def _chunked_is_empty(request: web.BaseRequest, generation: Generation, route: str) -> bool:
    """Whether a chunked body ends before its first byte (read no further than that)."""
    try:
        await read_body(
            request.content.iter_any(),
            limit=0,
            route=route,
            idle_timeout=generation.config.client_timeouts.body,
        )
    except BodyTooLargeError:
        return False
    return True


def _sign(
    method: str,
    found: routing.Match,
    headers: CIMultiDict[str],
    body: Body,
    provider: CredentialProvider,
    *,
    now: float,
) -> tuple[Credentials, sigv4.Signature]:
    """Set X-Amz-Date, the session token and Authorization, signed for the route's host at
    ``now`` with one credentials snapshot, taken then; returns that snapshot and the
    signature."""
    route = found.route
    signing = route.signing
    assert signing is not None  # noqa: S101 - config guarantees a signing target for iam
    credentials = provider.snapshot(now, route=route.name)
    signature, sent = signing.sign(
        credentials,
        method=method,
        path=found.path,
        query=found.query,
        payload_hash=body.sha256,
        amz_date=sigv4.format_amz_date(now),
    )
    if not credentials.token:
        headers.popall("x-amz-security-token", None)  # left by an earlier attempt's credentials
    headers.update(sent)
    return credentials, signature
