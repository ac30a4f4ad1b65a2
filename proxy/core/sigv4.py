"""Pure AWS Signature Version 4: canonical request, string to sign, signature, cached signing key.

Nothing here does I/O or reads a clock: the caller passes the time (``amz_date``) and one
credentials snapshot, so the same inputs always give the same signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
# A query of unreserved characters, "=" and "&" is already in canonical form, but for order.
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9\-._~=&]*")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~/]*")
_UNRESERVED_ONLY = re.compile(r"[A-Za-z0-9\-._~]*")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class Signature:
    """The result of signing: the Authorization value and what it was computed from."""

    authorization: str
    signed_headers: str
    canonical_request: str
    string_to_sign: str


def format_amz_date(epoch_seconds: float) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC, the X-Amz-Date format."""
    return _amz_date(int(epoch_seconds))


@lru_cache(maxsize=4)
def _amz_date(second: int) -> str:
    # Requests come many to a second; the text changes once a second.
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))


def sign(
    *,
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    amz_date: str,
    normalize: bool = True,
) -> Signature:
    """Sign one request; ``headers`` are exactly the headers to sign, ``host`` among them.

    ``path`` and ``query`` are the wire form (still percent-encoded, no ``?``). ``normalize``
    resolves dot segments and empty segments as every service but S3 does.
    """
    canonical_request, signed_headers = canonical(
        method, path, query, headers, payload_hash, normalize=normalize
    )
    return _finish(
        canonical_request, signed_headers, access_key, secret_key, region, service, amz_date
    )


def canonical(
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    payload_hash: str,
    *,
    normalize: bool = True,
) -> tuple[str, str]:
    """The canonical request over exactly ``headers``, and its signed-headers list: the same
    for SigV4 and SigV4a."""
    header_lines, signed_headers = canonical_headers(headers)
    request = "\n".join(
        (
            method,
            canonical_uri(path, normalize=normalize),
            canonical_query(query),
            header_lines,
            signed_headers,
            payload_hash,
        )
    )
    return request, signed_headers


def _finish(
    canonical_request: str,
    signed_headers: str,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    amz_date: str,
) -> Signature:
    """The string to sign, the signature and the Authorization value."""
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
    mac = _keyed(secret_key, date, region, service).copy()
    mac.update(string_to_sign.encode())
    signature = mac.hexdigest()
    authorization = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return Signature(authorization, signed_headers, canonical_request, string_to_sign)


def sign_minimal(
    *,
    method: str,
    path: str,
    query: str,
    payload_hash: str,
    host: str,
    region: str,
    service: str,
    access_key: str,
    secret_key: str,
    token: str | None,
    amz_date: str,
) -> tuple[Signature, dict[str, str]]:
    """Sign only what survives CloudFront: ``host`` (the signing host, not the wire's),
    ``x-amz-content-sha256``, ``x-amz-date`` and the session token. Returns the signature and
    the headers to send with the request (besides Host).

    The same result as ``sign`` with those four headers (a test holds them equal), built
    directly: this runs for every request.
    """
    canonical_request, signed_headers, sent = minimal_canonical(
        method, path, query, payload_hash, host, token, amz_date
    )
    signature = _finish(
        canonical_request, signed_headers, access_key, secret_key, region, service, amz_date
    )
    sent["Authorization"] = signature.authorization
    return signature, sent


def minimal_canonical(
    method: str,
    path: str,
    query: str,
    payload_hash: str,
    host: str,
    token: str | None,
    amz_date: str,
    region_set: str | None = None,
) -> tuple[str, str, dict[str, str]]:
    """The canonical request over what survives CloudFront, for SigV4 and SigV4a: ``host``,
    ``x-amz-content-sha256``, ``x-amz-date``, SigV4a's ``x-amz-region-set`` when given, and
    the session token. Returns it, its signed-headers list and the headers to send (besides
    Host and Authorization)."""
    sent = {"x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    # Built in canonical order (sorted by name, one value each) rather than sorted: this runs
    # for every request.
    header_lines = (
        f"host:{trim(host)}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n"
    )
    signed_headers = "host;x-amz-content-sha256;x-amz-date"
    if region_set is not None:
        sent["x-amz-region-set"] = region_set
        header_lines += f"x-amz-region-set:{trim(region_set)}\n"
        signed_headers += ";x-amz-region-set"
    if token:
        sent["x-amz-security-token"] = token
        header_lines += f"x-amz-security-token:{trim(token)}\n"
        signed_headers += ";x-amz-security-token"
    canonical_request = (
        f"{method}\n{canonical_uri(path)}\n{canonical_query(query)}\n"
        f"{header_lines}\n{signed_headers}\n{payload_hash}"
    )
    return canonical_request, signed_headers, sent


def trim(value: str) -> str:
    """A header value as it is signed: runs of spaces and tabs folded to one, ends trimmed."""
    return " ".join(value.split()) if " " in value or "\t" in value else value


@lru_cache(maxsize=256)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The derived key; it changes once a day per (secret, region, service), so it is cached."""
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


@lru_cache(maxsize=256)
def _keyed(secret_key: str, date: str, region: str, service: str) -> hmac.HMAC:
    """An HMAC keyed with the signing key, copied for each signature: hmac.digest() sets up
    OpenSSL's HMAC afresh on every call, which costs more than the copy (1.3 against 0.8 µs)."""
    return hmac.new(signing_key(secret_key, date, region, service), digestmod=hashlib.sha256)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode(), "sha256")


def canonical_uri(path: str, *, normalize: bool = True) -> str:
    """URI-encode the wire path once more (``%20`` becomes ``%2520``), ``/`` kept."""
    if normalize:
        path = remove_dot_segments(path)
    if _PLAIN_PATH.fullmatch(path):  # nothing quote would change (most paths)
        return path or "/"
    return quote(path, safe="/") or "/"


def remove_dot_segments(path: str) -> str:
    """Resolve ``.``/``..``, collapse empty segments, keep a trailing slash: as the SDKs do."""
    if "//" not in path and "/." not in path:
        return path or "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    # Like botocore: a trailing slash survives only when the path itself ends with one.
    tail = "/" if path.endswith("/") and kept else ""
    return "/" + "/".join(kept) + tail


def canonical_query(query: str) -> str:
    """Decode each name and value, re-encode with only ``A-Za-z0-9-_.~`` bare, sort, join.

    ``+`` is a literal plus, not a space: SigV4 percent-decodes, it does not form-decode.
    """
    if not query:
        return ""
    plain = _PLAIN_QUERY.fullmatch(query) is not None  # nothing to decode or encode, but "="
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if plain and "=" not in value:
            pairs.append((name, value))
        else:
            pairs.append((_canonical_component(name), _canonical_component(value)))
    pairs.sort()
    return "&".join([f"{name}={value}" for name, value in pairs])


def _canonical_component(component: str) -> str:
    # Most names and values are already canonical; only the rest pay for decoding.
    if _UNRESERVED_ONLY.fullmatch(component):
        return component
    return quote(unquote_to_bytes(component), safe="")


def canonical_headers(headers: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """The canonical header lines (each ending in a newline) and the signed-headers list."""
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        # Trim and fold runs of whitespace; repeated headers join with a comma.
        merged.setdefault(name.lower(), []).append(" ".join(value.split()))
    names = sorted(merged)
    lines = "".join([f"{name}:{','.join(merged[name])}\n" for name in names])
    return lines, ";".join(names)
