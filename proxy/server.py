"""The inbound side: the aiohttp app, its one proxy handler, the error middleware, the lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy import routing, sigv4
from proxy.body import Body, read_body, too_large
from proxy.credentials import CredentialProvider, Credentials, Fetch, build_providers, mask
from proxy.diagnosis import explain_403
from proxy.errors import (
    BadRequestError,
    ConfigError,
    MethodNotAllowedError,
    ProxyError,
    TooManyRequestsError,
    UnauthorizedError,
)
from proxy.headers import request_headers
from proxy.inbound import InboundCheck
from proxy.limits import Admission
from proxy.settings import Address, Config, Route
from proxy.upstream import client_session, exchange, relay

log = logging.getLogger("signing_proxy")
access_log = logging.getLogger("signing_proxy.access")

CONFIG = web.AppKey("config", Config)
PROVIDERS = web.AppKey("providers", dict[str, CredentialProvider])
SESSION = web.AppKey("session", aiohttp.ClientSession)
OVERRIDES = web.AppKey("credential_overrides", dict[str, Fetch])


@dataclass(frozen=True, slots=True)
class Guard:
    """What a route checks before it reads a body: admission, then who is calling."""

    admission: Admission
    inbound: InboundCheck | None


GUARDS = web.AppKey("guards", dict[str, Guard])

EMPTY_BODY = Body(size=0, sha256=sigv4.EMPTY_SHA256, memory=b"", file=None)
# GET and HEAD with a body are refused by CloudFront (403); say so here instead.
_BODILESS = frozenset({"GET", "HEAD"})
# Catch-all: any path, newlines included once aiohttp has decoded it.
_EVERY_PATH = r"/{path:[\s\S]*}"


def build_app(
    config: Config, *, credential_overrides: Mapping[str, Fetch] | None = None
) -> web.Application:
    """The proxy app; its credential providers and upstream session live in cleanup_ctx."""
    app = web.Application(middlewares=[_errors])
    app[CONFIG] = config
    app[OVERRIDES] = dict(credential_overrides or {})
    now = time.monotonic()
    app[GUARDS] = {
        route.name: Guard(
            admission=Admission(route, now=now),
            inbound=InboundCheck(route.inbound, route=route.name) if route.inbound else None,
        )
        for route in config.routes
    }
    app.cleanup_ctx.append(_credentials)
    app.cleanup_ctx.append(_upstream_session)
    app.router.add_route("*", _EVERY_PATH, _proxy, expect_handler=_expect_later)
    return app


@dataclass(frozen=True, slots=True)
class Running:
    """A started proxy: where it listens."""

    app: web.Application
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def running(
    config: Config,
    *,
    listen: Address | None = None,
    credential_overrides: Mapping[str, Fetch] | None = None,
) -> AsyncIterator[Running]:
    """Start the proxy on ``listen`` (default: the config's), stop it on exit."""
    address = listen or config.listen
    # Bind before resolving credentials: a busy port is the first thing a user should hear of.
    sock = _listening_socket(address)
    app = build_app(config, credential_overrides=credential_overrides)
    # auto_decompress=False: the body forwarded and hashed must be the bytes the client sent.
    # handler_cancellation: a client that goes away cancels its upstream request too.
    # keepalive_timeout also closes a connection whose request headers have not all arrived
    # by then (aiohttp arms it at connect): the bound on slow-loris clients.
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        auto_decompress=False,
        shutdown_timeout=5,
        keepalive_timeout=config.client_timeouts.headers,
    )
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    _warn_if_exposed(config, address)
    try:
        host, port = sock.getsockname()[:2]
        yield Running(app, host, port)
    finally:
        await runner.cleanup()


def _warn_if_exposed(config: Config, address: Address) -> None:
    unprotected = config.unauthenticated_routes
    if unprotected and not address.is_loopback:
        log.warning(
            "LISTENING ON %s WITHOUT INBOUND AUTHENTICATION on route(s) %s "
            "(allow_unauthenticated: true): anyone who reaches this address can call them "
            "with your AWS identity",
            address,
            ", ".join(unprotected),
        )


def _listening_socket(address: Address) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    try:
        return socket.create_server((address.host, address.port), family=family)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError("listen", f"cannot listen on {address}: {reason}") from exc


