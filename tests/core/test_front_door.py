"""proxy.core.front_door, pure: which Host names a listener serves, which browser requests a route
refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.config.load import parse_config
from proxy.core.front_door import (
    HostPolicy,
    admin_hosts,
    check_browser,
    host_name,
    is_loopback,
    listener_hosts,
    route_hosts,
)
from proxy.errors import CrossSiteError
from proxy.model import Address, Config
from tests.stack import route


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("LocalHost:8080", "localhost"),
        ("localhost.", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8080", "[::1]"),
        ("[::1", "[::1"),
        ("[::1]evil.example", "[::1]evil.example"),
        ("[::1]:x", "[::1]:x"),
        ("localhost:evil", "localhost:evil"),
        ("::1", "::1"),
        (" api.example.com:443 ", "api.example.com"),
        (None, ""),
    ],
)
def test_host_name_drops_the_port_and_keeps_brackets(header: str | None, name: str) -> None:
    """The name a Host header names: lower-case, no port or trailing dot, IPv6 in brackets."""
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("name", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("[::1]", True),
        ("[::ffff:127.0.0.1]", True),
        ("[::1", False),
        ("[::1]evil.example", False),
        ("localhost:evil", False),
        ("localhost.evil.example", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - a name, not a bind
    ],
)
def test_is_loopback(name: str, loopback: bool) -> None:
    """Loopback is localhost, 127.0.0.0/8 and ::1 (also IPv4-mapped); nothing else."""
    assert is_loopback(name) is loopback


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("localhost:1", True),
        ("proxy.internal", True),
        ("PROXY.INTERNAL:8080", True),
        ("a.svc.cluster.local", True),
        ("svc.cluster.local", False),  # the suffix alone is not under itself
        ("evilsvc.cluster.local", False),
        ("[::2]:80", True),  # named as ::2, compared in one spelling
        ("[0:0::2]", True),
        ("10.0.0.1", False),
        ("rebind.attacker.example", False),
        (None, True),
    ],
)
def test_host_policy_names_and_suffixes(header: str | None, allowed: bool) -> None:
    """Exact names, *.suffix patterns and IPv6 spellings are matched; loopback always."""
    policy = HostPolicy(["proxy.internal", "*.svc.cluster.local", "::2"])
    assert policy.allows(header) is allowed


@given(st.text(max_size=40))
def test_host_policy_decides_the_same_with_or_without_its_cache(header: str) -> None:
    """A verdict comes out the same the first time and from the cache."""
    policy = HostPolicy(["proxy.internal"])
    assert policy.allows(header) == policy.allows(header)


def test_host_policy_cache_is_bounded() -> None:
    """Endless new Host values never grow the memory beyond its bound."""
    policy = HostPolicy()
    for number in range(10_000):
        assert not policy.allows(f"name-{number}.example")
    assert len(policy._cache) <= 256


def test_refusal_names_the_host_and_the_keys() -> None:
    """The 421 quotes the Host (bounded) and says where it could be allowed."""
    refusal = HostPolicy().refuse("x" * 500)
    assert refusal.status == 421
    assert refusal.code == "host_not_allowed"
    assert "'" + "x" * 100 + "'" in refusal.message
    assert "x" * 101 not in refusal.message
    assert "allowed_hosts:" in refusal.message
    assert "inbound:" in refusal.message


def _config() -> Config:
    return parse_config({"routes": [route("https://d111111abcdef8.cloudfront.net")]})


@pytest.mark.parametrize(
    ("listen", "header", "allowed"),
    [
        (Address("127.0.0.1", 8080), "10.1.2.3:8080", False),
        (Address("0.0.0.0", 8080), "10.1.2.3:8080", True),  # noqa: S104 - no bind
        (Address("0.0.0.0", 8080), "0.0.0.0:8080", True),  # noqa: S104 - an IP literal
        (Address("0.0.0.0", 8080), "pod.internal", False),  # noqa: S104 - no bind
        (Address("10.1.2.3", 8080), "10.1.2.3", True),
        (Address("proxy.lan", 8080), "PROXY.LAN:8080", True),
        (Address("::1", 8080), "[::1]:8080", True),
    ],
)
def test_listener_hosts_serve_the_listen_address_and_ip_literals_beyond_loopback(
    listen: Address, header: str, allowed: bool
) -> None:
    """The listen address is served; beyond loopback so is any IP address (rebinding needs a
    name), but never a name that is not allowed."""
    config = _config()
    assert listener_hosts(config, listen).allows(header) is allowed
    assert admin_hosts(config, listen).allows(header) is allowed


def test_route_hosts_are_apart_from_the_listeners_and_the_admins() -> None:
    """A route's host: (a tunnel's) is served on the routes naming it only: it is neither in
    what the listener serves on every route nor in what the admin serves."""
    config = parse_config(
        {
            "routes": [
                route(
                    "https://d111111abcdef8.cloudfront.net",
                    host="hooks.tunnel.test",
                    inbound={"allow_ips": ["127.0.0.1"]},
                )
            ],
            "allowed_hosts": ["proxy.internal"],
        }
    )
    loopback = Address("127.0.0.1", 0)
    assert not listener_hosts(config, loopback).allows("hooks.tunnel.test")
    assert route_hosts(config).allows("hooks.tunnel.test")
    assert not route_hosts(config).allows("localhost")  # loopback is the listener's business
    assert not admin_hosts(config, loopback).allows("hooks.tunnel.test")
    assert admin_hosts(config, loopback).allows("proxy.internal")


APP = parse_config(
    {
        "routes": [
            route(
                "https://d111111abcdef8.cloudfront.net",
                name="app",
                allowed_origins=["http://localhost:3000"],
            )
        ]
    }
).routes[0]


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),
        ({"Sec-Fetch-Site": "none"}, False),
        ({"Sec-Fetch-Site": "same-origin"}, False),
        ({"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, False),
        ({"Origin": "HTTP://LOCALHOST:3000", "Sec-Fetch-Site": "same-site"}, False),
        ({"Origin": "http://localhost:3000", "Sec-Fetch-Site": "cross-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site"}, True),
        ({"Origin": "http://localhost:3001"}, True),
        ({"Origin": "https://127.0.0.1:8080"}, True),  # another scheme: another origin
        ({"Origin": "null"}, True),
        ({"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "cross-site"}, True),
    ],
)
def test_check_browser(headers: dict[str, str], refused: bool) -> None:
    """Not a browser, a navigation, the proxy's own origin and allowed_origins pass; other
    sites, other origins and opaque origins are refused."""
    sent = CIMultiDict(headers)
    if refused:
        with pytest.raises(CrossSiteError) as caught:
            check_browser(sent, APP, host="127.0.0.1:8080", scheme="http")
        assert caught.value.status == 403
        assert caught.value.route == "app"
        assert "allowed_origins: of route 'app'" in caught.value.message
    else:
        check_browser(sent, APP, host="127.0.0.1:8080", scheme="http")
