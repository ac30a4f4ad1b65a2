"""Which request and reply headers cross the proxy."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from proxy.core.headers import reply_headers, request_headers
from proxy.model import HeaderRules, Mode

CLIENT = [
    ("Host", "localhost:8080"),
    ("Authorization", "Bearer client-token"),
    ("X-Amz-Date", "20000101T000000Z"),
    ("X-Amz-Security-Token", "stale"),
    ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ("Date", "Mon, 01 Jan 2000 00:00:00 GMT"),
    ("Connection", "keep-alive, X-Private"),
    ("X-Private", "hop"),
    ("Keep-Alive", "timeout=5"),
    ("TE", "trailers"),
    ("Trailer", "X-Checksum"),
    ("Transfer-Encoding", "chunked"),
    ("Upgrade", "websocket"),
    ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
    ("Proxy-Connection", "keep-alive"),
    ("Content-Length", "12"),
    ("Expect", "100-continue"),
    ("Content-Type", "application/json"),
    ("Accept-Encoding", "gzip"),
    ("User-Agent", "webhook/1.0"),
    ("X-GitHub-Event", "push"),
    ("Cookie", "a=1"),
    ("X-Signing-Proxy-Replay", "token 7"),
]
END_TO_END = ["Content-Type", "Accept-Encoding", "User-Agent", "X-GitHub-Event", "Cookie"]


@pytest.mark.parametrize("mode", ["iam", "oac"])
def test_signing_modes_keep_only_end_to_end_headers(mode: Mode) -> None:
    """iam and oac drop Authorization, X-Amz-*, Date, Host, hop-by-hop and Proxy-* headers."""
    out = request_headers(CIMultiDict(CLIENT), mode=mode, rules=HeaderRules())
    assert [name for name, _ in out.items()] == END_TO_END


def test_none_mode_keeps_client_authorization() -> None:
    """Plain forwarding keeps the client's own Authorization and X-Amz-* headers, not hops."""
    out = request_headers(CIMultiDict(CLIENT), mode="none", rules=HeaderRules())
    assert out["Authorization"] == "Bearer client-token"
    assert out["X-Amz-Date"] == "20000101T000000Z"
    assert "Host" not in out
    assert "X-Private" not in out
    assert "X-Signing-Proxy-Replay" not in out  # the inspector's mark concerns this proxy only


def test_rules_add_and_remove() -> None:
    """A route's header rules remove client headers and set its own, replacing any sent."""
    rules = HeaderRules(
        add=(("X-Tenant", "acme"), ("User-Agent", "proxy")), remove=frozenset({"cookie"})
    )
    out = request_headers(CIMultiDict(CLIENT), mode="iam", rules=rules)
    assert out.getall("User-Agent") == ["proxy"]
    assert out["X-Tenant"] == "acme"
    assert "Cookie" not in out


def test_reply_headers_keep_every_set_cookie() -> None:
    """Replies lose hop-by-hop headers but keep repeated Set-Cookie and Content-Length."""
    upstream = [
        ("Content-Type", "text/plain"),
        ("Content-Length", "5"),
        ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; HttpOnly"),
        ("Connection", "close, X-Hop"),
        ("X-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Keep-Alive", "timeout=5"),
        ("x-amzn-RequestId", "abc"),
    ]
    out = CIMultiDict(reply_headers(CIMultiDict(upstream), request_id="req-1"))
    assert out.getall("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert [name for name, _ in out.items()] == [
        "Content-Type",
        "Content-Length",
        "Set-Cookie",
        "Set-Cookie",
        "x-amzn-RequestId",
        "X-Request-Id",
    ]


def test_reply_headers_replace_the_upstreams_request_id() -> None:
    """The client gets the proxy's X-Request-Id, not one the upstream sent."""
    upstream = CIMultiDict([("X-Request-Id", "theirs"), ("Content-Length", "0")])
    out = CIMultiDict(reply_headers(upstream, request_id="ours"))
    assert out.getall("X-Request-Id") == ["ours"]
