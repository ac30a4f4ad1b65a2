"""The Date header of every emulated reply, taken from the emulator's clock.

AWS's replies carry AWS's time; a client compares it with its own clock to see how far off it
is. Dating replies with the emulator's clock (rather than aiohttp's, which is this machine's)
lets a test with a skewed clock measure the skew the way it would against AWS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web

__all__ = ["dated_by", "http_date"]


def http_date(moment: datetime) -> str:
    """``Tue, 15 Nov 1994 08:12:31 GMT`` (RFC 9110 IMF-fixdate); a naive time is taken as UTC."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return format_datetime(utc.replace(microsecond=0), usegmt=True)


def dated_by(
    clock: Callable[[], datetime],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An ``on_response_prepare`` handler that dates every reply by ``clock`` (aiohttp has
    already dated it by this machine's clock by then, so it is replaced)."""

    async def add_date(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = http_date(clock())

    return add_date
