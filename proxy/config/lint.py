"""What a valid config may still get wrong: the warnings the proxy logs at start and on each
reload. Pure: a Config in, sentences out."""

from __future__ import annotations

import difflib
import functools

from botocore.loaders import Loader

from proxy.model import Address, Config


def warnings(config: Config, listen: Address) -> list[str]:
    """Every warning ``config`` earns on a proxy listening on ``listen``."""
    return [*_exposed(config, listen), *_open_hosts(config), *_cleartext(config), *_regions(config)]


def _exposed(config: Config, listen: Address) -> list[str]:
    unprotected = config.unauthenticated_routes
    if not unprotected or listen.is_loopback:
        return []
    return [
        f"LISTENING ON {listen} WITHOUT INBOUND AUTHENTICATION on route(s) "
        f"{', '.join(unprotected)} (allow_unauthenticated: true): anyone who reaches this "
        "address can call them with your AWS identity"
    ]


def _open_hosts(config: Config) -> list[str]:
    """A route that names a host (a tunnel's) and signs without checking its callers serves
    whoever reaches that name."""
    return [
        f"route {route.name} serves Host {route.host} without inbound:: whoever reaches that "
        "name (through a tunnel: anyone) can call it with your AWS identity"
        for route in config.routes
        if route.host is not None and route.inbound is None and route.mode != "none"
    ]


def _cleartext(config: Config) -> list[str]:
    """A plain-HTTP upstream beyond this machine carries signatures, tokens and bodies in the
    clear (http:// is for local tests and sidecars)."""
    return [
        f"route {route.name} sends requests to {route.upstream.origin} over plain HTTP: anyone "
        "on the way can read them (signatures, tokens and bodies) and change them; use https://"
        for route in config.routes
        if route.upstream.scheme == "http"
        and not Address(route.upstream.host, route.upstream.port).is_loopback
    ]


def _regions(config: Config) -> list[str]:
    """A region of the right shape that AWS does not have (eu-centrl-1) passes the load and
    fails every request with a 403; a region newer than botocore is fine, hence a warning."""
    known = known_regions()
    found = []
    for route in config.routes:
        # A SigV4a region set (*, or a list each parsed as a region) is not one region.
        if (
            route.signing is None
            or route.signing.algorithm != "sigv4"
            or route.signing.region in known
        ):
            continue
        region = route.signing.region
        close = difflib.get_close_matches(region, sorted(known), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        found.append(
            f"route {route.name} signs for region {region}, which this botocore does not "
            f"know: {hint}A typo fails every request with 403; a region newer than botocore "
            "works"
        )
    return found


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every AWS partition botocore's data lists."""
    partitions = Loader().load_data("partitions")["partitions"]
    return frozenset(region for partition in partitions for region in partition["regions"])
