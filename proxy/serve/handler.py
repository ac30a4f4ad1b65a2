"""The proxy listener's request handler: every request gets an id and an ``Outcome``, runs the
pipeline, and ends with one access-log line, its metrics and (with --inspect) an inspector
entry, also when it failed or was cut short. The proxy's own errors are answered here, as JSON
``{"error", "message", "route"}`` with the headers the error carries.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from proxy.errors import (
    CredentialsUnavailableError,
    MethodNotAllowedError,
    ProxyError,
)
from proxy.inspector.exchange import Seen
from proxy.model import METHODS
from proxy.serve.logs import ACCESS_LOGGER, log_access
from proxy.serve.metrics import Metrics
from proxy.serve.outcome import Outcome
from proxy.serve.pipeline import handle
from proxy.serve.state import State
from proxy.serve.upstream import Pools

log = logging.getLogger("signing_proxy")
access_log = logging.getLogger(ACCESS_LOGGER)
# A client's request id is kept when it is a sane token; anything else is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_METHODS = frozenset(METHODS)  # the others count as "other": a bounded label set


class Handler:
    """Every request of the proxy's listener: give it an id and an Outcome and run the
    pipeline; answer the proxy's own errors as JSON ``{"error", "message", "route"}``; then
    log one access line and count it."""

    def __init__(self, state: State, pools: Pools) -> None:
        self._state = state
        self._pools = pools
        self.in_flight: set[asyncio.Task[Any]] = set()  # the tasks running a request now
        self.emptied: asyncio.Event | None = None  # set by the last request out, once draining
        self._cutting = False

    def cut_all(self) -> None:
        """Cancel every request in flight: the drain's grace is over."""
        self._cutting = True
        for task in self.in_flight:
            task.cancel()

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.monotonic()
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - aiohttp runs each request in a task
        self.in_flight.add(task)
        offered = request.headers.get("X-Request-Id", "")
        outcome = Outcome(offered if _REQUEST_ID.fullmatch(offered) else _new_request_id())
        state = self._state
        # The generation the pipeline takes too (nothing is awaited in between).
        secret_headers = state.current.secret_headers if state.inspector is not None else None
        error: ProxyError | None = None
        response: web.StreamResponse | None = None
        status = 500  # what aiohttp answers for an exception that escapes
        try:
            if request.method == "CONNECT":
                raise MethodNotAllowedError(
                    "CONNECT is not supported: this is a reverse proxy, not a forward proxy",
                    allowed=frozenset(),
                )
            response = await handle(request, state, self._pools, outcome)
        except ProxyError as exc:
            error = exc
            response = _error_response(exc, outcome.request_id)
        except asyncio.CancelledError:
            relayed = outcome.relayed
            if relayed is not None:  # cut while its reply was being sent: what it got
                status, outcome.bytes_out = relayed.response.status, relayed.bytes_out
            elif self._cutting:
                status = 503  # the drain gave up on it before its reply began
            else:
                status = 499  # the client went away first (nginx's name for it)
            if self._cutting:
                outcome.cut = "shutdown"
            elif outcome.upstream_status is not None and outcome.cut is None:
                outcome.cut = "client_gone"
            raise
        except Exception:
            if request.writer.output_size:  # the reply has begun: aiohttp cuts the connection
                raise
            # A bug: the traceback goes to the log only (it may quote what the request held),
            # and the client gets the same JSON shape and request id as for any other error.
            log.exception("request %s failed on an unexpected error", outcome.request_id)
            error = ProxyError(
                "the proxy failed on an unexpected error; its log has the details under "
                f"request id {outcome.request_id}",
                route=outcome.route,
            )
            response = _error_response(error, outcome.request_id)
        else:
            status = response.status
        finally:
            self.in_flight.discard(task)
            if self.emptied is not None and not self.in_flight:
                self.emptied.set()
            # Every request gets its line and its count, also one cut short.
            if error is not None:
                status = error.status
            _account(state.metrics, request, outcome, status, error, started)
            if state.inspector is not None and secret_headers is not None:
                seen = _seen(request, outcome, response, status, error, started)
                state.inspector.record(seen, secret_headers=secret_headers)
        assert response is not None  # noqa: S101 - every other path raised
        return response


