"""Pure: every secret an exchange carries, masked for display.

Masked values become a hint of their length, never any of their characters: headers that
carry credentials or signatures, secret-looking query parameters, the session token inside the
canonical request, and any of these where the upstream's reply to a refused request repeats
them (Lambda's canonical string does). A SigV4 or SigV4a Authorization keeps its algorithm,
masked key id, scope and signed headers.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote, unquote_to_bytes

from proxy.core.credentials import mask
from proxy.core.headers import REPLAY_HEADER
from proxy.core.sigv4 import ALGORITHM
from proxy.inspector.exchange import Seen

SIGV4A = "AWS4-ECDSA-P256-SHA256"  # the SigV4a Authorization scheme, as AWS names it
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
    rf"(?P<algorithm>{ALGORITHM}|{SIGV4A}) +Credential=(?P<key>[^/,\s]+)(?P<scope>/[^,\s]*), *"
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


def hint(value: str) -> str:
    """What is shown instead of a secret: its length, nothing of the value."""
    return f"[masked, {len(value)} chars]"


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


def secret_values(seen: Seen, secret_headers: frozenset[str]) -> dict[str, str]:
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
    """SigV4 and SigV4a keep their algorithm, masked key id, scope and signed headers; any
    other scheme keeps its name only."""
    sigv4 = _SIGV4.fullmatch(value.strip())
    if sigv4 is not None:
        return (
            f"{sigv4['algorithm']} Credential={mask(sigv4['key'])}{sigv4['scope']}, "
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
