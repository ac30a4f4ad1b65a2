"""Credential sets: resolved and refreshed on worker threads, read per request as frozen snapshots.

Each named set has one ``CredentialProvider``. Requests call ``snapshot()``, which never does
I/O: it returns the current frozen credentials or raises the 503 error. A background task per
provider refreshes ahead of expiry on a worker thread (botocore's refresh is blocking network
I/O: STS, SSO, IMDS, the container endpoint, credential_process), so the event loop never waits
on it and requests keep using the current credentials meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session

from proxy.core.credentials import Credentials, mask
from proxy.errors import CredentialSourceError, CredentialsUnavailableError
from proxy.model import CredentialSet

log = logging.getLogger("signing_proxy.credentials")

# A refresh starts when half the lifetime is left, at most 5 minutes before expiry: an hour-long
# role session is replaced after 55 minutes, a minute-long credential_process key after 30 s.
REFRESH_FRACTION = 0.5
MAX_REFRESH_MARGIN = 300.0
# Never refresh in a busy loop, even for credentials that arrive nearly expired.
MIN_REFRESH_DELAY = 1.0
# Retry delays after a failed refresh, in seconds.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
# botocore's defaults (60 s connect and read, retried) could hold a refresh, and so shutdown,
# for minutes; a refresh that fails fast is retried by the schedule above anyway.
STS_CLIENT_CONFIG = botocore.config.Config(
    connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"}
)


Fetch = Callable[[], Credentials]


class CredentialProvider:
    """The current credentials of one named set, refreshed in the background."""

    def __init__(self, *, name: str, describe: str, fetch: Fetch) -> None:
        self.name = name
        self.describe = describe  # "profile dev, then role arn:aws:iam::…" for messages
        # Told of every refresh and whether it worked (the metrics count them).
        self.listener: Callable[[CredentialProvider, bool], None] | None = None
        self._fetch = fetch
        self._current: Credentials | None = None
        self._error: str | None = "not resolved yet"
        self._inflight: asyncio.Future[None] | None = None
        self._failures = 0

    def __repr__(self) -> str:
        return f"CredentialProvider({self.name!r}, {self.describe})"

    @property
    def current(self) -> Credentials | None:
        """The latest credentials, expired or not."""
        return self._current

    @property
    def error(self) -> str | None:
        """Why the last resolution failed, or None when it succeeded."""
        return self._error

    def snapshot(self, now: float, *, route: str | None = None) -> Credentials:
        """The credentials to sign one request with; 503 when there are none usable."""
        current = self._current
        if current is not None and current.usable(now):
            return current
        # The source's own words stay in the log: they can be anything a credential_process
        # printed, tokens included, and this message goes to whoever sent the request.
        if current is None:
            cause = "they could not be resolved"
        else:
            cause = "they expired and refreshing them failed"
        raise CredentialsUnavailableError(
            f"credentials {self.name!r} ({self.describe}) are unavailable: {cause}; the "
            "proxy's log says why (then check the profile, `aws sso login`, or the role's "
            "trust policy)",
            route=route,
        )

    async def refresh(self) -> None:
        """Fetch new credentials on a worker thread; concurrent callers share one fetch."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh_once())
        inflight = self._inflight
        try:
            await asyncio.shield(inflight)
        finally:
            if inflight.done() and self._inflight is inflight:
                self._inflight = None

    async def replace(self, rejected: Credentials) -> None:
        """AWS refused ``rejected``: refresh, unless another refresh already replaced them."""
        if self._current is rejected:
            await self.refresh()

    async def _refresh_once(self) -> None:
        try:
            fresh = await asyncio.to_thread(self._fetch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is reported, none stops the proxy
            self._failures += 1
            self._error = describe_error(exc)
            still = self._current is not None and self._current.usable(time.time())
            log.log(
                logging.WARNING if still else logging.ERROR,
                "credentials %r (%s): refresh failed%s: %s",
                self.name,
                self.describe,
                ", still using the current ones" if still else "",
                self._error,
            )
            self._tell(ok=False)
            return
        self._current = fresh
        self._error = None
        self._failures = 0
        self._tell(ok=True)
        log.info(
            "credentials %r: %s%s",
            self.name,
            mask(fresh.access_key),
            ""
            if fresh.expires_at is None
            else f", valid for {fresh.expires_at - time.time():.0f}s",
        )

    def _tell(self, *, ok: bool) -> None:
        if self.listener is not None:
            self.listener(self, ok)

    def next_refresh_in(self, now: float) -> float | None:
        """Seconds until the next refresh should start; None when they never expire."""
        if self._failures:
            return RETRY_DELAYS[min(self._failures, len(RETRY_DELAYS)) - 1]
        current = self._current
        if current is None:
            return 0.0
        if current.expires_at is None:
            return None
        lifetime = current.expires_at - current.fetched_at
        margin = min(MAX_REFRESH_MARGIN, lifetime * REFRESH_FRACTION)
        return max(current.expires_at - margin - now, MIN_REFRESH_DELAY)

    async def run(self) -> None:
        """Refresh ahead of expiry until cancelled."""
        while True:
            delay = self.next_refresh_in(time.time())
            if delay is None:
                return
            await asyncio.sleep(delay)
            await self.refresh()

    async def close(self) -> None:
        """Wait for a refresh in flight, so no worker thread outlives the proxy's loop."""
        if self._inflight is not None:
            await asyncio.gather(self._inflight, return_exceptions=True)


def describe_error(exc: Exception) -> str:
    """One line a user can act on, for the failures botocore reports."""
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return (
            "no credentials found (looked in the environment, ~/.aws/credentials, ~/.aws/config, "
            "web identity, container and instance metadata)"
        )
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return f"{exc}; check ~/.aws/config or AWS_CONFIG_FILE"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def session_name() -> str:
    """The default RoleSessionName: this host's name, within STS's 64 characters and charset."""
    host = re.sub(r"[^\w+=,.@-]", "-", socket.gethostname())
    return f"signing-proxy-{host}"[:64]


def build_providers(
    sets: tuple[CredentialSet, ...],
    *,
    overrides: Mapping[str, Fetch] | None = None,
    existing: Mapping[str, CredentialProvider] | None = None,
) -> dict[str, CredentialProvider]:
    """One provider per set, in an order where sources come first; ``existing`` providers are
    reused as they are (a reload keeps unchanged sets), and ``overrides`` replaces a set's
    source (the demo signs with fixed keys)."""
    providers: dict[str, CredentialProvider] = {}
    by_name = {item.name: item for item in sets}

    def build(item: CredentialSet) -> CredentialProvider:
        if item.name in providers:
            return providers[item.name]
        if existing and item.name in existing:
            provider = existing[item.name]
        elif overrides and item.name in overrides:
            provider = CredentialProvider(
                name=item.name, describe="fixed keys", fetch=overrides[item.name]
            )
        elif item.role_arn is not None:
            source = build(by_name[item.source]) if item.source else None
            base = source.describe if source else _chain_description(item.profile)
            provider = CredentialProvider(
                name=item.name,
                describe=f"role {item.role_arn} assumed with {base}",
                fetch=_assume_role_fetch(item, source),
            )
        else:
            provider = CredentialProvider(
                name=item.name,
                describe=_chain_description(item.profile),
                fetch=_botocore_fetch(item.profile),
            )
        providers[item.name] = provider
        return provider

    for item in sets:
        build(item)
    return providers


def _chain_description(profile: str | None) -> str:
    return f"profile {profile}" if profile else "the default credential chain"


def _botocore_fetch(profile: str | None) -> Fetch:
    """Credentials from botocore's chain: env, files, SSO, process, web identity, container,
    instance metadata. The chain is walked afresh on every refresh, so each refresh reaches the
    source itself (a new container credential, a new web-identity session, the SSO cache as it
    is now) rather than botocore's idea of whether a refresh is due."""

    def fetch() -> Credentials:
        try:
            found = botocore.session.Session(profile=profile).get_credentials()
            if found is None:
                raise botocore.exceptions.NoCredentialsError()
            return _freeze(found)
        except (
            botocore.exceptions.SSOTokenLoadError,
            botocore.exceptions.UnauthorizedSSOTokenError,
        ) as exc:
            name = profile or os.environ.get("AWS_PROFILE") or "default"
            raise CredentialSourceError(
                f"SSO token expired or missing: run aws sso login --profile {name}"
            ) from exc

    return fetch


def _freeze(credentials: botocore.credentials.Credentials) -> Credentials:
    # Key, secret and token of one refresh together. For sources that issue credentials living
    # less than botocore's 15-minute refresh window, botocore fetches once more here; harmless.
    frozen = credentials.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        raise botocore.exceptions.NoCredentialsError()
    # botocore keeps the expiry only on this attribute; long-term keys have none.
    expiry: datetime | None = getattr(credentials, "_expiry_time", None)
    return Credentials(
        access_key=frozen.access_key,
        secret_key=frozen.secret_key,
        token=frozen.token,
        expires_at=expiry.timestamp() if expiry else None,
        fetched_at=time.time(),
    )


def _assume_role_fetch(item: CredentialSet, source: CredentialProvider | None) -> Fetch:
    """AssumeRole with the source set's current credentials, or botocore's chain."""
    base_fetch = None if source is not None else _botocore_fetch(item.profile)
    assert item.role_arn is not None  # noqa: S101 - build_providers only passes role sets
    arguments: dict[str, str | int] = {
        "RoleArn": item.role_arn,
        "RoleSessionName": item.session_name or session_name(),
    }
    if item.external_id:
        arguments["ExternalId"] = item.external_id
    if item.duration:
        arguments["DurationSeconds"] = item.duration

    def fetch() -> Credentials:
        if source is not None:
            base = source.snapshot(time.time())
        else:
            assert base_fetch is not None  # noqa: S101
            base = base_fetch()
        session = botocore.session.Session(profile=item.profile if source is None else None)
        sts: Any = session.create_client(
            "sts",
            # STS needs a region for its regional endpoint; the set's profile may not name one.
            region_name=session.get_config_variable("region") or "us-east-1",
            aws_access_key_id=base.access_key,
            aws_secret_access_key=base.secret_key,
            aws_session_token=base.token,
            config=STS_CLIENT_CONFIG,
        )
        answer = sts.assume_role(**arguments)
        issued = answer["Credentials"]
        return Credentials(
            access_key=issued["AccessKeyId"],
            secret_key=issued["SecretAccessKey"],
            token=issued["SessionToken"],
            expires_at=issued["Expiration"].timestamp(),
            fetched_at=time.time(),
        )

    return fetch


def static_fetch(access_key: str, secret_key: str, token: str | None = None) -> Fetch:
    """A source that always returns the same keys (the demo and tests use it)."""
    fixed = Credentials(access_key=access_key, secret_key=secret_key, token=token)
    return lambda: fixed
