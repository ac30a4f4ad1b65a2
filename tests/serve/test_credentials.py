"""Credential sets: botocore's chain, profiles, credential_process, assume-role against moto."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from proxy.core.credentials import Credentials
from proxy.errors import CredentialsUnavailableError
from proxy.model import CredentialSet
from proxy.serve.credentials import (
    CredentialProvider,
    build_providers,
    session_name,
    static_fetch,
)

ROLE_A = "arn:aws:iam::123456789012:role/orders-invoker"
ROLE_B = "arn:aws:iam::123456789012:role/chained"


async def _resolved(item: CredentialSet, *more: CredentialSet) -> CredentialProvider:
    providers = build_providers((*more, item))
    for provider in providers.values():
        await provider.refresh()
    return providers[item.name]


def _set_env_keys(monkeypatch: pytest.MonkeyPatch, key: str = "AKIAENVKEY0000000001") -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")


async def test_default_chain_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default chain picks up key, secret and session token from AWS_* variables."""
    _set_env_keys(monkeypatch)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    provider = await _resolved(CredentialSet("default"))

    snapshot = provider.snapshot(time.time())

    assert (snapshot.access_key, snapshot.secret_key, snapshot.token) == (
        "AKIAENVKEY0000000001",
        "env-secret",
        "env-token",
    )
    assert snapshot.expires_at is None


async def test_named_profile_from_shared_credentials(isolated_aws: Path) -> None:
    """A set with ``profile`` reads that profile from ~/.aws/credentials."""
    (isolated_aws / ".aws" / "credentials").write_text(
        "[dev]\naws_access_key_id = AKIADEVPROFILE000001\naws_secret_access_key = dev-secret\n"
    )
    provider = await _resolved(CredentialSet("dev", profile="dev"))
    assert provider.snapshot(time.time()).access_key == "AKIADEVPROFILE000001"


async def test_unresolvable_set_answers_503_naming_set_and_source_not_cause() -> None:
    """A set that cannot resolve raises the 503 error naming the set and its source; the
    source's own message (which can be anything) is kept for the log."""
    provider = await _resolved(CredentialSet("dev", profile="missing-profile"))

    with pytest.raises(CredentialsUnavailableError) as caught:
        provider.snapshot(time.time(), route="orders")

    message = caught.value.message
    assert "'dev'" in message
    assert "profile missing-profile" in message
    assert "could not be resolved" in message
    assert provider.error is not None
    assert "could not be found" in provider.error
    assert provider.error not in message
    assert caught.value.route == "orders"


async def test_no_credentials_anywhere_says_where_it_looked() -> None:
    """The empty default chain explains which sources it tried (in the provider's error)."""
    provider = await _resolved(CredentialSet("default"))
    assert provider.error is not None
    assert "no credentials found" in provider.error


def _write_credential_process(home: Path, tmp_path: Path, *, lifetime: int) -> None:
    """A credential_process that issues a new key on every call, valid for ``lifetime`` s."""
    counter = tmp_path / "calls"
    script = tmp_path / "issue.py"
    script.write_text(
        "import datetime, json, pathlib\n"
        f"counter = pathlib.Path({str(counter)!r})\n"
        "n = int(counter.read_text()) + 1 if counter.exists() else 1\n"
        "counter.write_text(str(n))\n"
        "expires = datetime.datetime.now(datetime.timezone.utc)"
        f" + datetime.timedelta(seconds={lifetime})\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': f'ASIAPROCESS{n:09d}',"
        " 'SecretAccessKey': f'secret-{n}', 'SessionToken': f'token-{n}',"
        " 'Expiration': expires.isoformat()}))\n"
    )
    (home / ".aws" / "config").write_text(
        f"[profile proc]\ncredential_process = {sys.executable} {script}\n"
    )


async def test_credential_process_is_refreshed_with_fresh_keys(
    isolated_aws: Path, tmp_path: Path
) -> None:
    """Short-lived credential_process credentials are replaced by new ones on refresh."""
    _write_credential_process(isolated_aws, tmp_path, lifetime=120)
    provider = await _resolved(CredentialSet("proc", profile="proc"))
    first = provider.snapshot(time.time())

    await provider.refresh()
    second = provider.snapshot(time.time())

    assert first.access_key.startswith("ASIAPROCESS")
    assert int(second.access_key[-9:]) > int(first.access_key[-9:])
    assert second.token == f"token-{int(second.access_key[-9:])}"
    assert second.expires_at is not None
    assert 60 < second.expires_at - time.time() <= 120


async def test_failed_refresh_keeps_serving_valid_credentials() -> None:
    """A refresh that fails while the current credentials are valid changes nothing for requests."""
    calls = 0

    def fetch() -> Credentials:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("STS is down")
        return Credentials("ASIAFIRST00000000001", "s", "t", expires_at=time.time() + 3600)

    provider = CredentialProvider(name="orders", describe="test", fetch=fetch)
    await provider.refresh()
    await provider.refresh()

    assert provider.snapshot(time.time()).access_key == "ASIAFIRST00000000001"
    assert provider.error == "STS is down"
    assert provider.next_refresh_in(time.time()) == 1.0  # retried soon


