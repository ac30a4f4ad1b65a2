"""`signing-proxy check`, credentials step: resolve each credential set the checked routes sign
with, as the proxy would, and ask STS (GetCallerIdentity) whose credentials they are."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session

from proxy.check.report import Finding, Mark
from proxy.core.credentials import Credentials, mask
from proxy.model import Config, CredentialSet
from proxy.serve.credentials import CredentialProvider, build_providers


@dataclass(frozen=True, slots=True)
class Identity:
    """Who AWS says the credentials belong to."""

    account: str
    arn: str


@dataclass(frozen=True, slots=True)
class ResolvedSet:
    """One credential set as check found it: usable credentials (or None) and their identity."""

    item: CredentialSet
    credentials: Credentials | None
    identity: Identity | None
    finding: Finding


async def resolve_sets(
    config: Config, names: Iterable[str], *, within: float
) -> dict[str, ResolvedSet]:
    """Each named set (and the sets it assumes its role with) resolved in the proxy's order,
    sources first; every fetch and every STS call bounded by ``within``."""
    wanted = _with_sources(config, names)
    resolved: dict[str, ResolvedSet] = {}
    for name, provider in build_providers(config.credentials).items():
        if name in wanted:
            resolved[name] = await _resolve(config.credential_set(name), provider, within)
    return resolved


def _with_sources(config: Config, names: Iterable[str]) -> set[str]:
    wanted: set[str] = set()
    for name in names:
        item: CredentialSet | None = config.credential_set(name)
        while item is not None and item.name not in wanted:
            wanted.add(item.name)
            item = config.credential_set(item.source) if item.source else None
    return wanted


async def _resolve(item: CredentialSet, provider: CredentialProvider, within: float) -> ResolvedSet:
    headline = f"credentials {item.name}: {provider.describe}"
    try:
        async with asyncio.timeout(within):
            await provider.refresh()
    except TimeoutError:
        finding = Finding(
            Mark.FAIL,
            headline,
            (f"not resolved within {within:g}s (--timeout)",),
            _source_fixes(item, "timed out"),
        )
        return ResolvedSet(item, None, None, finding)
    credentials = provider.current
    if credentials is None or provider.error is not None:
        error = provider.error or "not resolved"
        finding = Finding(Mark.FAIL, headline, (error,), _source_fixes(item, error))
        return ResolvedSet(item, None, None, finding)
    key = _describe_key(credentials)
    try:
        identity = await _caller_identity(credentials, within=within)
    except _Refused as refused:
        details = (key, f"STS refused them: {refused.code}: {refused.message}")
        fixes = _refusal_fixes(item, credentials, refused.code)
        return ResolvedSet(item, None, None, Finding(Mark.FAIL, headline, details, fixes))
    except _Unreachable as unreachable:
        note = f"identity: not checked, STS could not be reached ({unreachable})"
        return ResolvedSet(item, credentials, None, Finding(Mark.OK, headline, (key, note)))
    found = f"identity: {identity.arn} (account {identity.account})"
    return ResolvedSet(item, credentials, identity, Finding(Mark.OK, headline, (key, found)))


def _describe_key(credentials: Credentials) -> str:
    key = f"access key {mask(credentials.access_key)}"
    if credentials.expires_at is None:
        return f"{key}, long-term (no expiry)"
    left = credentials.expires_at - time.time()
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(credentials.expires_at))
    if left <= 0:
        return f"{key}, expired at {when}"
    return f"{key}, expires in {_duration(left)} ({when})"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _Refused(Exception):
    """STS answered, refusing the credentials."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Unreachable(Exception):
    """STS did not answer (network, endpoint, timeout)."""


async def _caller_identity(credentials: Credentials, *, within: float) -> Identity:
    """GetCallerIdentity on a worker thread (botocore blocks), bounded by ``within``; botocore's
    own connect and read timeouts end the thread soon after."""
    try:
        async with asyncio.timeout(within):
            return await asyncio.to_thread(_ask_sts, credentials, within)
    except TimeoutError:
        raise _Unreachable(f"no answer within {within:g}s") from None


def _ask_sts(credentials: Credentials, within: float) -> Identity:
    session = botocore.session.Session()
    try:
        region = session.get_config_variable("region")
    except botocore.exceptions.ProfileNotFound:
        region = None
    sts: Any = session.create_client(
        "sts",
        # Any region answers GetCallerIdentity; AWS_ENDPOINT_URL_STS overrides the endpoint.
        region_name=region or "us-east-1",
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
        config=botocore.config.Config(
            connect_timeout=within,
            read_timeout=within,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    try:
        answer = sts.get_caller_identity()
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise _Refused(str(error.get("Code", "?")), str(error.get("Message", ""))) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise _Unreachable(" ".join(str(exc).split())) from exc
    finally:
        sts.close()
    return Identity(account=str(answer["Account"]), arn=str(answer["Arn"]))


def refresh_advice(item: CredentialSet) -> str:
    """How to get fresh credentials for ``item``'s source (where expired ones come from)."""
    if item.role_arn is not None:
        base = f"credential set {item.source}" if item.source else "its base credentials"
        return f"the proxy assumes {item.role_arn} afresh by itself; check {base}"
    if item.profile is not None:
        return (
            f"refresh profile {item.profile}: aws sso login --profile {item.profile} for SSO, "
            "or new keys in ~/.aws/credentials"
        )
    return (
        "refresh the default chain's credentials: export new AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or aws sso login"
    )


def _source_fixes(item: CredentialSet, error: str) -> tuple[str, ...]:
    """Fixes for a set that could not be resolved, keyed on botocore's words."""
    if "aws sso login" in error:
        return (f"aws sso login --profile {item.profile or 'default'}",)
    if error.startswith("no credentials found"):
        return (
            f"give the set a profile (credentials.{item.name}.profile), or set AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY where check and the proxy run",
        )
    if "could not be found" in error and item.profile:
        return (
            f"create profile {item.profile} (aws configure --profile {item.profile}, or aws "
            f"configure sso) or correct credentials.{item.name}.profile",
        )
    if "AssumeRole" in error and ("AccessDenied" in error or "not authorized" in error):
        return (
            f"allow sts:AssumeRole on {item.role_arn} to the base identity, and name that "
            "identity as a principal in the role's trust policy",
        )
    if "ExpiredToken" in error or "expired" in error:
        return (refresh_advice(item),)
    if "InvalidClientTokenId" in error or "timed out" in error:
        return ("check the base credentials and that STS is reachable from here",)
    return ()


def _refusal_fixes(item: CredentialSet, credentials: Credentials, code: str) -> tuple[str, ...]:
    key = mask(credentials.access_key)
    if code == "ExpiredToken":
        return (refresh_advice(item),)
    if code == "InvalidClientTokenId":
        return (
            f"AWS does not know access key {key} (deleted, deactivated, or of another "
            f"partition), or its session token is missing: {refresh_advice(item)}",
        )
    if code == "SignatureDoesNotMatch":
        return (
            f"the secret key does not belong to access key {key}: check credential set "
            f"{item.name}'s secret",
        )
    return ()