def describe_routes(config: Config) -> list[str]:
    """One line per route, printed at start."""
    lines = []
    for route in config.routes:
        methods = ",".join(sorted(route.methods)) if route.methods else "any method"
        host = f" host {route.host}" if route.host else ""
        line = f"  {route.name}: {route.path_prefix}{host} ({methods}) -> {route.upstream.origin}"
        if route.mode == "iam" and route.signing is not None:
            signing = route.signing
            line += (
                f"  [iam: signs for {signing.host}, {signing.service}/{signing.region}, "
                f"credentials {route.credentials!r}]"
            )
        else:
            line += f"  [{route.mode}]"
        lines.append(line)
    return lines


async def _credentials(app: web.Application) -> AsyncIterator[None]:
    """Resolve every credential set an iam route uses, then keep them fresh until shutdown."""
    config = app[CONFIG]
    used = {route.credentials for route in config.routes if route.mode == "iam"}
    wanted = _with_sources(config, used)
    sets = tuple(item for item in config.credentials if item.name in wanted)
    providers = build_providers(sets, overrides=app[OVERRIDES])
    app[PROVIDERS] = providers
    for provider in providers.values():  # sources come before the sets that chain on them
        await provider.refresh()
        if provider.error:
            routes = [r.name for r in config.routes if r.credentials == provider.name]
            log.error(
                "credentials %r (%s) cannot be resolved: %s; routes %s answer 503 until they "
                "resolve (retrying in the background)",
                provider.name,
                provider.describe,
                provider.error,
                ", ".join(routes) or "(none directly)",
            )
    tasks = [asyncio.create_task(p.run(), name=f"refresh {p.name}") for p in providers.values()]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for provider in providers.values():
            await provider.close()


def _with_sources(config: Config, names: set[str]) -> set[str]:
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            source = config.credential_set(name).source
            if source:
                pending.append(source)
    return wanted


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    async with client_session() as session:
        app[SESSION] = session
        yield


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer the proxy's own errors as JSON ``{"error", "message", "route"}``."""
    try:
        if request.method == "CONNECT":
            raise MethodNotAllowedError(
                "CONNECT is not supported: this is a reverse proxy, not a forward proxy",
                allowed=frozenset(),
            )
        return await handler(request)
    except ProxyError as exc:
        log.warning(
            "%s %s %s -> %d %s",
            request.remote,
            request.method,
            _log_path(request),
            exc.status,
            exc.message,
        )
        return _error_response(exc)
    except web.HTTPException as exc:
        # aiohttp's router answers targets that are not a path before our handler runs.
        if exc.status >= 500:
            raise
        return _error_response(BadRequestError(f"the request target was refused ({exc.reason})"))


