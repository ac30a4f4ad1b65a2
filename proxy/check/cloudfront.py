"""Pure: explain a reply CloudFront made itself (its HTML error page, no x-amzn-ErrorType): the
reason on its page, and what to change in the distribution."""

from __future__ import annotations

import html
import re

from proxy.model import Route

# CloudFront's page: "<H2>The request could not be satisfied.</H2>", a rule, then the reason.
_REASON = re.compile(
    r"The request could not be satisfied\.?</H2>\s*<HR[^>]*>\s*(?P<reason>[^\n<]+)", re.IGNORECASE
)

_WAF = (
    "AWS WAF: find the rule of the distribution's web ACL that blocked {path} (its sampled "
    "requests or logs, by the request ID) and exempt this path or this machine's address"
)
_GEO = (
    "geographic restriction: allow this machine's country in the distribution's geographic "
    "restrictions (Security → CloudFront geographic restrictions)"
)
_METHODS = (
    "allowed methods: the cache behaviour for {path} must allow {method}; choose GET, HEAD, "
    "OPTIONS, PUT, POST, PATCH, DELETE"
)
_HOST = (
    "alternate domain name: {host} must be an alternate domain name (CNAME) of the "
    "distribution, with a certificate for it; or use the distribution's own d….cloudfront.net "
    "name"
)
_BODY = "a GET or HEAD with a body is refused by CloudFront (the proxy answers these 400 itself)"
# Words of CloudFront's reason → which of the fixes above it calls for.
_CAUSES = (
    ("block access from your country", (_GEO,)),
    ("request blocked", (_WAF,)),
    ("not configured to allow the http request method", (_METHODS,)),
    ("bad request", (_HOST, _BODY)),
)


def cloudfront_reason(body: bytes) -> str | None:
    """The reason line of CloudFront's error page, or None (a reply to HEAD has no page)."""
    match = _REASON.search(body.decode("utf-8", "replace"))
    return html.unescape(match.group("reason").strip()) if match else None


def refused_by_cloudfront(
    route: Route, *, method: str, path: str, reason: str | None
) -> tuple[str, ...]:
    """The fixes for CloudFront's own 403: those its reason names, else every usual cause."""
    lowered = (reason or "").lower()
    chosen = next((fixes for words, fixes in _CAUSES if words in lowered), None)
    fixes = chosen or (_WAF, _GEO, _METHODS, _HOST)
    filled = tuple(fix.format(path=path, method=method, host=route.upstream.host) for fix in fixes)
    if reason is None and method == "HEAD":
        filled += (
            "a reply to HEAD carries no page; probe with GET (probe: {method: GET}) to see "
            "CloudFront's reason",
        )
    return filled


def origin_unreachable(route: Route, status: int) -> tuple[str, ...]:
    """The fixes for a 502/503/504 CloudFront answered itself (no Lambda request id)."""
    origin = route.signing.host if route.signing else "the function URL's domain"
    if status == 504:
        return (
            "the function did not answer within the origin response timeout: check its "
            "duration and logs, or raise the distribution's origin response timeout",
        )
    if status == 503:
        return ("CloudFront or the origin is over capacity: check the function's concurrency",)
    return (
        f"the distribution's origin must be {origin}, over HTTPS (origin protocol policy HTTPS "
        "only), port 443",
    )
