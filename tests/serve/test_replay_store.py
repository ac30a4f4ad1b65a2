"""proxy.serve.replay_store: the replay memory that the workers of one proxy share, in SQLite."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.serve.replay_store import ReplayDatabase

GUARD = 60.0  # against a hung child only


@pytest.fixture
def database(tmp_path: Path) -> Iterator[ReplayDatabase]:
    """A fresh shared file, closed after the test."""
    opened = ReplayDatabase(str(tmp_path / "replay.sqlite3"))
    yield opened
    opened.close()


def test_a_key_is_taken_once_until_it_expires_or_is_withdrawn(database: ReplayDatabase) -> None:
    """take() refuses a recorded key; withdraw() and expiry free it again."""
    memory = database.for_route("hooks")
    assert memory.take([b"a"], expires=100.0, now=0.0)
    assert not memory.take([b"a"], expires=100.0, now=50.0)
    memory.withdraw([b"a"])
    assert memory.take([b"a"], expires=100.0, now=60.0)
    assert not memory.take([b"a"], expires=200.0, now=100.0)  # at the edge: still a replay
    assert memory.take([b"a"], expires=300.0, now=100.5)


def test_keys_are_taken_all_or_none(database: ReplayDatabase) -> None:
    """A delivery's keys (signature, event id) go in together: one recorded refuses all."""
    memory = database.for_route("hooks")
    assert memory.take([b"digest-1", b"id-1"], expires=100.0, now=0.0)
    assert not memory.take([b"digest-1", b"id-2"], expires=100.0, now=1.0)
    assert memory.take([b"digest-2", b"id-2"], expires=100.0, now=2.0)  # id-2 was not kept
    assert not memory.take([b"id-1"], expires=100.0, now=3.0)


def test_routes_keep_their_keys_apart(database: ReplayDatabase) -> None:
    """The same key on two routes is two deliveries."""
    assert database.for_route("github").take([b"k"], expires=100.0, now=0.0)
    assert database.for_route("shopify").take([b"k"], expires=100.0, now=0.0)


_CONTENDER = """
import sys
from proxy.serve.replay_store import ReplayDatabase
database = ReplayDatabase(sys.argv[1])
memory = database.for_route("hooks")
sys.stdin.readline()  # all start together
won = [n for n in range(200) if memory.take([b"key-%d" % n], expires=1e12, now=0.0)]
database.close()
print(" ".join(map(str, won)))
"""


def test_processes_sharing_the_file_never_both_take_a_key(tmp_path: Path) -> None:
    """Three processes taking the same 200 keys at once: each key is taken exactly once."""
    path = str(tmp_path / "replay.sqlite3")
    ReplayDatabase(path).close()  # the schema exists before they start
    contenders = [
        subprocess.Popen(  # noqa: S603 - this interpreter, this project
            [sys.executable, "-c", _CONTENDER, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for contender in contenders:
        assert contender.stdin is not None
        contender.stdin.write("go\n")
        contender.stdin.flush()
    won = [contender.communicate(timeout=GUARD)[0].split() for contender in contenders]
    assert all(contender.returncode == 0 for contender in contenders)
    taken = [int(key) for keys in won for key in keys]
    assert sorted(taken) == list(range(200))
