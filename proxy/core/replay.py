"""Pure: the memory of webhook deliveries already taken, so that a captured one is refused again.

A delivery is remembered by its event id and by its verified signature, for as long as the
sender could redeliver it; a delivery the function did not take is withdrawn, so that the
sender's retry is not refused. One process keeps its memory here; the workers of one proxy share
an SQLite file instead (``proxy.serve.replay_store``), behind the same ``ReplayMemory`` face.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Protocol

MAX_REMEMBERED = 100_000  # replay-guard entries per route: a few MiB at most


class ReplayMemory(Protocol):
    """Where accepted deliveries are remembered: this process's ``ReplayGuard``, or one that
    all workers of a proxy share (``proxy.serve.replay_store``)."""

    def take(self, keys: Sequence[bytes], *, expires: float, now: float) -> bool:
        """Record every key until ``expires``; False, recording none, when any is recorded."""
        ...

    def withdraw(self, keys: Sequence[bytes]) -> None:
        """Forget the keys again."""
        ...


class Reservation:
    """A delivery's entries in the replay memory: kept once the function accepted the
    delivery, withdrawn when it did not, so that the sender's retry or a redelivery can get
    through."""

    def __init__(
        self, memory: ReplayMemory, keys: Sequence[bytes], *, expires: float, now: float
    ) -> None:
        self._memory = memory
        self._keys = tuple(keys)
        self._expires = expires
        self._now = now

    def take(self) -> bool:
        """Record the keys; False when one is already recorded (a replay)."""
        return self._memory.take(self._keys, expires=self._expires, now=self._now)

    def withdraw(self) -> None:
        """Forget the keys again."""
        self._memory.withdraw(self._keys)


class ReplayGuard:
    """This process's replay memory: keys of accepted deliveries, each kept until it expires
    (after that the timestamp check or the redelivery window refuses it anyway)."""

    def __init__(self, *, capacity: int = MAX_REMEMBERED) -> None:
        self._capacity = capacity
        self._seen: dict[bytes, float] = {}  # key -> when it expires
        self._expiries: list[tuple[float, bytes]] = []  # a heap: the next to expire first

    def __len__(self) -> int:
        return len(self._seen)

    def take(self, keys: Sequence[bytes], *, expires: float, now: float) -> bool:
        """Record ``keys`` until ``expires``; False when one is already recorded (a replay)."""
        while self._expiries and self._expiries[0][0] < now:
            self._drop_oldest()
        if any(key in self._seen for key in keys):
            return False
        for key in keys:
            self._seen[key] = expires
            heapq.heappush(self._expiries, (expires, key))
        # Only genuine deliveries are recorded (replays and forgeries never are), so the cap is
        # reached only by that many real deliveries within one tolerance window.
        while len(self._seen) > self._capacity:
            self._drop_oldest()
        return True

    def withdraw(self, keys: Sequence[bytes]) -> None:
        """Drop ``keys`` (their heap entries stay until they expire, and then drop nothing)."""
        for key in keys:
            self._seen.pop(key, None)

    def _drop_oldest(self) -> None:
        expires, key = heapq.heappop(self._expiries)
        if self._seen.get(key) == expires:  # not withdrawn and taken again since
            del self._seen[key]
