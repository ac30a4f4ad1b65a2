"""Per-route admission: the token bucket and the in-flight cap, with the clock passed in."""

from __future__ import annotations

import pytest

from proxy.core.limits import Admission, TokenBucket
from proxy.errors import RouteBusyError, TooManyRequestsError
from proxy.model import RateLimit, Route, Upstream

UPSTREAM = Upstream("https", "d111111abcdef8.cloudfront.net", 443)


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    """A full bucket lets `burst` requests through at once, then one per 1/rate seconds."""
    bucket = TokenBucket(RateLimit(rate=2.0, burst=3), now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.5) == 0.0
    assert bucket.take(100.5) == pytest.approx(0.5)


def test_bucket_never_holds_more_than_burst() -> None:
    """A long quiet spell does not bank more than `burst` tokens."""
    bucket = TokenBucket(RateLimit(rate=1.0, burst=2), now=0.0)
    taken = [bucket.take(3600.0) for _ in range(3)]
    assert taken[:2] == [0.0, 0.0]
    assert taken[2] > 0


def test_rate_limited_request_is_429_with_retry_after() -> None:
    """Over the limit: 429 with a whole number of seconds to wait, at least 1."""
    admission = Admission(_route(rate_limit=RateLimit(rate=1 / 60, burst=1)), now=0.0)
    with admission.admit(0.0):
        pass
    with pytest.raises(TooManyRequestsError) as caught, admission.admit(1.0):
        pass
    assert caught.value.retry_after == 59
    assert "1/m" in caught.value.message


def test_in_flight_cap_is_503_and_frees_on_exit() -> None:
    """The cap counts requests in flight; one finishing lets the next one in."""
    admission = Admission(_route(max_concurrent=2), now=0.0)
    with admission.admit(0.0), admission.admit(0.0):
        with pytest.raises(RouteBusyError), admission.admit(0.0):
            pass
        assert admission.in_flight == 2
    with admission.admit(0.0):
        assert admission.in_flight == 1
    assert admission.in_flight == 0


def test_in_flight_count_drops_when_the_request_fails() -> None:
    """A request that raises still leaves the count where it found it."""
    admission = Admission(_route(max_concurrent=1), now=0.0)
    with pytest.raises(RuntimeError), admission.admit(0.0):
        raise RuntimeError("upstream failed")
    assert admission.in_flight == 0


def _route(**fields: object) -> Route:
    return Route(name="r", upstream=UPSTREAM, **fields)  # type: ignore[arg-type]
