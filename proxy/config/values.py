"""Parsers for single config values: each returns a typed value or raises one-line ConfigError.

Every message has the shape ``<bad value> is not <what> (expected <example>)`` so that, prefixed
with the key path by ``ConfigError``, the user reads where, what and how to fix it on one line.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import string
from collections.abc import Collection
from contextvars import ContextVar
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from proxy.errors import ConfigError
from proxy.model import METHODS

# The folder of the config file being read: relative file paths in it are relative to it (so
# a config works whatever directory the proxy is started from). None for the CLI's flags.
CONFIG_FOLDER: ContextVar[Path | None] = ContextVar("config_folder", default=None)

_MAX_SHOWN = 60  # characters of a bad string echoed back; enough to recognise it

DURATION_EXAMPLE = "e.g. 500ms, 2s, 15m, 1h or a number of seconds"
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

SIZE_EXAMPLE = "e.g. 6MiB, 10MB, 512KiB, 100B or a number of bytes"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?", re.IGNORECASE)
_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    **{f"{p}b": 1000**i for i, p in enumerate("kmgt", 1)},
    **{f"{p}ib": 1024**i for i, p in enumerate("kmgt", 1)},
}

# Labels of letters, digits, '-' and '_' (Docker service names use '_'), at most 63 each.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_HOST_PORT = re.compile(r"\[(?P<ip6>[^\]]*)\]:(?P<port6>\d+)|(?P<host>[^:\[\]]+):(?P<port>\d+)")

# Commercial, China, GovCloud, ISO and sovereign partitions: us-east-1, us-gov-west-1,
# cn-north-1, us-isob-east-1, eusc-de-east-1.
REGION = r"[a-z]{2,4}(?:-[a-z]+){1,3}-\d{1,2}"
REGION_EXAMPLE = "e.g. eu-central-1"
_REGION = re.compile(REGION)
_SERVICE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_EXPECTED = "letters, digits, '_', '.' and '-', starting with a letter or digit, up to 64"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]")  # RFC 3986 pchar, "/" and escapes
_ESCAPE = re.compile(r"%.{0,2}")
_USER_INFO = re.compile(r"(://)[^/?#]*@")


def show(value: object) -> str:
    """A bad value as a message shows it: on one line, in YAML's words for null and booleans."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # repr() escapes CR/LF, which keeps every message on one line.
        return repr(value) if len(value) <= _MAX_SHOWN else repr(value[:_MAX_SHOWN]) + "…"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"  # YAML also makes dates and timestamps


def expect_bool(value: object, *, path: str) -> bool:
    """``value`` when it is a YAML boolean."""
    if not isinstance(value, bool):
        raise ConfigError(path, f"{show(value)} is not a boolean (expected true or false)")
    return value


def parse_name(value: object, *, path: str, what: str) -> str:
    """A route or credential-set name: safe to print in logs and JSON without quoting."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        if isinstance(value, int | float) and not isinstance(value, bool):
            # YAML reads `name: 123` as a number; the name itself would be fine in quotes.
            expected = f'expected text: write it in quotes, "{value}"'
            raise ConfigError(path, f"{show(value)} is a number, not a {what} name ({expected})")
        raise ConfigError(
            path, f"{show(value)} is not a valid {what} name (expected {NAME_EXPECTED})"
        )
    return value


def parse_duration(value: object, *, path: str, expected: str = DURATION_EXAMPLE) -> float:
    """Seconds from ``500ms``, ``2s``, ``15m``, ``1h`` or a plain number of seconds; must be > 0."""
    seconds = _seconds(value)
    if seconds is None or not math.isfinite(seconds):
        raise ConfigError(path, f"{show(value)} is not a duration (expected {expected})")
    if seconds <= 0:
        raise ConfigError(path, f"{show(value)} is not more than zero (expected {expected})")
    return seconds


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):  # YAML reads yes/no/on/off as booleans, never as numbers
        return None
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    return float(match[1]) * _DURATION_UNITS[match[2] or "s"]


def parse_size(value: object, *, path: str) -> int:
    """Bytes from an integer or ``100B``, ``512KiB``, ``10MB``, ``6MiB``, ``1GiB``; must be >= 0."""
    size = _bytes(value)
    if size is None:
        raise ConfigError(path, f"{show(value)} is not a size (expected {SIZE_EXAMPLE})")
    if size < 0:
        raise ConfigError(path, f"{show(value)} is negative (expected a size >= 0, {SIZE_EXAMPLE})")
    if size.denominator != 1:
        raise ConfigError(
            path, f"{show(value)} is not a whole number of bytes (expected {SIZE_EXAMPLE})"
        )
    return int(size)


def _bytes(value: object) -> Fraction | None:
    # Fractions keep 1.5MiB exact, where float arithmetic could be off by one byte.
    if isinstance(value, int) and not isinstance(value, bool):
        return Fraction(value)
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    return Fraction(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()]


def is_host_name(text: str) -> bool:
    """Whether lower-case ``text`` is a DNS name or an IPv4 address (no port, no brackets)."""
    return len(text) <= 253 and _HOST_NAME.fullmatch(text) is not None


def parse_host_port(value: object, *, path: str, example: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` with a port 0-65535, the host lower-cased."""
    expected = f"expected HOST:PORT, e.g. {example} or [::1]:8080"
    match = _HOST_PORT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(path, f"{show(value)} is not an address ({expected})")
    port = int(match["port6"] or match["port"])
    if port > 65535:
        raise ConfigError(path, f"{show(value)} has port {port} (expected a port 0-65535)")
    if match["ip6"] is not None:
        try:
            return str(ipaddress.IPv6Address(match["ip6"])), port
        except ValueError:
            raise ConfigError(
                path, f"{show(value)} has no valid IPv6 address ({expected})"
            ) from None
    host = match["host"].lower()
    if not is_host_name(host):
        raise ConfigError(path, f"{show(value)} has no valid host name ({expected})")
    return host, port


