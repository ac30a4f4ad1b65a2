"""The one request pipeline: route, admit, check the caller, read and hash the body, sign, send,
stream the reply back. What the request did is written to its ``Outcome`` on the way."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from proxy.core import routing
from proxy.core.front_door import check_browser
from proxy.errors import (
    BadRequestError,
    BodyTooLargeError,
    NotImplementedByProxyError,
)
from proxy.serve.body import EMPTY_BODY, MEMORY_LIMIT, Body, read_body, received_body, too_large
from proxy.serve.forward import FORWARDED_FOR, forward
from proxy.serve.outcome import Outcome
from proxy.serve.state import Generation, State
from proxy.serve.upstream import Pools

log = logging.getLogger("signing_proxy")

# GET and HEAD with a body are refused by CloudFront (403); say so here instead.
_BODILESS = frozenset({"GET", "HEAD"})


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
            inbound.check_peer(peer=request.remote, forwarded_for=headers.getall(FORWARDED_FOR, []))
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
                relayed = await forward(
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
