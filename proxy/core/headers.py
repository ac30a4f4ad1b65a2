"""Which headers cross the proxy: what is dropped from requests and replies, what is added."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, MultiMapping

from proxy.model import HeaderRules, Mode

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

# Marks a request the inspector replays (the token lets it past the route's inbound check);
# it concerns this proxy only.
REPLAY_HEADER = "X-Signing-Proxy-Replay"

# The proxy sets these itself: the body is re-sent with its own Content-Length, the upstream
# gets its own Host, and 100-continue was already answered on the inbound side.
_ALWAYS_DROPPED = HOP_BY_HOP | {"host", "content-length", "expect", REPLAY_HEADER.lower()}

# The proxy's own X-Request-Id replaces any the upstream sent.
_DROPPED_FROM_REPLIES = HOP_BY_HOP | {"x-request-id"}

# A client's own signature or date must not reach a signed upstream: they would contradict ours
# (and with OAC CloudFront signs, so a client Authorization only confuses it).
_DROPPED_WHEN_SIGNING = frozenset({"authorization", "date"})


def request_headers(
    inbound: MultiMapping[str], *, mode: Mode, rules: HeaderRules
) -> CIMultiDict[str]:
    """The client's headers as they go upstream, before any signing headers are added."""
    dropped = _ALWAYS_DROPPED
    if "Connection" in inbound or rules.remove:
        dropped = dropped | _connection_named(inbound.getall("Connection", ())) | rules.remove
    signing = mode != "none"
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in inbound.items():
        lower = name.lower()
        if lower in dropped or lower.startswith("proxy-"):
            continue
        if signing and (lower in _DROPPED_WHEN_SIGNING or lower.startswith("x-amz-")):
            continue
        out.add(name, value)
    for name, value in rules.add:
        out[name] = value
    return out


def reply_headers(upstream: MultiMapping[str], *, request_id: str) -> list[tuple[str, str]]:
    """The upstream's reply headers as the client gets them, in order: hop-by-hop ones
    removed, and X-Request-Id saying which request of the client's this answers."""
    dropped = _DROPPED_FROM_REPLIES
    if "Connection" in upstream:
        dropped = dropped | _connection_named(upstream.getall("Connection", ()))
    kept = [
        (name, value)
        for name, value in upstream.items()
        if (lower := name.lower()) not in dropped and not lower.startswith("proxy-")
    ]
    kept.append(("X-Request-Id", request_id))
    return kept


def _connection_named(values: Iterable[str]) -> frozenset[str]:
    """Headers listed in Connection are hop-by-hop for this message too."""
    return frozenset(t for v in values for token in v.split(",") if (t := token.strip().lower()))
