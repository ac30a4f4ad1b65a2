"""Pure: what the inspector page shows of one exchange, with every secret masked.

Masked values become a hint of their length, never any of their characters: headers that
carry credentials or signatures, secret-looking query parameters, the session token inside the
canonical request, and any of these where the upstream's reply to a refused request repeats
them (Lambda's canonical string does). This runs when an exchange is recorded, so nothing
unmasked is ever stored for display. A failure is laid out as what AWS said, what the proxy
concluded and what to check.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes

from proxy.core.credentials import mask
from proxy.core.headers import REPLAY_HEADER
from proxy.core.sigv4 import ALGORITHM
from proxy.inspector.exchange import Seen

# The page shows the start of a body (the request's, the upstream's reply to a refused
# request), enough to recognise it.
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
_HINT = re.compile(r"\[masked, \d+ chars\]")
# Secret values from the request are replaced wherever the reply repeats them; shorter ones
# would replace those characters all over the text, so they are masked only where they stand
# as a header line or a query parameter.
_SHORTEST_SECRET = 4
# Lambda's signature mismatch message quotes the canonical request it expected; in a JSON
# body its line breaks are still escaped.
_QUOTED_CANONICAL = re.compile(
    r"(?P<lead>Canonical String for this request should have been(?P<nl>\n|\\n)')"
    r"(?P<canonical>.*?)(?='(?:\n|\\n)|\Z)",
    re.DOTALL,
)
# A "name:value" line, as in a canonical request, also inside a JSON string.
_HEADER_LINE = re.compile(
    r"(?m)(?:^|(?<=\\n)|(?<='))(?P<name>[A-Za-z0-9-]+):(?P<value>(?:(?!\\n)[^\n'\"])*)"
)
# explain_403's advice: sentences, each of them clauses; a proxy error's advice comes after
# "; " and starts with one of these verbs.
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z`])")
_ADVICE_VERBS = ("check", "set", "use", "give", "add", "put", "send", "run", "synchronise")


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
            said = mask_text(said, _secret_values(seen, secret_headers), secret_headers)
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
    masked = mask_text(text, _secret_values(seen, secret_headers), secret_headers).encode()
    truncated = len(masked) > PREVIEW_BYTES
    head = codecs.getincrementaldecoder("utf-8")().decode(masked[:PREVIEW_BYTES], final=False)
    return {"size": len(body), "text": head, "truncated": truncated, "note": None}


def mask_text(
    text: str, secrets: Mapping[str, str], secret_headers: frozenset[str] = frozenset()
) -> str:
    """Free text (an upstream's reply) with the canonical request it quotes masked, secret
    header lines (and ``secret_headers``' lines) masked, and each of ``secrets`` (value: what
    is shown instead) replaced."""
    text = _QUOTED_CANONICAL.sub(_mask_quoted_canonical, text)
    text = _HEADER_LINE.sub(lambda found: _mask_header_line(found, secret_headers), text)
    known = [value for value in sorted(secrets, key=len, reverse=True) if value]
    if not known:
        return text
    # One pass, hints first: a hint already in place is kept, not masked again.
    pattern = re.compile("|".join([_HINT.pattern, *map(re.escape, known)]))
    return pattern.sub(lambda found: secrets.get(found[0], found[0]), text)


def _mask_quoted_canonical(found: re.Match[str]) -> str:
    canonical, escaped = found["canonical"], found["nl"] != "\n"
    if escaped:
        canonical = canonical.replace("\\n", "\n")
    masked = mask_canonical(canonical)
    return found["lead"] + (masked.replace("\n", "\\n") if escaped else masked)


def _mask_header_line(found: re.Match[str], secret_headers: frozenset[str]) -> str:
    name, value = found["name"], found["value"]
    if _HINT.fullmatch(value.strip()):
        return found[0]  # masked already, as part of the quoted canonical request
    return f"{name}:{mask_header(name, value, secret_headers)}"


def _secret_values(seen: Seen, secret_headers: frozenset[str]) -> dict[str, str]:
    """The secrets the request carried, each with what the page shows instead: what an
    upstream's reply may repeat."""
    found: dict[str, str] = {}

    def add(value: str, shown: str | None = None) -> None:
        value = value.strip()
        if len(value) >= _SHORTEST_SECRET:
            shown = shown or hint(value)
            # Also as a JSON string would carry it.
            for form in {value, json.dumps(value)[1:-1], value.replace("/", "\\/")}:
                found.setdefault(form, shown)

    def add_query(query: str) -> None:
        for part in query.split("&"):
            name, sep, value = part.partition("=")
            if sep and secret_parameter(name):
                # As sent, decoded, and strictly re-encoded as in a canonical query.
                for form in (value, unquote(value), quote(unquote_to_bytes(value), safe="")):
                    add(form, hint(value))

    headers = itertools.chain(seen.request_headers, seen.sent_headers or (), seen.response_headers)
    for name, value in headers:
        lower = name.lower()
        if lower in _URL_HEADERS:
            add_query(value.partition("?")[2])
        if mask_header(name, value, secret_headers) == value:
            continue
        add(value)
        if lower in ("cookie", "set-cookie"):
            for pair in value.split(";"):
                cookie, sep, cookie_value = pair.strip().partition("=")
                add(cookie_value if sep else cookie)
        elif lower in _SCHEMED and lower not in secret_headers:
            sigv4 = _SIGV4.fullmatch(value.strip())
            if sigv4 is not None:
                add(sigv4["key"], mask(sigv4["key"]))
                add(sigv4["signature"])
            else:
                add(value.strip().partition(" ")[2])
    add_query(seen.target.partition("?")[2])
    return found


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