# Request ids: a random prefix per process and a counter, unique across workers and restarts
# and much cheaper than a uuid4 per request.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def _account(
    metrics: Metrics,
    request: web.BaseRequest,
    outcome: Outcome,
    status: int,
    error: ProxyError | None,
    started: float,
) -> None:
    route = outcome.route or (error.route if error else None) or ""
    failure = None
    if isinstance(error, CredentialsUnavailableError):
        failure = "no_credentials"
    elif outcome.upstream_status == 403 and outcome.amzn_error_type:
        failure = "rejected_by_aws"
    metrics.record(
        route=route,
        method=request.method if request.method in _METHODS else "other",
        status=status,
        bytes_in=outcome.bytes_in,
        bytes_out=outcome.bytes_out,
        upstream_seconds=outcome.upstream_seconds,
        cut=outcome.cut,
        signing_failure=failure,
    )
    level = logging.WARNING if error or outcome.cut else logging.INFO
    if access_log.isEnabledFor(level):  # the line costs more than the rest: only when wanted
        _log_access(request, outcome, route, status, error, started, level)


def _seen(
    request: web.BaseRequest,
    outcome: Outcome,
    response: web.StreamResponse | None,
    status: int,
    error: ProxyError | None,
    started: float,
) -> Seen:
    """The request as the inspector shows it."""
    duration = time.monotonic() - started
    sent = None
    if outcome.sent_headers is not None and outcome.upstream_url is not None:
        sent = [("Host", urlsplit(outcome.upstream_url).netloc), *outcome.sent_headers.items()]
    signature = outcome.signature
    return Seen(
        request_id=outcome.request_id,
        started=time.time() - duration,
        duration=duration,
        method=request.method,
        target=request.raw_path,
        route=outcome.route or (error.route if error else None),
        status=status,
        upstream_status=outcome.upstream_status,
        bytes_in=outcome.bytes_in,
        bytes_out=outcome.bytes_out,
        amzn_request_id=outcome.amzn_request_id,
        amzn_error_type=outcome.amzn_error_type,
        request_headers=list(request.headers.items()),
        sent_headers=sent,
        response_headers=list(response.headers.items()) if response is not None else [],
        canonical_request=signature.canonical_request if signature else None,
        string_to_sign=signature.string_to_sign if signature else None,
        diagnosis=error.message if error is not None else outcome.diagnosis,
        error=error.code if error is not None else None,
        body=outcome.body,
        replay_of=outcome.replay_of,
        error_body=outcome.relayed.error_body if outcome.relayed is not None else None,
    )


def _log_access(
    request: web.BaseRequest,
    outcome: Outcome,
    route: str,
    status: int,
    error: ProxyError | None,
    started: float,
    level: int,
) -> None:
    # Query strings can carry secrets (tokens in webhooks): the path only.
    path = outcome.path or request.raw_path.partition("?")[0][:200]
    duration_ms = round((time.monotonic() - started) * 1000, 1)
    text = (
        f"{route or '-'} {request.method} {path} -> {status}"
        f" (upstream {outcome.upstream_status or '-'}) {duration_ms} ms"
        f" in={outcome.bytes_in} out={outcome.bytes_out} id={outcome.request_id}"
    )
    if error is not None:
        text += f" {error.code}: {error.message}"
    if outcome.cut is not None:
        text += f" reply cut short: {outcome.cut}"

    def fields() -> dict[str, Any]:  # the JSON format's keys, built only where they are shown
        entry = {
            "request_id": outcome.request_id,
            "client": request.remote,
            "route": route or None,
            "method": request.method,
            "path": path,
            "status": status,
            "upstream_status": outcome.upstream_status,
            "duration_ms": duration_ms,
            "bytes_in": outcome.bytes_in,
            "bytes_out": outcome.bytes_out,
            "amzn_request_id": outcome.amzn_request_id,
            "amzn_error_type": outcome.amzn_error_type,
            "cut": outcome.cut,
        }
        if error is not None:
            entry |= {"error": error.code, "error_message": error.message}
        return entry

    log_access(level, text, fields)


def _error_response(exc: ProxyError, request_id: str) -> web.Response:
    response = web.json_response(exc.to_json(), status=exc.status)
    response.headers["X-Request-Id"] = request_id
    if exc.closes_connection:
        # aiohttp still reads (and drops) what is left of the body for up to 10 s first, so
        # the client can read this reply instead of meeting a reset.
        response.force_close()
    response.headers.update(exc.reply_headers())
    return response
