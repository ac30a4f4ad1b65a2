"""What the fake CloudFront refuses itself, before the origin: its own 403s, worded as CloudFront's.

Modelled: a GET or HEAD with a body, a method outside the cache behaviour's allowed methods, a
geographic restriction (every viewer of the emulator is taken to be in ``viewer_country``) and an
AWS WAF web ACL blocking path prefixes. Each refusal is CloudFront's HTML error page, without
``x-amzn-ErrorType`` (that header only ever comes from Lambda).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_METHODS",
    "BAD_REQUEST",
    "GEO_BLOCKED",
    "METHOD_NOT_ALLOWED",
    "WAF_BLOCKED",
    "Restrictions",
    "refusal",
]

# CloudFront's widest choice of allowed methods (the others are GET+HEAD, and +OPTIONS).
ALL_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"})

# The first line of CloudFront's error page for each refusal.
BAD_REQUEST = "Bad request."
METHOD_NOT_ALLOWED = (
    "This distribution is not configured to allow the HTTP request method that was used for "
    "this request. The distribution supports only cachable requests."
)
GEO_BLOCKED = "The Amazon CloudFront distribution is configured to block access from your country."
WAF_BLOCKED = "Request blocked."


@dataclass(frozen=True, slots=True)
class Restrictions:
    """The distribution's own gates; the default lets every request through to the origin.

    ``blocked_paths`` are path prefixes a WAF rule blocks; ``blocked_countries`` are ISO 3166
    codes the geographic restriction blocks, and ``viewer_country`` is where the emulator's
    viewers are taken to be.
    """

    allowed_methods: frozenset[str] = ALL_METHODS
    blocked_paths: tuple[str, ...] = ()
    blocked_countries: frozenset[str] = frozenset()
    viewer_country: str = "DE"


def refusal(restrictions: Restrictions, *, method: str, path: str, has_body: bool) -> str | None:
    """The first line of the error page CloudFront answers instead of forwarding, or None.

    Checked in a fixed order: the request itself, the cache behaviour, geography, then WAF.
    """
    if method in ("GET", "HEAD") and has_body:
        return BAD_REQUEST
    if method not in restrictions.allowed_methods:
        return METHOD_NOT_ALLOWED
    if restrictions.viewer_country in restrictions.blocked_countries:
        return GEO_BLOCKED
    if any(path.startswith(prefix) for prefix in restrictions.blocked_paths):
        return WAF_BLOCKED
    return None
