"""Pure: whether to send a request again, and after how long (exponential backoff, full jitter).

The clock and the randomness are passed in, so every decision can be tested exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from proxy.model import Retries


class RetryPolicy:
    """The retry decisions for one request."""

    def __init__(
        self,
        retries: Retries,
        method: str,
        *,
        now: float,
        wall_clock: float,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._retries = retries
        self._method = method
        self._started = now
        self._wall_clock = wall_clock  # epoch seconds, for an HTTP-date Retry-After
        self._jitter = jitter
        self.attempts = 1

    def after_status(self, status: int, retry_after: str | None, *, now: float) -> float | None:
        """The wait before sending again after this reply, or None to pass the reply on."""
        retries = self._retries
        if status not in retries.statuses or self._method not in retries.methods:
            return None
        return self._next(_seconds(retry_after, self._wall_clock), now)

    def after_connect_failure(self, *, now: float) -> float | None:
        """The wait before trying again after a connection that was never made (nothing was
        sent, so any method may be tried again), or None to give up."""
        return self._next(None, now)

    def _next(self, asked: float | None, now: float) -> float | None:
        retries = self._retries
        if self.attempts >= retries.attempts:
            return None
        ceiling = min(retries.max_backoff, retries.backoff * 2.0 ** (self.attempts - 1))
        wait = ceiling * self._jitter()
        if asked is not None:
            if asked > retries.max_backoff:
                return None  # the upstream wants more patience than a proxy should show
            wait = max(wait, asked)
        if now + wait - self._started > retries.budget:
            return None
        self.attempts += 1
        return wait


def _seconds(retry_after: str | None, wall_clock: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not retry_after:
        return None
    text = retry_after.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    seconds: float = moment.timestamp() - wall_clock
    return max(seconds, 0.0)
