"""Where the fake function finds the key for an access key id: the keys given, then moto's STS.

The keys given are read live, so a test may add one after start. A key id they do not hold is
looked up among the credentials a local STS (moto's server) has issued, through moto's
model-data API ``GET /moto-api/data.json``; what is found there is cached, since moto never
revokes a key it issued.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from proxy.emulator.streams import read_capped
from proxy.emulator.verify import Key

__all__ = [
    "MAX_MODEL_DATA",
    "MODEL_DATA_PATH",
    "STS_LOOKUP_TIMEOUT",
    "FoundKey",
    "LayeredKeys",
    "MotoIssuedKeys",
    "StsUnreachableError",
    "check_sts_url",
    "keys_from_model_data",
    "mask_key_id",
]

MODEL_DATA_PATH = "/moto-api/data.json"
# Asking a local moto takes milliseconds; the bound only keeps a hung one from holding requests.
STS_LOOKUP_TIMEOUT = 5.0
# moto's model data lists every object of every service it emulates; a test run stays far below.
MAX_MODEL_DATA = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FoundKey:
    """A key the function accepts, and the role it belongs to when an STS issued it."""

    key: Key
    role_arn: str | None = None


class StsUnreachableError(Exception):
    """The STS could not be asked; the message names its URL and why, never a secret."""


class LayeredKeys(Mapping[str, Key]):
    """Several key mappings read as one, live: the first that holds a key id wins."""

    def __init__(self, *layers: Mapping[str, Key]) -> None:
        self._layers = layers

    def __getitem__(self, access_key_id: str) -> Key:
        for layer in self._layers:
            key = layer.get(access_key_id)
            if key is not None:
                return key
        raise KeyError(access_key_id)

    def __iter__(self) -> Iterator[str]:
        return iter({key_id: None for layer in self._layers for key_id in layer})

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"LayeredKeys({len(self)} keys)"


def check_sts_url(sts_url: str) -> str:
    """``sts_url`` without a trailing slash, or ValueError when it is not an http(s) URL."""
    url = URL(sts_url)
    if url.scheme not in ("http", "https") or not url.host or url.query_string:
        raise ValueError(
            f"sts_url {sts_url!r} is not the base URL of a moto server "
            "(expected e.g. http://127.0.0.1:5000)"
        )
    return sts_url.rstrip("/")


def mask_key_id(access_key_id: str) -> str:
    """``ASIA…WXYZ``: enough to tell keys apart in a log line."""
    return f"{access_key_id[:4]}…{access_key_id[-4:]}" if len(access_key_id) > 8 else "…"


def keys_from_model_data(payload: object) -> dict[str, FoundKey]:
    """The keys of every ``sts`` → ``AssumedRole`` in moto's model data, by access key id.

    moto drops every attribute that is not JSON, the expiration datetime among them, so such
    a key never expires here; an ``expiration`` string, should a moto version send one, is used.
    """
    if not isinstance(payload, dict):
        raise ValueError("the answer is not a JSON object")
    sts = payload.get("sts")
    roles = sts.get("AssumedRole") if isinstance(sts, dict) else None
    found: dict[str, FoundKey] = {}
    for role in roles if isinstance(roles, list) else ():
        if not isinstance(role, dict):
            continue
        key_id = role.get("access_key_id")
        secret = role.get("secret_access_key")
        token = role.get("session_token")
        if not (isinstance(key_id, str) and isinstance(secret, str) and isinstance(token, str)):
            continue
        role_arn = role.get("role_arn")
        found[key_id] = FoundKey(
            key=Key(secret, token, expires_at=_expiration(role.get("expiration"))),
            role_arn=role_arn if isinstance(role_arn, str) else None,
        )
    return found


def _expiration(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class MotoIssuedKeys:
    """The credentials a moto server has issued, asked for on a miss and cached.

    ``session`` belongs to the caller (the function app's cleanup context), which also closes it.
    """

    def __init__(
        self,
        *,
        sts_url: str,
        session: aiohttp.ClientSession,
        timeout: float = STS_LOOKUP_TIMEOUT,
    ) -> None:
        self.sts_url = check_sts_url(sts_url)
        self._session = session
        self._timeout = timeout
        self._cache: dict[str, FoundKey] = {}
        # One request at a time asks moto; those queued behind it usually find their key cached.
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"MotoIssuedKeys(sts_url={self.sts_url!r}, cached={len(self._cache)})"

    async def find(self, access_key_id: str) -> FoundKey | None:
        """The key moto issued under ``access_key_id``, or None when it issued no such key.

        Raises StsUnreachableError when moto does not answer within the timeout, or answers
        something other than its model data.
        """
        found = self._cache.get(access_key_id)
        if found is not None:
            return found
        try:
            # The bound covers the wait for the lock as well as the request itself.
            async with asyncio.timeout(self._timeout):
                async with self._lock:
                    if access_key_id not in self._cache:
                        self._cache.update(await self._fetch())
        except TimeoutError as exc:
            raise self._unreachable(f"no answer within {self._timeout:g} s") from exc
        return self._cache.get(access_key_id)

    async def _fetch(self) -> dict[str, FoundKey]:
        url = self.sts_url + MODEL_DATA_PATH
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise self._unreachable(
                        f"GET {MODEL_DATA_PATH} answered HTTP {response.status} "
                        "(is it a moto server?)"
                    )
                raw = await read_capped(response.content, limit=MAX_MODEL_DATA)
        except aiohttp.ClientError as exc:
            raise self._unreachable(str(exc) or type(exc).__name__) from exc
        if raw is None:
            raise self._unreachable(f"its model data is over {MAX_MODEL_DATA} bytes")
        try:
            return keys_from_model_data(json.loads(raw))
        except ValueError as exc:
            reason = f"GET {MODEL_DATA_PATH} did not answer moto's model data ({exc})"
            raise self._unreachable(reason) from exc

    def _unreachable(self, reason: str) -> StsUnreachableError:
        return StsUnreachableError(f"the STS at {self.sts_url} could not be asked: {reason}")
