"""`signing-proxy check`: validate the config, resolve its credentials, reach its upstreams and
send one probe per route, printing a verdict with the concrete fix for every failure.

Steps, each printed as it completes (check_report draws them)::

    config ─▶ credential sets (check_identity) ─▶ upstreams: DNS, TCP, TLS (check_network)
           ─▶ one probe per route (check_probe) ─▶ its verdict (check_verdicts) ─▶ summary
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from proxy.check.access import Signer
from proxy.check.identity import ResolvedSet, refresh_advice, resolve_sets
from proxy.check.network import check_upstream
from proxy.check.probe import ProbeFailed, send_probe
from proxy.check.report import Finding, Mark, Report
from proxy.check.verdicts import verdict
from proxy.config.lint import warnings
from proxy.config.tls import client_context
from proxy.model import Config, Route, Upstream
from proxy.serve.upstream import Pools

_Origin = tuple[str, str, int]  # scheme, host, port: one connection target


async def check(
    config: Config,
    *,
    routes: list[str],
    color: bool,
    timeout: float,  # noqa: ASYNC109 - the CLI's --timeout: a bound per step, not one overall
) -> int:
    """Run every step for ``routes`` (all when empty); 0 only when everything passes, 1 when
    something failed, 2 when a route name is not in the config."""
    selected = _select(config, routes)
    if selected is None:
        return 2
    report = Report(color=color)
    findings = [_config_finding(config, selected)]
    report.show(findings[0])
    sets = await resolve_sets(config, _credential_sets(selected), within=timeout)
    for resolved in sets.values():
        report.show(resolved.finding)
        findings.append(resolved.finding)
    context = client_context(config.upstream_ca_file)
    reached: dict[_Origin, bool] = {}
    for origin, upstream in _upstreams(selected).items():
        finding = await check_upstream(upstream, ssl_context=context, within=timeout)
        report.show(finding)
        findings.append(finding)
        reached[origin] = not finding.failed
    passed = 0
    pools = Pools(context)  # the proxy's own upstream client: probes travel as serve's requests
    try:
        for route in selected:
            finding = await _route(route, pools, sets, reached, timeout)
            report.show(finding)
            findings.append(finding)
            passed += not finding.failed
    finally:
        await pools.close()
    code = 1 if any(finding.failed for finding in findings) else 0
    report.summary(passed=passed, total=len(selected), code=code)
    return code


def _select(config: Config, names: list[str]) -> list[Route] | None:
    """The routes to check, in config order; None (after saying so) for an unknown name."""
    known = {route.name for route in config.routes}
    unknown = [name for name in names if name not in known]
    if unknown:
        expected = ", ".join(route.name for route in config.routes)
        print(
            f"signing-proxy: --route: {unknown[0]!r} is not a route (expected one of: {expected})",
            file=sys.stderr,
        )
        return None
    return [route for route in config.routes if not names or route.name in names]


def _credential_sets(routes: list[Route]) -> list[str]:
    return list(dict.fromkeys(route.credentials for route in routes if route.mode == "iam"))


def _upstreams(routes: list[Route]) -> dict[_Origin, Upstream]:
    found: dict[_Origin, Upstream] = {}
    for route in routes:
        upstream = route.upstream
        found.setdefault((upstream.scheme, upstream.host, upstream.port), upstream)
    return found


def _config_finding(config: Config, selected: list[Route]) -> Finding:
    total = len(config.routes)
    routes = f"{total} route{'s' if total != 1 else ''}"
    if len(selected) != total:
        routes += f", checking {', '.join(route.name for route in selected)}"
    sets = len(_credential_sets(list(config.routes)))
    # The warnings serve logs at start, so a check shows them before the proxy runs.
    found = tuple(warnings(config, config.listen))
    return Finding(
        Mark.WARN if found else Mark.OK,
        f"config: ok — {routes}, {sets} credential set{'s' if sets != 1 else ''} in use; "
        f"listens on {config.listen}",
        details=found,
    )


async def _route(
    route: Route,
    pools: Pools,
    sets: Mapping[str, ResolvedSet],
    reached: Mapping[_Origin, bool],
    within: float,
) -> Finding:
    """Probe one route and judge the reply, unless an earlier step already failed for it."""
    signer = None
    credentials = None
    if route.mode == "iam":
        resolved = sets[route.credentials]
        if resolved.credentials is None:
            return _not_probed(route, f"credential set {route.credentials} failed (above)")
        credentials = resolved.credentials
        signer = Signer(
            credential_set=route.credentials,
            role_arn=resolved.item.role_arn,
            identity_arn=resolved.identity.arn if resolved.identity else None,
            refresh=refresh_advice(resolved.item),
        )
    upstream = route.upstream
    if not reached[(upstream.scheme, upstream.host, upstream.port)]:
        return _not_probed(route, f"its upstream {upstream.origin} could not be reached (above)")
    try:
        reply = await send_probe(pools, route, credentials, within=within)
    except ProbeFailed as exc:
        method, target = route.probe.method, route.probe.target or route.path_prefix
        return Finding(Mark.FAIL, f"route {route.name}: {method} {target}: {exc}")
    finding = verdict(route, reply, signer)
    if reply.asked_again:
        note = "HEAD was refused; asked again as GET to read AWS's reason (nothing ran)"
        return Finding(
            finding.mark, finding.headline, (note, *finding.details), finding.fixes, finding.diff
        )
    return finding


def _not_probed(route: Route, why: str) -> Finding:
    return Finding(Mark.FAIL, f"route {route.name}: not probed: {why}")
