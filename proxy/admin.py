"""The admin listener, off the proxied paths: liveness, readiness, Prometheus metrics, reload,
and the request inspector when it is on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from proxy.errors import ConfigError
from proxy.inspector import Inspector
from proxy.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger("signing_proxy.admin")


@dataclass(frozen=True, slots=True)
class AdminHooks:
    """What the endpoints ask: why not ready (empty when ready), the metrics, a reload."""

    not_ready: Callable[[], list[str]]
    metrics: Callable[[], bytes]
    reload: Callable[[], Awaitable[None]]  # raises ConfigError for an invalid config


HOOKS = web.AppKey("admin_hooks", AdminHooks)


def admin_app(hooks: AdminHooks, *, inspector: Inspector | None = None) -> web.Application:
    """``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``POST /reload``; with an
    ``inspector``, its page and API under ``/inspect``."""
    app = web.Application()
    app[HOOKS] = hooks
    if inspector is not None:
        inspector.add_routes(app)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/reload", _reload)
    return app


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
    try:
        await request.app[HOOKS].reload()
    except ConfigError as exc:
        log.error("reload refused, keeping the running config: %s", exc)
        return web.json_response({"reloaded": False, "error": str(exc)}, status=400)
    return web.json_response({"reloaded": True})