async def test_expired_credentials_are_never_used() -> None:
    """Credentials about to expire, with refresh failing, give 503 instead of a doomed request."""
    calls = 0

    def fetch() -> Credentials:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("token file missing")
        now = time.time()
        return Credentials(
            "ASIAEXPIRING00000001", "s", "t", expires_at=now + 5, fetched_at=now - 3600
        )

    provider = CredentialProvider(name="orders", describe="test", fetch=fetch)
    await provider.refresh()
    await provider.refresh()

    with pytest.raises(CredentialsUnavailableError, match="expired and refreshing them failed"):
        provider.snapshot(time.time())


async def test_concurrent_refreshes_share_one_fetch() -> None:
    """Many callers asking for a refresh at once cause a single fetch on a worker thread."""
    release = threading.Event()
    threads: list[str] = []

    def fetch() -> Credentials:
        threads.append(threading.current_thread().name)
        release.wait(timeout=5)
        return Credentials("ASIASHARED0000000001", "s")

    provider = CredentialProvider(name="orders", describe="test", fetch=fetch)
    waiting = [asyncio.create_task(provider.refresh()) for _ in range(10)]
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(*waiting)

    assert len(threads) == 1
    assert threads[0] != threading.main_thread().name


@pytest.mark.parametrize(
    ("lifetime", "remaining", "expected"),
    [
        (3600, 3600, 3300),  # refresh 5 minutes before expiry
        (60, 60, 30),  # short-lived: with half of the lifetime left
        (60, 10, 1.0),  # overdue: at once, but never in a busy loop
    ],
)
def test_refresh_is_scheduled_ahead_of_expiry(
    lifetime: float, remaining: float, expected: float
) -> None:
    """The next refresh starts before expiry, scaled to the credentials' lifetime."""
    now = 1_000_000.0
    fetched = Credentials(
        "ASIA0000000000000001",
        "s",
        expires_at=now + remaining,
        fetched_at=now + remaining - lifetime,
    )
    provider = CredentialProvider(name="x", describe="test", fetch=lambda: fetched)
    provider._current = fetched
    assert provider.next_refresh_in(now) == pytest.approx(expected)


def test_static_credentials_need_no_refresh() -> None:
    """Long-term keys have no expiry, so no refresh is scheduled."""
    provider = CredentialProvider(name="x", describe="test", fetch=static_fetch("AKIA1", "s"))
    provider._current = static_fetch("AKIA1", "s")()
    assert provider.next_refresh_in(time.time()) is None


async def test_assume_role_on_the_default_chain(
    local_sts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """role_arn is assumed through STS with the chain's keys; the result carries a token."""
    _set_env_keys(monkeypatch)
    provider = await _resolved(
        CredentialSet(
            "orders", role_arn=ROLE_A, external_id="ext-1", session_name="tests", duration=900
        )
    )

    snapshot = provider.snapshot(time.time())

    assert provider.error is None
    assert snapshot.access_key != "AKIAENVKEY0000000001"
    assert snapshot.token
    assert snapshot.expires_at is not None
    assert 800 < snapshot.expires_at - time.time() <= 900
    issued = {role["access_key_id"]: role for role in await _moto_assumed_roles(local_sts)}
    assert issued[snapshot.access_key]["role_arn"] == ROLE_A
    assert issued[snapshot.access_key]["external_id"] == "ext-1"
    assert issued[snapshot.access_key]["session_name"] == "tests"


async def _moto_assumed_roles(sts: str) -> list[dict[str, str]]:
    """What moto's STS issued, from its model-data API."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sts}/moto-api/data.json") as answer,
    ):
        data = await answer.json(content_type=None)
    roles: list[dict[str, str]] = data["sts"]["AssumedRole"]
    return roles


async def test_role_chaining_uses_the_source_set(
    local_sts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set with ``source`` assumes its role with the source set's assumed-role credentials."""
    _set_env_keys(monkeypatch)
    base = CredentialSet("base", role_arn=ROLE_A)
    chained = CredentialSet("chained", role_arn=ROLE_B, source="base")
    providers = build_providers((base, chained))
    for provider in providers.values():
        await provider.refresh()

    first = providers["base"].snapshot(time.time())
    second = providers["chained"].snapshot(time.time())

    assert providers["chained"].error is None
    assert second.access_key != first.access_key
    assert "role " + ROLE_B in providers["chained"].describe
    assert "role " + ROLE_A in providers["chained"].describe


def test_repr_never_shows_secrets() -> None:
    """A snapshot's repr masks the key and hides the secret and the token."""
    text = repr(Credentials("ASIAABCDEFGHIJKWXYZ", "very-secret", "session-token-value"))
    assert "very-secret" not in text
    assert "session-token-value" not in text
    assert "ASIA…WXYZ" in text


def test_default_session_name_is_valid_for_sts() -> None:
    """The derived RoleSessionName fits STS's 2-64 character set."""
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", session_name())
