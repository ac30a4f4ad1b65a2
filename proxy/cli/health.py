"""`signing-proxy health`: exit 0 when the admin listener answers /healthz (the image's
HEALTHCHECK), finding that listener where the proxy does."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from proxy.config.load import admin_of
from proxy.config.values import parse_host_port
from proxy.errors import ConfigError
from proxy.model import Address

DEFAULT_ADMIN = Address("127.0.0.1", 9901)
# A wildcard listener is reached on this machine's loopback.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - not a bind


def health(url: str | None, *, config_path: str | None) -> int:
    """GET ``url`` (default: the admin listener's /healthz); 0 on 200 within 3 s, else 1."""
    url = url or health_url(config_path)
    if not url.startswith(("http://", "https://")):
        raise ConfigError("--url", f"{url!r} is not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - scheme checked
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"{url}: {getattr(exc, 'reason', exc)}")
        return 1
    print(f"{url}: {status}")
    return 0 if status == 200 else 1


def health_url(config_path: str | None) -> str:
    """/healthz on the admin address of the config file, else of SIGNING_PROXY_ADMIN, else
    127.0.0.1:9901: so the HEALTHCHECK follows wherever the admin listener was moved."""
    admin = admin_of(config_path) if config_path else None
    if admin is None and (variable := os.environ.get("SIGNING_PROXY_ADMIN")):
        admin = Address(
            *parse_host_port(variable, path="SIGNING_PROXY_ADMIN", example="127.0.0.1:9901")
        )
    admin = admin or DEFAULT_ADMIN
    host = _LOOPBACK.get(admin.host, admin.host)
    authority = f"[{host}]:{admin.port}" if ":" in host else f"{host}:{admin.port}"
    return f"http://{authority}/healthz"
