"""Pure: what the inspector page shows of one exchange: its summary row, its details with every
secret masked (``proxy.inspector.masking``; this runs when an exchange is recorded, so nothing
unmasked is ever stored for display), how it was signed, and a failure laid out as what AWS
said, what the proxy concluded and what to check.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from proxy.core.sigv4 import ALGORITHM
from proxy.inspector.exchange import Seen
from proxy.inspector.masking import (
    mask_canonical,
    mask_headers,
    mask_target,
    mask_text,
    secret_values,
)

# The page shows the start of a body (the request's, the upstream's reply to a refused
# request), enough to recognise it.
PREVIEW_BYTES = 4096

# explain_403's advice: sentences, each of them clauses; a proxy error's advice comes after
# "; " and starts with one of these verbs.
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z`])")
_ADVICE_VERBS = ("check", "set", "use", "give", "add", "put", "send", "run", "synchronise")


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
        "signing": signing(seen.string_to_sign, seen.canonical_request),
        "diagnosis": seen.diagnosis,
        "failure": failure(seen, secret_headers),
        "body": body_preview(seen.body, seen.bytes_in),
        "upstream_body": reply_preview(seen, secret_headers),
    }


def failure(seen: Seen, secret_headers: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """A failed exchange's box: what AWS said (when the upstream refused it), what the proxy
    concluded and what to check; None when nothing failed."""
    if seen.status < 400 and seen.error is None and seen.diagnosis is None:
        return None
    aws: dict[str, Any] | None = None
    said = None
    refused = seen.upstream_status is not None and seen.upstream_status >= 400
    if refused and seen.error is None:
        said = _message_of(seen.error_body)
        if said is not None:
            said = mask_text(said, secret_values(seen, secret_headers), secret_headers)
        aws = {"status": seen.upstream_status, "error_type": seen.amzn_error_type, "message": said}
    concluded, checks = _conclusion(seen)
    if said is not None and "Canonical String for this request" in said:
        checks.append(
            "compare the canonical request AWS expected (in its message) with the one the "
            "proxy signed (below): the first line that differs is what to fix"
        )
    return {"aws": aws, "concluded": concluded, "checks": checks}


def _conclusion(seen: Seen) -> tuple[str | None, list[str]]:
    """The diagnosis split into what the proxy concluded and the things to check."""
    text = seen.diagnosis
    if text is None:
        if seen.upstream_status is not None and seen.upstream_status >= 400:
            return f"the upstream answered {seen.upstream_status}; the proxy passed it on", []
        return None, []
    if seen.error is not None:  # the proxy's own refusal: "...; check ..." at most
        clauses = text.split("; ")
        start = next(
            (i for i, clause in enumerate(clauses) if i and clause.startswith(_ADVICE_VERBS)),
            len(clauses),
        )
        return "; ".join(clauses[:start]), clauses[start:]
    kind = (seen.amzn_error_type or "").partition(":")[0]
    if kind and text.startswith(f"{kind}: "):  # explain_403 knows no more than AWS said
        return f"AWS refused it with {kind}; the proxy knows no specific cause for it", []
    concluded, sep, advice = text.partition(": ")
    if not sep:
        return text, []
    checks = [
        clause.strip().removesuffix(".")
        for sentence in _SENTENCE_END.split(advice)
        for clause in sentence.split("; ")
        if clause.strip()
    ]
    return concluded, checks


def _message_of(body: bytes | None) -> str | None:
    """The ``Message`` (or ``message``) of a JSON error body, as Lambda sends one."""
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict):
        for key in ("Message", "message"):
            if isinstance(parsed.get(key), str):
                return str(parsed[key])
    return None


def reply_preview(
    seen: Seen, secret_headers: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The start of the upstream's reply to a refused request, as text with every secret of
    the request masked; None when there is none."""
    body = seen.error_body
    if not body:
        return None
    try:
        # Not final: the proxy may have kept only the start of a longer body.
        text = codecs.getincrementaldecoder("utf-8")().decode(body, final=False)
    except UnicodeDecodeError:
        note = f"{len(body)} bytes of binary data (not UTF-8)"
        return {"size": len(body), "text": None, "truncated": False, "note": note}
    # Masked whole, then cut: a secret is never cut in two, half of it left showing.
    masked = mask_text(text, secret_values(seen, secret_headers), secret_headers).encode()
    truncated = len(masked) > PREVIEW_BYTES
    head = codecs.getincrementaldecoder("utf-8")().decode(masked[:PREVIEW_BYTES], final=False)
    return {"size": len(body), "text": head, "truncated": truncated, "note": None}


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


def signing(
    string_to_sign: str | None, canonical_request: str | None
) -> dict[str, str | None] | None:
    """How an exchange was signed, read from what was signed: the algorithm, and the region
    (SigV4, from the scope) or the region set (SigV4a, its signed X-Amz-Region-Set)."""
    if not string_to_sign or canonical_request is None:
        return None
    algorithm, _, rest = string_to_sign.partition("\n")
    scope = rest.partition("\n")[2].partition("\n")[0].split("/")
    region_set = next(
        (
            line.partition(":")[2]
            for line in canonical_request.split("\n")
            if line.startswith("x-amz-region-set:")
        ),
        None,
    )
    region = scope[1] if algorithm == ALGORITHM and len(scope) == 4 else None
    return {"algorithm": algorithm, "region": region, "region_set": region_set}
