"""Which headers cross the proxy: what is dropped from requests and replies, what is added."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict

from proxy.settings import HeaderRules, Mode

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
    }
)

# The proxy sets these itself: the body is re-sent with its own Content-Length, the upstream
# gets its own Host, and 100-continue was already answered on the inbound side.
_ALWAYS_DROPPED = HOP_BY_HOP | {"host", "content-length", "expect"}

# A client's own signature or date must not reach a signed upstream: they would contradict ours
# (and with OAC CloudFront signs, so a client Authorization only confuses it).
_DROPPED_WHEN_SIGNING = frozenset({"authorization", "date"})


def request_headers(
    inbound: Iterable[tuple[str, str]], *, mode: Mode, rules: HeaderRules
) -> CIMultiDict[str]:
    """The client's headers as they go upstream, before any signing headers are added."""
    items = list(inbound)
    dropped = _ALWAYS_DROPPED | _connection_named(items) | rules.remove
    signing = mode != "none"
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in items:
        lower = name.lower()
        if lower in dropped or lower.startswith("proxy-"):
            continue
        if signing and (lower in _DROPPED_WHEN_SIGNING or lower.startswith("x-amz-")):
            continue
        out.add(name, value)
    for name, value in rules.add:
        out[name] = value
    return out


def reply_headers(upstream: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """The upstream's reply headers as the client gets them: hop-by-hop ones removed."""
    items = list(upstream)
    dropped = HOP_BY_HOP | _connection_named(items)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in items:
        lower = name.lower()
        if lower not in dropped and not lower.startswith("proxy-"):
            out.add(name, value)
    return out


def _connection_named(items: list[tuple[str, str]]) -> frozenset[str]:
    """Headers listed in Connection are hop-by-hop for this message too."""
    named = [
        token.strip().lower()
        for name, value in items
        if name.lower() == "connection"
        for token in value.split(",")
    ]
    return frozenset(token for token in named if token)