def _error_response(exc: ProxyError) -> web.Response:
    response = web.json_response(exc.to_json(), status=exc.status)
    if isinstance(exc, MethodNotAllowedError):
        response.headers["Allow"] = ", ".join(sorted(exc.allowed))
    elif isinstance(exc, UnauthorizedError) and exc.challenge:
        response.headers["WWW-Authenticate"] = exc.challenge
    elif isinstance(exc, TooManyRequestsError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _expect_later(request: web.Request) -> None:
    """Defer ``Expect: 100-continue`` to _read_body, so that a request refused by routing or
    by its declared size is answered before the client uploads the body. Other expectations
    are ignored, as RFC 9110 §10.1.1 allows."""


async def _proxy(request: web.Request) -> web.StreamResponse:
    """The pipeline: route, read and hash the body, sign, send, stream the reply back."""
    started = time.monotonic()
    config = request.app[CONFIG]
    found = routing.match(
        config.routes, method=request.method, host=request.host, target=request.raw_path
    )
    route = found.route
    guard = request.app[GUARDS][route.name]
    with guard.admission.admit(time.monotonic()):
        body_check = None
        if guard.inbound is not None:
            guard.inbound.check_peer(
                peer=request.remote, forwarded_for=request.headers.getall("X-Forwarded-For", [])
            )
            body_check = guard.inbound.check_headers(request.headers, now=time.time())
        body = await _read_body(request, route, observe=body_check.update if body_check else None)
        delivered = False
        try:
            if body_check is not None:
                body_check.verify()  # before anything is signed or sent
            out = await _forward(request, found, body, inbound=guard.inbound)
            delivered = 200 <= out.status < 300
        finally:
            body.close()
            if body_check is not None:
                # A webhook the function did not take may come again without being a replay.
                body_check.settle(delivered=delivered)
    access_log.info(
        "%s %s %s -> %d (%.1f ms)",
        route.name,
        request.method,
        found.path,
        out.status,
        (time.monotonic() - started) * 1000,
    )
    return out


async def _forward(
    request: web.Request, found: routing.Match, body: Body, *, inbound: InboundCheck | None
) -> web.StreamResponse:
    """Sign, send and relay; when AWS rejects the credentials themselves, refresh them and
    send once more, re-signed (the body is re-sent from memory or the spool)."""
    route = found.route
    headers = request_headers(request.headers.items(), mode=route.mode, rules=route.headers)
    if inbound is not None:
        inbound.strip_credentials(headers)  # the tunnel's token is not the function's business
    if route.mode != "none":
        # OAC and Lambda need it on every request with a body; it costs nothing on the rest.
        headers["x-amz-content-sha256"] = body.sha256
    provider = request.app[PROVIDERS][route.credentials] if route.mode == "iam" else None
    url = route.upstream.origin + found.path + (f"?{found.query}" if found.query else "")
    total = route.timeouts.total
    deadline = None if total is None else asyncio.get_running_loop().time() + total
    retried = False
    while True:
        used = _sign(request.method, found, headers, body, provider) if provider else None
        async with exchange(
            request.app[SESSION],
            route=route,
            method=request.method,
            url=url,
            headers=headers,
            body=body,
            deadline=deadline,
        ) as upstream:
            error_type = upstream.headers.get("x-amzn-ErrorType")
            if used is None or retried or not _rejects_credentials(upstream.status, error_type):
                out, error_body = await relay(request, upstream, route=route, deadline=deadline)
                if upstream.status == 403:
                    log.warning(
                        "route %s: upstream answered 403 %s: %s",
                        route.name,
                        error_type or "(from CloudFront)",
                        explain_403(route=route, error_type=error_type, body=error_body or b""),
                    )
                return out
        assert provider is not None  # noqa: S101 - used is only set with a provider
        log.warning(
            "route %s: AWS answered %s for credentials %r (%s); refreshing them and retrying once",
            route.name,
            error_type,
            provider.name,
            mask(used.access_key),
        )
        await provider.replace(used)
        retried = True


def _rejects_credentials(status: int, error_type: str | None) -> bool:
    """Lambda refused the key or token itself, which fresh credentials can cure."""
    kind = (error_type or "").partition(":")[0]
    return status == 403 and kind in ("ExpiredTokenException", "UnrecognizedClientException")


async def _read_body(
    request: web.Request, route: Route, *, observe: Callable[[bytes], None] | None
) -> Body:
    """The whole body, hashed; refused early when its declared length is already too much."""
    if not request.body_exists:
        return EMPTY_BODY
    if request.method in _BODILESS:
        raise BadRequestError(
            f"a {request.method} request with a body is refused by CloudFront; "
            "send the body with POST or PUT",
            route=route.name,
        )
    declared = request.content_length
    if declared is not None and declared > route.max_body:
        raise too_large(route.max_body, route.name)
    if (
        request.version == aiohttp.HttpVersion11
        and request.headers.get("Expect", "").lower() == "100-continue"
    ):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # an interim reply: the real one has not started
    return await read_body(
        request.content.iter_any(),
        limit=route.max_body,
        route=route.name,
        idle_timeout=request.app[CONFIG].client_timeouts.body,
        observe=observe,
    )


def _sign(
    method: str,
    found: routing.Match,
    headers: CIMultiDict[str],
    body: Body,
    provider: CredentialProvider,
) -> Credentials:
    """Set X-Amz-Date, the session token and Authorization, signed for the route's host with
    one credentials snapshot, taken now; returns that snapshot."""
    route = found.route
    signing = route.signing
    assert signing is not None  # noqa: S101 - config guarantees a signing target for iam
    now = time.time()
    credentials = provider.snapshot(now, route=route.name)
    amz_date = sigv4.format_amz_date(now)
    signed = [
        ("host", signing.host),
        ("x-amz-content-sha256", body.sha256),
        ("x-amz-date", amz_date),
    ]
    if credentials.token:
        signed.append(("x-amz-security-token", credentials.token))
    signature = sigv4.sign(
        method=method,
        path=found.path,
        query=found.query,
        headers=signed,
        payload_hash=body.sha256,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        region=signing.region,
        service=signing.service,
        amz_date=amz_date,
    )
    headers["x-amz-date"] = amz_date
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    else:
        headers.popall("x-amz-security-token", None)
    headers["Authorization"] = signature.authorization
    return credentials


def _log_path(request: web.BaseRequest) -> str:
    # Query strings can carry secrets (tokens in webhooks); log the path only.
    return request.raw_path.partition("?")[0][:200]
