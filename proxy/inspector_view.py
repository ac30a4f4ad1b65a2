"""Pure: what the inspector page shows of one exchange, with every secret masked.

Masked values become a hint of their length, never any of their characters: headers that
carry credentials or signatures, secret-looking query parameters, the session token inside the
canonical request. This runs when an exchange is recorded, so nothing unmasked is ever stored
for display.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from proxy.credentials import mask
from proxy.headers import REPLAY_HEADER
from proxy.sigv4 import ALGORITHM

if TYPE_CHECKING:
    from proxy.inspector import Seen

# The page shows the start of a body, enough to recognise it.
PREVIEW_BYTES = 4096

# Secret by name: cookies, inbound webhook signatures, and the inspector's own replay token.
_SECRET_HEADERS = frozenset(
    {
        "cookie",
        "set-cookie",
        "x-hub-signature",
        "x-hub-signature-256",
        "stripe-signature",
        "x-slack-signature",
        "x-shopify-hmac-sha256",
        REPLAY_HEADER.lower(),
    }
)
# Secret by a part of the name ("auth" also covers Authorization and X-Auth-Token).
_SECRET_HEADER_WORDS = ("token", "secret", "signature", "password", "api-key", "apikey", "auth")
# Credentials with a scheme in front ("Bearer …", "Basic …"): the scheme is worth seeing.
_SCHEMED = frozenset({"authorization", "proxy-authorization"})
# Headers whose value is a URL, whose query may carry a token.
_URL_HEADERS = frozenset({"referer", "location", "content-location"})
_SECRET_PARAM_WORDS = ("token", "key", "secret", "password", "passwd", "signature", "credential")
_SECRET_PARAM_NAMES = frozenset({"sig", "code", "auth", "pw", "pwd"})
_WORD = re.compile(r"[a-z0-9]+")
_SIGV4 = re.compile(
    rf"{ALGORITHM} +Credential=(?P<key>[^/,\s]+)(?P<scope>/[^,\s]*), *"
    r"SignedHeaders=(?P<signed>[^,\s]*), *Signature=(?P<signature>[0-9a-fA-F]+)"
)


def hint(value: str) -> str:
    """What is shown instead of a secret: its length, nothing of the value."""
    return f"[masked, {len(value)} chars]"


def summary(seen: Seen, entry_id: int) -> dict[str, Any]:
    """The row of the table: one line per exchange."""
    return {
        "id": entry_id,
        "request_id": seen.request_id,
        "started": seen.started,
        "duration_ms": round(seen.duration * 1000, 1),
        "method": seen.method,
        "target": mask_target(seen.target),
        "route": seen.route,
        "status": seen.status,
        "upstream_status": seen.upstream_status,
        "bytes_in": seen.bytes_in,
        "bytes_out": seen.bytes_out,
        "amzn_request_id": seen.amzn_request_id,
        "amzn_error_type": seen.amzn_error_type,
        "error": seen.error,
        "failed": seen.status >= 400 or seen.error is not None,
        "replay_of": seen.replay_of,
    }


def details(seen: Seen, *, secret_headers: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What an expanded row adds to the summary; ``secret_headers`` (lower-case) are masked
    too, whatever their names (a route's own bearer or signature header)."""
    sent = seen.sent_headers
    return {
        "request_headers": mask_headers(seen.request_headers, secret_headers),
        "sent_headers": None if sent is None else mask_headers(sent, secret_headers),
        "response_headers": mask_headers(seen.response_headers, secret_headers),
        "canonical_request": (
            None if seen.canonical_request is None else mask_canonical(seen.canonical_request)
        ),
        "string_to_sign": seen.string_to_sign,  # a date, a scope and a hash: nothing secret
        "diagnosis": seen.diagnosis,
        "body": body_preview(seen.body, seen.bytes_in),
    }


def mask_headers(
    headers: Iterable[tuple[str, str]], secret: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """Each header with its value masked when it may carry a secret, or is one of ``secret``."""
    return [(name, mask_header(name, value, secret)) for name, value in headers]


def mask_header(name: str, value: str, secret: frozenset[str] = frozenset()) -> str:
    """One header's value as the page shows it."""
    lower = name.lower()
    if lower in secret:
        return hint(value)
    if lower in _SCHEMED:
        return _mask_credentials(value)
    if lower == "cookie":
        return "; ".join(_mask_cookie(pair) for pair in value.split(";"))
    if lower == "set-cookie":
        cookie, sep, attributes = value.partition(";")
        return _mask_cookie(cookie) + sep + attributes
    if lower in _SECRET_HEADERS or any(word in lower for word in _SECRET_HEADER_WORDS):
        return hint(value)
    if lower in _URL_HEADERS:
        return mask_target(value)
    return value


def _mask_credentials(value: str) -> str:
    """SigV4 keeps its algorithm, masked key id, scope and signed headers; any other scheme
    keeps its name only."""
    sigv4 = _SIGV4.fullmatch(value.strip())
    if sigv4 is not None:
        return (
            f"{ALGORITHM} Credential={mask(sigv4['key'])}{sigv4['scope']}, "
            f"SignedHeaders={sigv4['signed']}, Signature={hint(sigv4['signature'])}"
        )
    scheme, space, credentials = value.strip().partition(" ")
    return f"{scheme} {hint(credentials.strip())}" if space else hint(value)


def _mask_cookie(pair: str) -> str:
    name, sep, value = pair.strip().partition("=")
    return f"{name}={hint(value)}" if sep else hint(name)


def mask_target(target: str) -> str:
    """A path or URL with the values of secret-looking query parameters masked."""
    base, sep, query = target.partition("?")
    return base + sep + mask_query(query) if sep else target


def mask_query(query: str) -> str:
    """``a=1&token=…`` with secret-looking parameters' values masked, order and form kept."""
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        parts.append(f"{name}={hint(value)}" if sep and secret_parameter(name) else part)
    return "&".join(parts)


def secret_parameter(name: str) -> bool:
    """Whether a query parameter's name says its value is a credential."""
    lower = unquote(name).lower()
    if lower.startswith("x-amz-") or any(word in lower for word in _SECRET_PARAM_WORDS):
        return True
    return any(word in _SECRET_PARAM_NAMES for word in _WORD.findall(lower))


def mask_canonical(canonical_request: str) -> str:
    """The canonical request with its query and its secret header lines (the session token)
    masked; the hashed payload and the signed header names stay."""
    lines = canonical_request.split("\n")
    if len(lines) < 3:
        return canonical_request
    lines[2] = mask_query(lines[2])
    for index in range(3, len(lines)):
        name, sep, value = lines[index].partition(":")
        if not sep:
            break  # the blank line after the headers
        lines[index] = f"{name}:{mask_header(name, value)}"
    return "\n".join(lines)


def body_preview(body: bytes | None, size: int) -> dict[str, Any]:
    """The start of the body as text when it is UTF-8, else a note saying what it is."""
    if body is None:
        note = "the proxy did not keep this body" if size else None
        return {"size": size, "text": None, "truncated": False, "note": note}
    head = body[:PREVIEW_BYTES]
    truncated = len(body) > PREVIEW_BYTES
    try:
        # Not final when cut: a character split at the cut is left out, not an error.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=not truncated)
    except UnicodeDecodeError:
        note = f"{len(body)} bytes of binary data (not UTF-8)"
        return {"size": len(body), "text": None, "truncated": False, "note": note}
    return {"size": len(body), "text": text, "truncated": truncated, "note": None}