def parse_region(value: object, *, path: str) -> str:
    """An AWS region name such as ``eu-central-1`` or ``us-gov-west-1``."""
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise ConfigError(path, f"{show(value)} is not an AWS region (expected {REGION_EXAMPLE})")
    return value


def parse_service(value: object, *, path: str) -> str:
    """A SigV4 service name, as it appears in the credential scope (``lambda``, ``execute-api``)."""
    if not isinstance(value, str) or not _SERVICE.fullmatch(value):
        raise ConfigError(
            path,
            f"{show(value)} is not a SigV4 service name "
            "(expected lower-case letters, digits and '-', e.g. lambda or execute-api)",
        )
    return value


def path_problem(text: str) -> str | None:
    """Why ``text`` is not a path in the form the router compares, or None when it is.

    proxy.core.routing normalises every request path (RFC 3986 §6.2.2: escapes of unreserved
    characters decoded, other escapes upper-cased, dot segments resolved, ``//`` collapsed)
    before matching, so a prefix in any other form could never match.
    """
    if not text.startswith("/"):
        return "does not start with '/'"
    if "?" in text or "#" in text:
        return "contains '?' or '#'"
    if any(c.isspace() for c in text) or _CONTROL.search(text):
        return "contains whitespace or control characters"
    if not text.isascii():
        return "contains non-ASCII characters (percent-encode them as UTF-8, e.g. %C3%A9)"
    if bad := _PATH_CHARS.sub("", text):
        return f"contains {bad[0]!r} (percent-encode it, e.g. %{ord(bad[0]):02X})"
    if problem := _escape_problem(text):
        return problem
    if "//" in text:
        return "contains an empty segment '//'"
    if any(segment in (".", "..") for segment in text.split("/")):
        return "contains a '.' or '..' segment"
    return None


def _escape_problem(text: str) -> str | None:
    for match in _ESCAPE.finditer(text):
        escape = match[0]
        if len(escape) < 3 or not all(c in string.hexdigits for c in escape[1:]):
            return f"has {escape!r}, which is not %XX (write a literal % as %25)"
        char = chr(int(escape[1:], 16))
        if char in _UNRESERVED:
            return f"has {escape!r}, an escape of {char!r} (write {char!r} itself)"
        if escape != escape.upper():
            return f"has {escape!r} (write escapes in upper case: {escape.upper()!r})"
    return None


class UrlParts(NamedTuple):
    """The parts of an absolute URL the config cares about."""

    scheme: str  # lower-case
    host: str  # lower-case; IPv6 without brackets
    port: int | None
    path: str  # as written, possibly ""


