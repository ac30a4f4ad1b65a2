"""Pure request routing: match a request to a route and build the path it goes upstream with.

The request target is normalised once, here (RFC 3986 §6.2.2: unreserved characters decoded,
escapes upper-cased, dot segments resolved, ``//`` collapsed), and that one form is used to
match routes, to send upstream and to sign. A route therefore cannot be bypassed with
``/%61dmin`` or ``/public/../admin``, and what is signed is byte for byte what is sent. The
query goes upstream in the encoding SigV4 signs (each name and value decoded and re-encoded
strictly, in the client's order), so a verifier that canonicalises the received query without
re-encoding it computes the same signature.

What normalising cannot settle is refused instead: an encoded ``/`` or ``\\`` (``%2F``,
``%5C``) leaves a segment that the function's framework may decode into a path another route
protects (``/public/..%2Fadmin``), unless the route opts in; ``%00`` always; ``TRACE``, which
would echo the signed request back; and methods outside HTTP's usual seven unless a route
names them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from proxy.core.front_door import host_name
from proxy.core.sigv4 import remove_dot_segments
from proxy.errors import BadRequestError, MethodNotAllowedError, NoRouteError
from proxy.model import METHODS, Route

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")  # RFC 3986 pchar and "/"
_HEX = frozenset(string.hexdigits)

# Targets made only of safe characters, without escapes or dot segments, need no work.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
# A query already in the signed encoding: non-empty parts, each ``name``, ``name=value`` or
# ``=value``, of unreserved characters only (most queries; they are sent untouched).
_SIGNED_PART = r"(?:[A-Za-z0-9\-._~]+(?:=[A-Za-z0-9\-._~]*)?|=[A-Za-z0-9\-._~]*)"
_SIGNED_QUERY = re.compile(rf"(?:{_SIGNED_PART}(?:&{_SIGNED_PART})*)?")
_UNRESERVED_RUN = re.compile(r"[A-Za-z0-9\-._~]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# In a normalised path (escapes upper-cased, a raw backslash already encoded as %5C).
_ENCODED_SLASH = re.compile(r"%(?:2F|5C)")
# What a route without methods: takes; any other method must be named by the route.
_USUAL_METHODS = frozenset(METHODS)


@dataclass(frozen=True, slots=True)
class Match:
    """A matched route and the path and query (wire form, no ``?``) to send upstream."""

    route: Route
    path: str
    query: str


def match(
    routes: Sequence[Route],
    *,
    method: str,
    host: str | None,
    target: str,
    named_only: bool = False,
) -> Match:
    """The first route that takes this request, or the error that answers it; with
    ``named_only`` (a Host that only routes' host: admit), only a route naming that host."""
    path, query = split_target(target)
    allowed: set[str] = set()
    inbound_host = host_name(host)
    for route in routes:
        if route.host is None:
            if named_only:
                continue
        elif not _host_matches(route.host, inbound_host):
            continue
        if not prefix_matches(route.path_prefix, path):
            continue
        methods = _USUAL_METHODS if route.methods is None else route.methods
        if method not in methods:  # TRACE never is: the config refuses it in methods:
            allowed |= methods
            continue
        if "%" in path and not route.allow_encoded_slashes and _ENCODED_SLASH.search(path):
            raise BadRequestError(
                "the path contains an encoded '/' or '\\' (%2F or %5C), which the function's "
                "framework may decode into a path that another route protects; set "
                f"allow_encoded_slashes: true on route {route.name!r} if the function needs them",
                route=route.name,
            )
        return Match(route, upstream_path(route, path), query)
    if method == "TRACE":
        raise MethodNotAllowedError(
            "TRACE is never forwarded: the reply would echo the signed request back "
            "(RFC 9110 §9.3.8)",
            allowed=frozenset(allowed or _USUAL_METHODS),
        )
    if allowed:
        raise MethodNotAllowedError(
            f"{method} is not allowed for {path}; allowed: {', '.join(sorted(allowed))}",
            allowed=frozenset(allowed),
        )
    if named_only:
        raise NoRouteError(
            f"no route for Host {host_name(host)!r} matches {method} {path}: a Host that only a "
            "route's host: names reaches only the routes that name it"
        )
    raise NoRouteError(f"no route matches {method} {path}; check path_prefix and host of routes")


def split_target(target: str) -> tuple[str, str]:
    """Validate and normalise an origin-form request target into (path, query)."""
    if not target.startswith("/"):
        # Absolute-form ("http://other/") or authority-form: only forward proxies take these.
        raise BadRequestError(
            "the request target must be a path such as /orders; "
            "this is a reverse proxy, not a forward proxy"
        )
    path, _, query = target.partition("?")
    # A fragment never belongs on the wire; drop it as a user agent would.
    query = query.partition("#")[0]
    path = path.partition("#")[0]
    return normalize_path(path), _normalize_query(query)


def normalize_path(path: str) -> str:
    """Percent-encoding normalised, dot segments resolved, empty segments collapsed."""
    if not (_PLAIN_PATH.fullmatch(path) and "//" not in path and "/." not in path):
        path = remove_dot_segments(_normalize_escapes(path, _PATH_SAFE))
        if "%00" in path:
            # Frameworks and file systems end a string there: what the function acts on
            # would not be what was routed and signed.
            raise BadRequestError("the path contains %00 (an encoded NUL byte), which is refused")
    return path


def _normalize_query(query: str) -> str:
    """The query in the encoding SigV4 signs, parameters in the client's order (not sorted).

    sigv4.canonical_query decodes each name and value and re-encodes it strictly, but a verifier
    may canonicalise the query as it arrives, without re-encoding (botocore given a raw URL, as
    in moto's server): a client's ``!``, ``%7e`` or ``%2f`` would be signed one way and checked
    another. Sent in the signed encoding, each name and value still decodes to what the client
    sent. A bare name (``?flag``) stays bare: every verifier reads it as ``flag=``, and some
    frameworks (Rack) tell it apart from ``flag=``. Empty parts (``a&&b``, a trailing ``&``)
    carry no parameter and are dropped: SigV4 skips them, a raw verifier would sign ``=``.
    """
    if _SIGNED_QUERY.fullmatch(query):
        return query
    parts: list[str] = []
    for part in query.split("&"):
        if not part:
            continue
        name, equals, value = part.partition("=")
        # Split on the first "=" only: an "=" inside the value is sent as %3D.
        parts.append(_signed_component(name) + (equals and "=" + _signed_component(value)))
    return "&".join(parts)


def _signed_component(text: str) -> str:
    """A query name or value decoded and re-encoded with only ``A-Za-z0-9-._~`` bare.

    A raw ``+`` is a literal plus and goes out as ``%2B``: RFC 3986 and SigV4 percent-decode,
    they do not form-decode (where ``+`` is a space), and AWS canonicalises a raw ``+`` as
    ``%2B``, as sigv4.canonical_query does. A space is ``%20``; other characters, UTF-8.
    """
    if _UNRESERVED_RUN.fullmatch(text):
        return text
    if bad := _BAD_ESCAPE.search(text):
        raise _bad_escape(text[bad.start() : bad.start() + 3])
    return quote(unquote_to_bytes(text.encode("utf-8", "surrogatepass")), safe="")


def _bad_escape(near: str) -> BadRequestError:
    return BadRequestError(
        f"the request target has a '%' not followed by two hex digits near {near!r}; "
        "encode a literal percent sign as %25"
    )


def _normalize_escapes(text: str, safe: frozenset[str]) -> str:
    """Percent-encode what may not be on the wire, decode escaped unreserved characters and
    upper-case the other escapes (RFC 3986 §6.2.2.1-2)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            hex_digits = text[i + 1 : i + 3]
            if len(hex_digits) != 2 or not set(hex_digits) <= _HEX:
                raise _bad_escape(text[i : i + 3])
            decoded = chr(int(hex_digits, 16))
            if decoded in _UNRESERVED:
                out.append(decoded)
            else:
                out.append("%" + hex_digits.upper())
            i += 3
            continue
        if char in safe:
            out.append(char)
        else:
            # Characters that may not appear on the wire are sent percent-encoded (UTF-8).
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass")))
        i += 1
    return "".join(out)


def upstream_path(route: Route, path: str) -> str:
    """The path on the upstream: the upstream's base path, then the (prefix-stripped) path."""
    if route.strip_prefix:
        path = path[len(route.path_prefix.rstrip("/")) :] or "/"
        if not path.startswith("/"):
            path = "/" + path
    return route.upstream.base_path + path


def prefix_matches(prefix: str, path: str) -> bool:
    # "/api" takes "/api" and "/api/…" but not "/apis"; "/api/" takes only "/api/…".
    if prefix == "/" or path == prefix:
        return True
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path.startswith(prefix) and path[len(prefix)] == "/"


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern
