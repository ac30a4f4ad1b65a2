"""What the fake CloudFront does to headers: on the way to the origin, and on the reply."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable

from multidict import CIMultiDict, MultiMapping

__all__ = [
    "POP",
    "cf_id",
    "normalise_accept_encoding",
    "origin_request_headers",
    "reply_headers",
    "via",
]

POP = "EMU50-C1"

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
# Never copied from the viewer: the body is re-sent with its own Content-Length, Expect
# would make the origin wait for a handshake nobody does, Via and X-Forwarded-For are
# extended, Accept-Encoding is normalised, and the CloudFront headers are CloudFront's own.
_NOT_FORWARDED = frozenset(
    {
        "host",
        "content-length",
        "expect",
        "accept-encoding",
        "via",
        "x-forwarded-for",
        "x-amz-cf-id",
        "cloudfront-forwarded-proto",
    }
)


def origin_request_headers(
    viewer: MultiMapping[str],
    *,
    function_host: str,
    client_address: str,
    scheme: str,
    request_id: str,
    also_drop: Iterable[str] = (),
) -> CIMultiDict[str]:
    """The headers CloudFront sends to the origin under AllViewerExceptHostHeader."""
    drop = _hop_by_hop_names(viewer.getall("Connection", ())) | {n.lower() for n in also_drop}
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Host"] = function_host
    for name, value in viewer.items():
        if not _is_hop_by_hop(name, drop) and name.lower() not in _NOT_FORWARDED:
            headers.add(name, value)
    accept_encoding = normalise_accept_encoding(viewer.getall("Accept-Encoding", ()))
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    headers["Via"] = _append(viewer.getall("Via", ()), via())
    headers["X-Forwarded-For"] = _append(viewer.getall("X-Forwarded-For", ()), client_address)
    headers["X-Amz-Cf-Id"] = request_id
    headers["CloudFront-Forwarded-Proto"] = scheme
    return headers


def reply_headers(origin: MultiMapping[str], *, request_id: str) -> CIMultiDict[str]:
    """The origin's reply headers minus hop-by-hop ones, plus CloudFront's own."""
    drop = _hop_by_hop_names(origin.getall("Connection", ()))
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in origin.items():
        if not _is_hop_by_hop(name, drop) and name.lower() != "via":
            headers.add(name, value)  # add, not set: every Set-Cookie survives
    headers["Via"] = _append(origin.getall("Via", ()), via())
    headers["X-Cache"] = "Miss from cloudfront"
    headers["X-Amz-Cf-Pop"] = POP
    headers["X-Amz-Cf-Id"] = request_id
    return headers


def normalise_accept_encoding(values: Iterable[str]) -> str | None:
    """CloudFront's rewrite: br and gzip → "br,gzip", gzip only → "gzip", otherwise nothing."""
    accepted: set[str] = set()
    for value in values:
        for item in value.split(","):
            coding, _, params = item.strip().partition(";")
            quality = params.strip().lower().removeprefix("q=").strip() if params else "1"
            if quality.rstrip("0").rstrip(".") in ("", "0"):
                continue  # q=0 means "not acceptable"
            accepted.add(coding.strip().lower())
    if "gzip" in accepted and "br" in accepted:
        return "br,gzip"
    if "gzip" in accepted:
        return "gzip"
    return None


def via() -> str:
    """A Via entry in CloudFront's shape, naming a random edge server."""
    return f"1.1 {secrets.token_hex(16)}.cloudfront.net (CloudFront)"


def cf_id() -> str:
    """A fresh X-Amz-Cf-Id: 56 URL-safe base64 characters, like CloudFront's."""
    return base64.urlsafe_b64encode(secrets.token_bytes(40)).decode("ascii")


def _hop_by_hop_names(connection_values: Iterable[str]) -> set[str]:
    """The fixed hop-by-hop set plus every header the Connection header names."""
    names = set(_HOP_BY_HOP)
    for value in connection_values:
        names.update(token.strip().lower() for token in value.split(",") if token.strip())
    return names


def _is_hop_by_hop(name: str, drop: set[str]) -> bool:
    lowered = name.lower()
    return lowered in drop or lowered.startswith("proxy-")


def _append(existing: Iterable[str], value: str) -> str:
    return ", ".join([*existing, value])
