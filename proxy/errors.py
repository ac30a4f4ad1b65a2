"""The proxy's one exception tree; each error answered to a client carries its HTTP status.

    SigningProxyError
    ├── ConfigError                    the config file or flags are wrong (start-up fails, exit 2)
    ├── CredentialSourceError          a credential source failed in a way a user can fix
    └── ProxyError                     answered to the client as JSON {"error", "message", "route"}
        ├── BadRequestError            400  the request cannot be forwarded as sent
        ├── UnauthorizedError          401  the route's inbound credential is missing
        ├── ForbiddenError             403  the inbound credential or address is wrong
        │   └── CrossSiteError         403  a browser page of another origin sent it
        ├── NoRouteError               404  no route matches
        ├── MethodNotAllowedError      405  a route matches the path but not the method
        ├── RequestTimeoutError        408  the client stopped sending its body
        ├── BodyTooLargeError          413  the body is over the route's max_body
        ├── HostNotAllowedError        421  the Host names no host this proxy serves (rebinding)
        ├── TooManyRequestsError       429  over the route's rate limit (with Retry-After)
        ├── NotImplementedByProxyError 501  a request feature the proxy cannot pass on faithfully
        ├── UpstreamUnreachableError   502  could not connect, or the upstream reset the connection
        │   └── UpstreamHeaderTooLargeError  502  the upstream's reply head is over the bounds
        ├── CredentialsUnavailableError 503 the route's credential set has no valid credentials
        ├── RouteBusyError             503  the route's max_concurrent requests are in flight
        └── UpstreamTimeoutError       504  a timeout fired before the reply started

Each error knows its reply: ``status``, the JSON body (``to_json``) and its own headers
(``reply_headers``: Allow for 405, WWW-Authenticate for 401, Retry-After for 429), so the
handler answers every one alike. Foreign exceptions (aiohttp, botocore, yaml, ssl) are
translated once, at the boundary that meets them, with ``raise ... from exc``: the upstream
client's in ``proxy.serve.upstream``, botocore's in ``proxy.serve.credentials``, YAML's in
``proxy.config.strict_yaml``.
"""

from __future__ import annotations

from typing import ClassVar


class SigningProxyError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(SigningProxyError):
    """The configuration is invalid; ``path`` names the key (``routes[2].sign.region``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class CredentialSourceError(SigningProxyError):
    """A credential source failed; the message says what to do (``aws sso login ...``)."""


class ProxyError(SigningProxyError):
    """An error the proxy answers itself, as JSON with ``status``."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    # The request's body is the problem (too big, stalled): its reply says Connection: close
    # rather than leave the client sending into a connection that is about to be dropped.
    closes_connection: ClassVar[bool] = False

    def __init__(self, message: str, *, route: str | None = None) -> None:
        self.message = message
        self.route = route
        super().__init__(message)

    def to_json(self) -> dict[str, str | None]:
        """The body the client receives."""
        return {"error": self.code, "message": self.message, "route": self.route}

    def reply_headers(self) -> dict[str, str]:
        """Headers the reply carries besides the JSON body (Allow, WWW-Authenticate, ...)."""
        return {}


class BadRequestError(ProxyError):
    status = 400
    code = "bad_request"


class UnauthorizedError(ProxyError):
    status = 401
    code = "unauthorized"

    def __init__(
        self, message: str, *, challenge: str | None = None, route: str | None = None
    ) -> None:
        super().__init__(message, route=route)
        self.challenge = challenge  # the WWW-Authenticate value, for bearer and basic

    def reply_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge} if self.challenge else {}


class ForbiddenError(ProxyError):
    status = 403
    code = "forbidden"


class CrossSiteError(ForbiddenError):
    """A browser sent this for a page of another origin (Sec-Fetch-Site, Origin)."""

    code = "cross_site"


class NoRouteError(ProxyError):
    status = 404
    code = "no_route"


class MethodNotAllowedError(ProxyError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: frozenset[str], route: str | None = None) -> None:
        super().__init__(message, route=route)
        self.allowed = allowed

    def reply_headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(sorted(self.allowed))}


class RequestTimeoutError(ProxyError):
    status = 408
    code = "request_timeout"
    closes_connection = True  # RFC 9110 §15.5.9: 408 implies the server closes


class BodyTooLargeError(ProxyError):
    status = 413
    code = "body_too_large"
    closes_connection = True


class HostNotAllowedError(ProxyError):
    """The Host header names a host that is neither loopback nor allowed (RFC 9110 §15.5.20):
    what a DNS-rebinding page or an unconfigured tunnel sends."""

    status = 421
    code = "host_not_allowed"


class TooManyRequestsError(ProxyError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, route: str | None = None) -> None:
        super().__init__(message, route=route)
        self.retry_after = retry_after  # whole seconds, for the Retry-After header

    def reply_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class NotImplementedByProxyError(ProxyError):
    """A request feature this proxy cannot pass on faithfully (RFC 9112 §6.1: 501)."""

    status = 501
    code = "not_implemented"


class UpstreamUnreachableError(ProxyError):
    status = 502
    code = "upstream_unreachable"

    def __init__(self, message: str, *, route: str | None = None, nothing_sent: bool = False):
        super().__init__(message, route=route)
        self.nothing_sent = nothing_sent  # the connection was never made: safe to try again


class UpstreamHeaderTooLargeError(UpstreamUnreachableError):
    """The upstream's status line and headers are over HEAD_LIMIT bytes or FIELD_LIMIT fields:
    a hostile or broken upstream must not make the proxy hold them."""

    code = "upstream_header_too_large"


class CredentialsUnavailableError(ProxyError):
    status = 503
    code = "credentials_unavailable"


class RouteBusyError(ProxyError):
    status = 503
    code = "route_busy"


class UpstreamTimeoutError(ProxyError):
    status = 504
    code = "upstream_timeout"

    def __init__(self, message: str, *, route: str | None = None, nothing_sent: bool = False):
        super().__init__(message, route=route)
        self.nothing_sent = nothing_sent  # timed out connecting: safe to try again
