"""The admin listener, off the proxied paths: liveness, readiness, Prometheus metrics, reload,
and the request inspector when it is on.

It answers only to the Host names it serves (a DNS-rebinding page could otherwise read it), and
``POST /reload`` never to a browser: a request carrying ``Origin`` or ``Sec-Fetch-Site`` is
refused, as curl and the kubelet send neither. Beyond loopback, reloading over HTTP needs the
config's reload token (``Authorization: Bearer``), and is off without one (SIGHUP still works).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from proxy.core.front_door import HostPolicy, admin_hosts
from proxy.core.inbound import same_secret, wire_bytes
from proxy.errors import ConfigError
from proxy.inspector.routes import register
from proxy.inspector.store import Inspector
from proxy.model import Address, Config, Secret
from proxy.serve.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger("signing_proxy.admin")

_CHALLENGE = 'Bearer realm="signing-proxy admin"'


@dataclass(frozen=True, slots=True)
class AdminAccess:
    """Whom the admin listener answers: the Host names it serves, and what a reload needs."""

    hosts: HostPolicy
    reload_token: Secret | None
    exposed: bool  # listening beyond loopback


class AccessOf:
    """The AdminAccess of the config in effect now, built again only when that changes."""

    def __init__(self, config: Callable[[], Config], admin: Address) -> None:
        self._config = config
        self._admin = admin
        self._built: tuple[Config, AdminAccess] | None = None

    def __call__(self) -> AdminAccess:
        config = self._config()
        if self._built is None or self._built[0] is not config:
            admin = self._admin
            access = AdminAccess(
                admin_hosts(config, admin), config.reload_token, not admin.is_loopback
            )
            self._built = (config, access)
        return self._built[1]


@dataclass(frozen=True, slots=True)
class AdminHooks:
    """What the endpoints ask: why not ready (empty when ready), the metrics, a reload, and
    whom to answer."""

    not_ready: Callable[[], list[str]]
    metrics: Callable[[], bytes]
    reload: Callable[[], Awaitable[None]]  # raises ConfigError for an invalid config
    access: Callable[[], AdminAccess]


HOOKS = web.AppKey("admin_hooks", AdminHooks)


def admin_app(hooks: AdminHooks, *, inspector: Inspector | None = None) -> web.Application:
    """``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``POST /reload``; with an
    ``inspector``, its page and API under ``/inspect``."""
    app = web.Application(middlewares=[_served_hosts])
    app[HOOKS] = hooks
    if inspector is not None:
        register(app, inspector)  # the inspector's page, API and stream
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/reload", _reload)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _served_hosts(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a Host the listener does not serve, before any endpoint sees the request."""
    hosts = request.app[HOOKS].access().hosts
    host = request.headers.get("Host")
    if not hosts.allows(host):
        refusal = hosts.refuse(host)
        return web.json_response(refusal.to_json(), status=refusal.status)
    return await handler(request)


async def _healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    """Config loaded, every credential set usable, not draining: send traffic."""
    reasons = request.app[HOOKS].not_ready()
    if reasons:
        return web.json_response({"ready": False, "reasons": reasons}, status=503)
    return web.json_response({"ready": True})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[HOOKS].metrics()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _reload(request: web.Request) -> web.Response:
    """Re-read the config; an invalid one is refused and the running one kept."""
    hooks = request.app[HOOKS]
    refusal = _reload_refusal(request, hooks.access())
    if refusal is not None:
        log.warning("POST /reload from %s refused: %s", request.remote, refusal.text)
        return refusal
    try:
        await hooks.reload()
    except ConfigError as exc:
        log.error("reload refused, keeping the running config: %s", exc)
        return web.json_response({"reloaded": False, "error": str(exc)}, status=400)
    return web.json_response({"reloaded": True})


def _reload_refusal(request: web.Request, access: AdminAccess) -> web.Response | None:
    """Why this POST /reload is not carried out, as its reply; None when it may be."""
    headers = request.headers
    if "Origin" in headers or "Sec-Fetch-Site" in headers:
        return _refused(
            403,
            "POST /reload is refused from a browser (the request carries Origin or "
            "Sec-Fetch-Site), so that no web page can make the proxy reload; use "
            "curl -X POST, or send the proxy SIGHUP",
        )
    token = access.reload_token
    if token is None:
        if not access.exposed:
            return None
        return _refused(
            403,
            "POST /reload is off on an admin address beyond loopback unless the config sets "
            "reload_token_env or reload_token_file (then send Authorization: Bearer <token>); "
            "or send the proxy SIGHUP",
        )
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        refusal = _refused(
            401, "POST /reload needs the reload token: Authorization: Bearer <token>"
        )
        refusal.headers["WWW-Authenticate"] = _CHALLENGE
        return refusal
    if not same_secret(wire_bytes(given.strip()), token.value):
        return _refused(403, "the reload token is wrong")
    return None


def _refused(status: int, message: str) -> web.Response:
    return web.json_response({"reloaded": False, "error": message}, status=status)
