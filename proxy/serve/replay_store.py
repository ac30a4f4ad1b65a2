"""The replay memory that the workers of one ``serve --workers`` proxy share: an SQLite file in
the run's private directory, so that a delivery one worker accepted is a replay at every other.

SQLite because it is in the standard library, its transactions hold across processes, and it
needs no server. Each check is one short local transaction (tens of microseconds, on webhook
routes only), made on the event loop like any other small file write. The file lives only as
long as the run (the supervisor removes its directory), so it is written without fsync: a
crash loses only what a restarted proxy forgets anyway.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

# Environment variable naming the file, set by the supervisor for its workers.
REPLAY_DB = "SIGNING_PROXY_REPLAY_DB"
# How long a worker waits for another's transaction (they take microseconds).
_BUSY_TIMEOUT = 5.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS seen (key BLOB PRIMARY KEY, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS seen_expires ON seen (expires)",
)


class ReplayDatabase:
    """One connection to the shared file; ``for_route`` gives each route its own keys."""

    def __init__(self, path: str) -> None:
        # Autocommit mode: each transaction below is begun and ended explicitly.
        self._db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
        self._db.execute("PRAGMA synchronous=OFF")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def for_route(self, route: str) -> SharedReplayMemory:
        """The memory of one route: its keys are apart from every other route's."""
        return SharedReplayMemory(self, route)

    def take(self, keys: Sequence[bytes], *, expires: float, now: float) -> bool:
        """Record every key until ``expires``; False, recording none, when one is recorded."""
        if not keys:
            return True
        db = self._db
        # IMMEDIATE takes the write lock first: two workers cannot both find a key absent.
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM seen WHERE expires < ?", (now,))
            marks = ",".join("?" * len(keys))
            found = db.execute(f"SELECT 1 FROM seen WHERE key IN ({marks})", keys).fetchone()  # noqa: S608 - placeholders only
            if found is None:
                db.executemany("INSERT INTO seen VALUES (?, ?)", [(key, expires) for key in keys])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return found is None

    def withdraw(self, keys: Sequence[bytes]) -> None:
        """Forget the keys again."""
        self._db.executemany("DELETE FROM seen WHERE key = ?", [(key,) for key in keys])

    def close(self) -> None:
        self._db.close()


class SharedReplayMemory:
    """A route's view of the shared file (a ``proxy.core.replay.ReplayMemory``)."""

    def __init__(self, database: ReplayDatabase, route: str) -> None:
        self._database = database
        self._prefix = route.encode() + b"\0"

    def take(self, keys: Sequence[bytes], *, expires: float, now: float) -> bool:
        return self._database.take(self._keyed(keys), expires=expires, now=now)

    def withdraw(self, keys: Sequence[bytes]) -> None:
        self._database.withdraw(self._keyed(keys))

    def _keyed(self, keys: Sequence[bytes]) -> list[bytes]:
        return [self._prefix + key for key in keys]
