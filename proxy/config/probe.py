"""A route's ``probe:``: the request ``signing-proxy check`` sends to see the route work."""

from __future__ import annotations

from proxy.config.strict_yaml import Section
from proxy.config.values import parse_method, path_problem, show
from proxy.core.routing import prefix_matches, split_target
from proxy.errors import ConfigError
from proxy.model import Probe, Route

# Methods that ask without changing anything; a probe must not place an order.
PROBE_METHODS = ("HEAD", "GET", "OPTIONS")


def parse_probe(value: object, *, path: str) -> Probe:
    fields = Section(
        value, path=path, keys=("method", "path"), expected="method and path", null_ok=True
    )
    return Probe(
        method=fields.get("method", _parse_probe_method, "HEAD"),
        target=fields.get("path", _parse_probe_target, None),
    )


def check_probe(route: Route, *, path: str) -> None:
    """The probe's path must be one the route takes (it is sent as the route would send it;
    its method may be one the route does not take: the probe goes straight upstream)."""
    probe = route.probe
    if probe.target is not None:
        probe_path = split_target(probe.target)[0]
        if not prefix_matches(route.path_prefix, probe_path):
            raise ConfigError(
                f"{path}.path",
                f"{show(probe.target)} would not reach this route (expected a path under "
                f"its path_prefix {route.path_prefix!r})",
            )


def _parse_probe_method(value: object, *, path: str) -> str:
    method = parse_method(value, path=path)
    if method not in PROBE_METHODS:
        raise ConfigError(
            path,
            f"{show(value)} could change something (expected one of: {', '.join(PROBE_METHODS)})",
        )
    return method


def _parse_probe_target(value: object, *, path: str) -> str:
    expected = "expected a path the route takes, e.g. /orders/health or /search?q=probe"
    if not isinstance(value, str):
        raise ConfigError(path, f"{show(value)} is not a path ({expected})")
    problem = path_problem(value.partition("?")[0])
    if problem:
        raise ConfigError(path, f"{show(value)} {problem} ({expected})")
    return value
