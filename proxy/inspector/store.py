"""The request inspector: the last exchanges the proxy handled, masked for display, pushed live
to the admin page, and kept (within a memory budget) so that the page can replay them.

The request handler (server.py) hands every finished request over as a ``Seen``; ``record``
masks it at once, so what is stored for display never holds a secret. The unmasked request
headers and body are kept apart, for replay only, and are never shown or serialised. A replay
goes through the proxy's own listener carrying ``REPLAY_HEADER`` with this process's random
token, which ``replay_of`` recognises. The page and its API are in ``inspector_http``.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from multidict import CIMultiDict

from proxy.core.headers import HOP_BY_HOP, REPLAY_HEADER
from proxy.inspector import view as inspector_view
from proxy.inspector.exchange import Entry, Kept, Seen

# A body is kept for replay up to this size, and all kept bodies together up to BODY_BUDGET
# (the oldest are dropped first): the inspector must not hold on to much memory.
KEEP_BODY = 256 * 1024
BODY_BUDGET = 16 * 1024 * 1024
# A live page this many entries behind is disconnected rather than waited for; it reconnects
# and reloads the list.
SUBSCRIBER_QUEUE = 64
MAX_SUBSCRIBERS = 16
# Not re-sent by a replay: set afresh for it, or meaningful for the first connection only.
_NOT_REPLAYED = HOP_BY_HOP | {"content-length", "expect", "x-request-id", REPLAY_HEADER.lower()}


class Inspector:
    """The last ``size`` exchanges, their live subscribers, and the replay token."""

    def __init__(self, *, size: int = 100) -> None:
        self.size = size
        self.proxy_url: str | None = None  # where replays are sent; set once the proxy listens
        self._token = secrets.token_urlsafe(32)
        self._ids = itertools.count(1)
        self._entries: dict[int, Entry] = {}  # oldest first
        self._kept_bytes = 0
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._waiting: dict[str, asyncio.Future[int]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"Inspector(size={self.size}, entries={len(self._entries)})"

    def record(self, seen: Seen, *, secret_headers: frozenset[str] = frozenset()) -> None:
        """Mask and store one finished exchange, and push it to the live pages;
        ``secret_headers`` are the routes' own credential headers, masked too."""
        entry_id = next(self._ids)
        details = inspector_view.details(seen, secret_headers=secret_headers)
        entry = Entry(entry_id, inspector_view.summary(seen, entry_id), details)
        kept = _keep(seen)
        if isinstance(kept, Kept):
            entry.kept = kept
            self._kept_bytes += len(kept.body)
        else:
            entry.unavailable = kept
        self._entries[entry_id] = entry
        self._evict()
        self._publish(entry)
        waiter = self._waiting.pop(seen.request_id, None) if self._waiting else None
        if waiter is not None and not waiter.done():
            waiter.set_result(entry_id)

    def replay_of(self, headers: Mapping[str, str]) -> int | None:
        """The entry a request replays, when it carries this inspector's replay token."""
        value = headers.get(REPLAY_HEADER)
        if value is None:
            return None
        token, _, number = value.partition(" ")
        genuine = hmac.compare_digest(token.encode("utf-8", "replace"), self._token.encode("utf-8"))
        if not genuine or not (number.isascii() and number.isdigit()):
            return None
        return int(number)

    def rows(self) -> list[dict[str, Any]]:
        """Every entry's row, newest first."""
        return [entry.row() for entry in reversed(self._entries.values())]

    def lookup(self, entry_id: int) -> Entry | None:
        """The entry, or None when it is unknown or no longer among the last ``size``."""
        return self._entries.get(entry_id)

    def replay_headers(self, entry: Entry, kept: Kept, *, request_id: str) -> CIMultiDict[str]:
        """The headers a replay of ``entry`` is sent with: the client's, the token, a new id."""
        headers = CIMultiDict(
            (name, value)
            for name, value in kept.headers
            if name.lower() not in _NOT_REPLAYED and not name.lower().startswith("proxy-")
        )
        headers[REPLAY_HEADER] = f"{self._token} {entry.id}"
        headers["X-Request-Id"] = request_id
        return headers

    def expect(self, request_id: str) -> asyncio.Future[int]:
        """A future set to the id the request ``request_id`` is recorded under."""
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        return waiter

    def forget(self, request_id: str) -> None:
        """Stop waiting for ``request_id`` to be recorded."""
        self._waiting.pop(request_id, None)

    def subscribe(self) -> asyncio.Queue[str | None] | None:
        """A queue of new rows as JSON, ending with None; None when no more may subscribe."""
        if self._closed or len(self._subscribers) >= MAX_SUBSCRIBERS:
            return None
        queue: asyncio.Queue[str | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        """Forget a subscriber whose stream has ended."""
        self._subscribers.discard(queue)

    def close_streams(self) -> None:
        """End every live stream now (the admin listener is shutting down)."""
        self._closed = True
        for queue in list(self._subscribers):
            self._end(queue)

    def _evict(self) -> None:
        while len(self._entries) > self.size:
            self._drop_body(self._entries.pop(next(iter(self._entries))), None)
        if self._kept_bytes <= BODY_BUDGET:
            return
        for entry in self._entries.values():  # oldest first
            if entry.kept is not None and entry.kept.body:
                self._drop_body(
                    entry,
                    f"its body was dropped to keep the inspector's kept bodies within "
                    f"{BODY_BUDGET // (1024 * 1024)} MiB",
                )
                if self._kept_bytes <= BODY_BUDGET:
                    return

    def _drop_body(self, entry: Entry, reason: str | None) -> None:
        if entry.kept is not None:
            self._kept_bytes -= len(entry.kept.body)
            entry.kept, entry.unavailable = None, reason

    def _publish(self, entry: Entry) -> None:
        if not self._subscribers:
            return
        data = json.dumps(entry.row())
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                self._end(queue)  # too far behind: it reloads the list when it reconnects

    def _end(self, queue: asyncio.Queue[str | None]) -> None:
        self._subscribers.discard(queue)
        if queue.full():
            queue.get_nowait()  # room for the end marker; this stream is over anyway
        queue.put_nowait(None)


def _keep(seen: Seen) -> Kept | str:
    """What a replay of ``seen`` would send, or why there is nothing to replay."""
    # A replay skips the route's inbound check, which a request sent upstream has passed; one
    # refused before that (no route, rate limit, inbound check...) may never have passed it,
    # and replaying it must not admit a caller the proxy refused.
    if seen.sent_headers is None:
        return (
            "the proxy refused it before sending it upstream; a replay would skip the checks "
            "it did not pass (send it again instead)"
        )
    body = seen.body
    if body is None:
        if _declares_body(seen.request_headers):
            return (
                "the proxy did not keep this request's body (it was over 1 MiB, "
                "or the request was refused before its body was read)"
            )
        body = b""  # no Content-Length, no Transfer-Encoding: there was no body
    elif len(body) > KEEP_BODY:
        return (
            f"its body ({len(body)} bytes) is over the {KEEP_BODY // 1024} KiB "
            "the inspector keeps for replay"
        )
    return Kept(seen.method, seen.target, tuple(seen.request_headers), body)


def _declares_body(headers: Sequence[tuple[str, str]]) -> bool:
    for name, value in headers:
        lower = name.lower()
        if lower == "transfer-encoding" or (lower == "content-length" and value.strip() != "0"):
            return True
    return False
