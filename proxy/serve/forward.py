"""Sign, send and relay one request: every attempt signed afresh (a new X-Amz-Date, the current
credentials); a retry after a connect failure or a retryable status, within timeouts.total;
once fresh credentials when AWS refused the ones it got, and once a corrected clock when AWS
refused the signature's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from proxy.core import outgoing, routing, sigv4
from proxy.core.credentials import Credentials, mask
from proxy.core.inbound import InboundCheck
from proxy.core.refusals import classify, curable_by_fresh_credentials, explain_403, message_of
from proxy.core.retries import RetryPolicy
from proxy.errors import (
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)
from proxy.http11.reply import Reply
from proxy.model import Route
from proxy.serve.body import Body
from proxy.serve.clock import SigningClock, refused_for_time
from proxy.serve.credentials import CredentialProvider
from proxy.serve.outcome import Outcome
from proxy.serve.state import Generation, State
from proxy.serve.upstream import Pools, Relayed, exchange, read_error_body, relay

log = logging.getLogger("signing_proxy")

FORWARDED_FOR = "X-Forwarded-For"


async def forward(
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
    headers = outgoing.upstream_headers(request.headers, route, payload_hash=body.sha256)
    if inbound is not None:
        inbound.strip_credentials(headers)  # the tunnel's token is not the function's business
    headers["X-Request-Id"] = outcome.request_id
    if peer := request.remote:
        # Appended, as nginx's $proxy_add_x_forwarded_for: passed on alone, a client's own
        # X-Forwarded-For would name whoever it liked as the caller.
        earlier = headers.getall(FORWARDED_FOR, None)
        headers[FORWARDED_FOR] = ", ".join([*earlier, peer]) if earlier else peer
    provider = generation.providers[route.credentials] if route.mode == "iam" else None
    target = outgoing.request_target(found.path, found.query)
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
    return status == 403 and curable_by_fresh_credentials(classify(status, error_type))


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
    signature = outgoing.sign(
        headers,
        signing,
        credentials,
        method=method,
        path=found.path,
        query=found.query,
        payload_hash=body.sha256,
        amz_date=sigv4.format_amz_date(now),
    )
    return credentials, signature