def parse_url(value: object, *, path: str, schemes: tuple[str, ...], example: str) -> UrlParts:
    """An absolute URL with one of ``schemes``, a host, and no user info, query or fragment."""
    kind = "http(s)" if len(schemes) > 1 else schemes[0]
    expected = f"(expected e.g. {example})"
    # User info usually holds a password: never echo it.
    shown = show(_USER_INFO.sub(r"\1…@", value) if isinstance(value, str) else value)
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(path, f"{shown} is not an {kind} URL {expected}")
    # urlsplit silently drops tabs and newlines, so look before it does.
    if any(c.isspace() for c in value) or _CONTROL.search(value):
        raise ConfigError(path, f"{shown} contains whitespace or control characters {expected}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ConfigError(path, f"{shown} has an invalid port or host {expected}") from None
    if parts.scheme.lower() not in schemes:
        raise ConfigError(path, f"{shown} is not an {kind} URL {expected}")
    if "@" in parts.netloc:
        raise ConfigError(path, f"{shown} has user info (user:password@) {expected}")
    if "?" in value or "#" in value:
        raise ConfigError(path, f"{shown} has a query or fragment {expected}")
    host = (parts.hostname or "").lower()
    if not (is_host_name(host) or _is_ipv6(host)):
        raise ConfigError(path, f"{shown} has no valid host name {expected}")
    if port == 0:
        raise ConfigError(path, f"{shown} has port 0 (expected a port 1-65535)")
    return UrlParts(parts.scheme.lower(), host, port, parts.path)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_path_prefix(value: object, *, path: str) -> str:
    """A route's path prefix, kept as written; it must already be in the router's normal form."""
    problem = path_problem(value) if isinstance(value, str) else "is not a string"
    if problem:
        raise ConfigError(path, f"{show(value)} {problem} (expected a path such as / or /api/)")
    return str(value)


def parse_inbound_host(value: object, *, path: str) -> str:
    """A Host to match, lower-cased: ``api.example.com`` or ``*.example.com``."""
    host = value.lower() if isinstance(value, str) else ""
    if not is_host_name(host.removeprefix("*.")):
        raise ConfigError(
            path,
            f"{show(value)} is not a host name "
            "(expected e.g. api.example.com or *.example.com, without a port)",
        )
    if host.startswith("*.") and "." not in host[2:]:
        # *.com would take any name an attacker registers, and point at 127.0.0.1: rebinding.
        raise ConfigError(
            path,
            f"{show(value)} takes every name under a top-level domain, a rebinding page's too "
            "(expected a domain of your own under the *, e.g. *.example.com)",
        )
    return host


def parse_bare_host(value: object, *, path: str, example: str) -> str:
    """A host name without scheme, port or path, lower-cased."""
    host = value.lower() if isinstance(value, str) else ""
    if not is_host_name(host):
        raise ConfigError(
            path,
            f"{show(value)} is not a bare host name (expected e.g. {example}, "
            "without scheme, port or path)",
        )
    return host


_REFUSED_METHODS = {
    "CONNECT": "CONNECT opens a tunnel, which cannot be signed",
    "TRACE": "TRACE would echo the signed request back to the client",
}
# Other methods (WebDAV's PROPFIND, QUERY, ...) are forwarded only by a route that names them.
_EXTENSION_METHOD = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")


def parse_method(value: object, *, path: str) -> str:
    """An HTTP method the proxy forwards, upper-cased."""
    method = value.upper() if isinstance(value, str) else ""
    expected = f"expected one of: {', '.join(METHODS)}, or another method's name"
    if method in _REFUSED_METHODS:
        raise ConfigError(
            path, f"{show(value)} is refused: {_REFUSED_METHODS[method]} ({expected})"
        )
    if method not in METHODS and not _EXTENSION_METHOD.fullmatch(method):
        hint = did_you_mean(method, METHODS)
        raise ConfigError(path, f"{show(value)} is not an HTTP method ({expected}){hint}")
    return method


# Headers the proxy sets, signs or strips on every request (DESIGN §3.6-8); a route that
# added or removed one would break the signature or HTTP framing, or (X-Request-Id, which
# ties the proxy's log to the function's) be overwritten without a word.
PROXY_HEADERS = frozenset(
    {
        *("host", "authorization", "content-length", "transfer-encoding", "connection"),
        *("keep-alive", "te", "trailer", "upgrade", "expect", "x-request-id"),
        *("x-amz-date", "x-amz-content-sha256", "x-amz-security-token"),
    }
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 field name
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab


def parse_header_name(value: object, *, path: str) -> str:
    """A header name a route may add or remove, as written."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        chars = "letters, digits and !#$%&'*+-.^_`|~"
        raise ConfigError(path, f"{show(value)} is not a header name (expected {chars})")
    if value.lower() in PROXY_HEADERS or value.lower().startswith("proxy-"):
        raise ConfigError(
            path, f"{show(value)} is a header the proxy sets itself (expected any other header)"
        )
    return value


def parse_header_value(value: object, *, path: str) -> str:
    """A header value on one line; numbers must be quoted so that YAML keeps them as written."""
    if not isinstance(value, str):
        raise ConfigError(
            path, f"{show(value)} is not a string (expected a header value; quote it, e.g. '1')"
        )
    if _HEADER_VALUE_BAD.search(value):
        raise ConfigError(
            path,
            f"{show(value)} contains a control character such as CR, LF or NUL "
            "(expected a one-line header value)",
        )
    return value


def did_you_mean(word: object, choices: Collection[str]) -> str:
    """``; did you mean 'x'?`` for the choice closest to a misspelt ``word``, else ""."""
    close = difflib.get_close_matches(word, choices, n=1) if isinstance(word, str) else []
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_file_path(value: object, *, path: str, example: str = "/etc/ssl/x.pem") -> str:
    """A file path from the config: a relative one is taken from the config file's folder."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, f"{show(value)} is not a file path (expected e.g. {example})")
    folder = CONFIG_FOLDER.get()
    return str(folder / value) if folder is not None and not Path(value).is_absolute() else value
