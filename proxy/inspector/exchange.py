"""What the inspector holds of one exchange: the request as the handler saw it (``Seen``,
unmasked, never stored), its masked views (``Entry``) and what a replay re-sends (``Kept``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Seen:
    """One finished proxied request as the request handler saw it, unmasked (the Inspector
    masks)."""

    request_id: str
    started: float  # epoch seconds when it arrived
    duration: float  # seconds
    method: str
    target: str  # path and query as the client sent them (request.raw_path)
    route: str | None
    status: int  # what the client got
    upstream_status: int | None
    bytes_in: int
    bytes_out: int
    amzn_request_id: str | None
    amzn_error_type: str | None
    request_headers: Sequence[tuple[str, str]]  # as received from the client
    sent_headers: Sequence[tuple[str, str]] | None  # as sent upstream (None: never sent)
    response_headers: Sequence[tuple[str, str]]  # as the client got them
    canonical_request: str | None  # None: not signed
    string_to_sign: str | None
    diagnosis: str | None  # why it failed and what to change
    error: str | None  # the proxy's own error code, e.g. "no_route", "unauthorized"
    body: bytes | None  # the request body when the pipeline kept it; None otherwise
    replay_of: int | None  # the inspector id this request replays
    # What the upstream answered a refused request with (a 403's body, as relayed); masked
    # and cut before the page sees it.
    error_body: bytes | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Kept:
    """What a replay re-sends: the request as the client sent it, unmasked; never shown."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __repr__(self) -> str:
        return f"Kept({self.method}, target, headers and {len(self.body)} body bytes hidden)"


@dataclass(slots=True)
class Entry:
    """One recorded exchange: its masked views, and what a replay needs (or why it cannot)."""

    id: int
    summary: dict[str, Any]
    details: dict[str, Any]
    kept: Kept | None = field(default=None, repr=False)
    unavailable: str | None = None  # why there is nothing to replay

    def row(self) -> dict[str, Any]:
        """The summary as the table shows it, with whether it can be replayed now."""
        replay = {"available": self.kept is not None, "reason": self.unavailable}
        return self.summary | {"replay": replay}
