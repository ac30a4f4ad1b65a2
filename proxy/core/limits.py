"""Per-route admission: a token-bucket rate limit (429) and a cap on requests in flight (503)."""

from __future__ import annotations

import math

from proxy.errors import RouteBusyError, TooManyRequestsError
from proxy.model import RateLimit, Route


class TokenBucket:
    """``rate`` tokens a second flow into a bucket of ``burst``; each request takes one."""

    def __init__(self, limit: RateLimit, *, now: float) -> None:
        self.rate = limit.rate
        self.burst = limit.burst
        self._tokens = float(limit.burst)
        self._updated = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken; otherwise the seconds until one will be there."""
        elapsed = max(now - self._updated, 0.0)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class Admission:
    """A route's rate limit and in-flight cap; ``admit`` is used around each request."""

    def __init__(self, route: Route, *, now: float) -> None:
        self.route = route.name
        self._bucket = TokenBucket(route.rate_limit, now=now) if route.rate_limit else None
        self._cap = route.max_concurrent
        self.in_flight = 0

    def admit(self, now: float) -> Admitted:
        """Let one request in, until it leaves, or refuse it with 429 (rate) or 503 (too many
        in flight)."""
        if self._bucket is not None:
            wait = self._bucket.take(now)
            if wait:
                raise TooManyRequestsError(
                    f"over this route's rate limit of {_rate(self._bucket.rate)}; "
                    f"retry in {wait:.1f}s",
                    retry_after=max(1, math.ceil(wait)),
                    route=self.route,
                )
        if self._cap is not None and self.in_flight >= self._cap:
            raise RouteBusyError(
                f"this route already has its max_concurrent of {self._cap} requests in flight; "
                "retry shortly",
                route=self.route,
            )
        self.in_flight += 1
        return Admitted(self)


class Admitted:
    """A request let in, until ``leave()`` (a class, not a generator context manager: this
    runs for every request)."""

    __slots__ = ("_admission",)

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission

    def leave(self) -> None:
        """Free the request's place; once only."""
        if self._admission is not None:
            self._admission.in_flight -= 1
            self._admission = None

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        self.leave()


def _rate(per_second: float) -> str:
    if per_second >= 1:
        return f"{per_second:g}/s"
    if per_second * 60 >= 1:
        return f"{per_second * 60:g}/m"
    return f"{per_second * 3600:g}/h"
