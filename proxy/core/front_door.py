"""Pure: who may knock at all, before any credential is looked at.

Two doors that no inbound check sees are closed here. A DNS-rebinding page makes the browser
send requests to 127.0.0.1 under the attacker's own host name, so the Host a request names must
be one this proxy serves: loopback, the listen address, ``allowed_hosts:`` or a route's
``host:`` (checked before routing). A page of another site can send a form or a ``no-cors``
fetch straight to ``http://127.0.0.1:8080``, so a request a browser marks as coming from another
origin (``Sec-Fetch-Site``, ``Origin``) is refused unless the route lists that origin in
``allowed_origins:`` (checked after routing). Non-browser clients send neither header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from proxy.core.inbound import parse_ip
from proxy.errors import CrossSiteError, HostNotAllowedError
from proxy.model import Address, Config, Route

LOOPBACK_NAMES = frozenset({"localhost"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - compared with, not bound
# Distinct Host values remembered with their verdict; a client sending endless new ones only
# makes them be decided afresh, never grows the memory.
_CACHE_SIZE = 256
_CROSS = frozenset({"cross-site", "same-site"})


def host_name(header: str | None) -> str:
    """The host a Host header names: lower-case, no port, no trailing dot, IPv6 in brackets."""
    if not header:
        return ""
    host = header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        if end > 0 and (not rest or (rest[0] == ":" and rest[1:].isdigit())):
            return host[: end + 1]
        return host  # "[::1", "[::1]x": malformed, so no address and nothing served
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        if not port.isdigit():
            return host  # "localhost:evil": not a port, so not localhost either
        host = name
    return host.removesuffix(".")


def is_loopback(name: str) -> bool:
    """Whether a host name (as ``host_name`` gives it) is this machine's loopback."""
    if name in LOOPBACK_NAMES:
        return True
    address = _ip(name)
    return address is not None and address.is_loopback


class HostPolicy:
    """The hosts a listener serves: loopback (unless ``loopback`` is False), plus ``names``
    (``*.example.com`` takes every name under example.com); with ``ip_literals``, any IP
    address too."""

    __slots__ = ("_cache", "_ip_literals", "_loopback", "_names", "_suffixes")

    def __init__(
        self, names: Iterable[str] = (), *, ip_literals: bool = False, loopback: bool = True
    ) -> None:
        exact, suffixes = set(), []
        for name in names:
            if name.startswith("*."):
                suffixes.append(name[1:])
            else:
                exact.add(_canonical(name))
        self._names = frozenset(exact)
        self._suffixes = tuple(suffixes)
        self._ip_literals = ip_literals
        self._loopback = loopback
        self._cache: dict[str | None, bool] = {}

    def allows(self, header: str | None) -> bool:
        """Whether a request with this Host header is served. A request without one (HTTP/1.0)
        is: browsers always send Host, and only a browser can be steered by rebinding."""
        verdict = self._cache.get(header)
        if verdict is None:
            verdict = header is None or self._decide(host_name(header))
            if len(self._cache) < _CACHE_SIZE:
                self._cache[header] = verdict
        return verdict

    def refuse(self, header: str | None) -> HostNotAllowedError:
        """The 421 for a Host this policy does not serve."""
        shown = repr(header[:100]) if header else "(none)"
        return HostNotAllowedError(
            f"Host {shown} is not a host this proxy serves: only loopback (localhost, "
            "127.0.0.1, [::1]), the listen address and the hosts in allowed_hosts: or a "
            "route's host: are, so that a DNS-rebinding web page cannot use your AWS identity. "
            "For a tunnel (ngrok, cloudflared), put its host name in the host: of a route "
            "that has inbound: (anyone can reach a tunnel); for a name of your own network, "
            "add it to allowed_hosts:"
        )

    def _decide(self, name: str) -> bool:
        name = _canonical(name)
        if name in self._names or (self._loopback and is_loopback(name)):
            return True
        if any(name.endswith(suffix) and len(name) > len(suffix) for suffix in self._suffixes):
            return True
        return self._ip_literals and _ip(name) is not None


def listener_hosts(config: Config, listen: Address) -> HostPolicy:
    """What the proxy's listener serves on every route. Beyond loopback, an IP-address Host is
    served too: rebinding needs a name, and a client that dialled an address itself is the
    business of the inbound checks that such a listener requires."""
    names = list(config.allowed_hosts)
    if listen.host not in _WILDCARDS:
        names.append(listen.host.lower())
    return HostPolicy(names, ip_literals=not listen.is_loopback)


def route_hosts(config: Config) -> HostPolicy:
    """The hosts that routes' ``host:`` name (a tunnel's): served only on those routes, never
    on a route that takes any Host, which may not check its callers."""
    return HostPolicy((r.host for r in config.routes if r.host is not None), loopback=False)


def admin_hosts(config: Config, admin: Address) -> HostPolicy:
    """What the admin listener serves: as the proxy's, without the routes' hosts. Beyond
    loopback, IP addresses are what probes and scrapers name (the kubelet, Prometheus)."""
    names = list(config.allowed_hosts)
    if admin.host not in _WILDCARDS:
        names.append(admin.host.lower())
    return HostPolicy(names, ip_literals=not admin.is_loopback)


def check_browser(
    headers: Mapping[str, str], route: Route, *, host: str | None, scheme: str
) -> None:
    """Refuse (CrossSiteError) a request a browser sent for a page of another origin, unless
    the route lists that origin in allowed_origins. A page of the proxy's own origin (a web
    app served through it) may call it."""
    origin = headers.get("Origin")
    site = headers.get("Sec-Fetch-Site")
    if origin is None and site is None:
        return  # not a browser, or a browser navigating by itself: most requests end here
    if origin is not None and origin.lower() in route.allowed_origins:
        return
    shown = repr(origin[:100]) if origin is not None else None
    hint = (
        f"list it in allowed_origins: of route {route.name!r} if that page may call your "
        "function as you"
    )
    if site in _CROSS:
        where = f"a page on {shown}" if shown else "a page of another site (it sent no Origin)"
        raise CrossSiteError(
            f"a browser sent this request for {where} (Sec-Fetch-Site: {site}): refused, as any "
            f"site you visit could otherwise call your function as you; {hint}",
            route=route.name,
        )
    if origin is not None and origin.lower() != f"{scheme}://{(host or '').lower()}":
        raise CrossSiteError(
            f"a browser sent this request for a page on {shown}, another origin: refused, as "
            f"any site you visit could otherwise call your function as you; {hint}",
            route=route.name,
        )


def _canonical(name: str) -> str:
    """IPv6 addresses compare in one spelling, with brackets."""
    address = _ip(name)
    if isinstance(address, ipaddress.IPv6Address):
        return f"[{address.compressed}]"
    return name


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host name is, IPv6 in brackets or not."""
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return parse_ip(name)
