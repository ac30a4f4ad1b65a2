"""The inbound side of the config: inbound:, rate_limit:, max_concurrent:, and public listening."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from proxy.config.load import parse_config
from proxy.errors import ConfigError
from proxy.model import Inbound, RateLimit, Secret

CLOUDFRONT = "https://d111111abcdef8.cloudfront.net"
FUNCTION_URL = "https://abc123xyz.lambda-url.eu-central-1.on.aws"


def _route(**fields: Any) -> dict[str, Any]:
    return {"name": "hooks", "upstream": CLOUDFRONT, "function_url": FUNCTION_URL, **fields}


def _inbound(monkeypatch: pytest.MonkeyPatch, **inbound: Any) -> Inbound:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    rules = parse_config({"routes": [_route(inbound=inbound)]}).routes[0].inbound
    assert rules is not None
    return rules


def _error(document: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert "\n" not in str(caught.value)
    return caught.value


def test_github_route_reads_its_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's shape: type github, secret_env; the secret is read, never shown."""
    rules = _inbound(monkeypatch, type="github", secret_env="HOOK_SECRET")
    assert rules.type == "github"
    assert rules.secret == Secret(b"s3cret", "env HOOK_SECRET")
    assert "s3cret" not in repr(rules)
    assert "env HOOK_SECRET" in repr(rules)


def test_secret_file_loses_its_trailing_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret file written by echo or a secret manager ends in a newline that is not secret."""
    secret_file = tmp_path / "token"
    secret_file.write_bytes(b"tunnel-token\r\n")
    rules = _inbound(monkeypatch, type="bearer", secret_file=str(secret_file))
    assert rules.secret is not None
    assert rules.secret.value == b"tunnel-token"


def test_every_inbound_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """hmac with header, encoding and prefix; addresses and trusted proxies as networks."""
    rules = _inbound(
        monkeypatch,
        type="hmac",
        secret_env="HOOK_SECRET",
        header="X-Signature",
        encoding="base64",
        prefix="sha256=",
        allow_ips=["203.0.113.7", "10.0.0.0/8", "2001:db8::/32"],
        trusted_proxies=["127.0.0.1"],
    )
    assert (rules.header, rules.encoding, rules.prefix) == ("X-Signature", "base64", "sha256=")
    assert rules.allow_ips == (
        ipaddress.ip_network("203.0.113.7/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert rules.trusted_proxies == (ipaddress.ip_network("127.0.0.1/32"),)


def test_addresses_alone_are_an_inbound_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """An allowlist without a type needs no secret."""
    rules = _inbound(monkeypatch, allow_ips=["192.168.0.0/16"])
    assert (rules.type, rules.secret) == (None, None)


def test_rate_limit_and_max_concurrent() -> None:
    """rate is N/s, N/m or N/h; burst defaults to one second's worth, at least 1."""
    document = {
        "routes": [
            _route(name="a", rate_limit={"rate": "10/s"}, max_concurrent=32),
            _route(name="b", rate_limit={"rate": "600/m", "burst": 50}),
            _route(name="c", rate_limit={"rate": "5/h"}),
        ]
    }
    a, b, c = parse_config(document).routes
    assert (a.rate_limit, a.max_concurrent) == (RateLimit(10.0, 10), 32)
    assert b.rate_limit == RateLimit(10.0, 50)
    assert c.rate_limit == RateLimit(5 / 3600, 1)


@pytest.mark.parametrize(
    ("inbound", "path", "says"),
    [
        pytest.param(
            {"secret_env": "HOOK_SECRET"}, "routes[0].inbound", "names no check", id="no-type"
        ),
        pytest.param(
            {"type": "gitlab", "secret_env": "HOOK_SECRET"},
            "routes[0].inbound.type",
            "'gitlab'",
            id="type",
        ),
        pytest.param(
            {"type": "github"},
            "routes[0].inbound.secret_env",
            "required for type github",
            id="no-secret",
        ),
        pytest.param(
            {"type": "github", "secret_env": "UNSET_VARIABLE"},
            "routes[0].inbound.secret_env",
            "UNSET_VARIABLE is not set",
            id="unset-env",
        ),
        pytest.param(
            {"type": "github", "secret_env": "not a name"},
            "routes[0].inbound.secret_env",
            "'not a name'",
            id="env-name",
        ),
        pytest.param(
            {"type": "github", "secret_file": "/nonexistent/secret"},
            "routes[0].inbound.secret_file",
            "cannot read /nonexistent/secret",
            id="no-file",
        ),
        pytest.param(
            {"type": "github", "secret_env": "HOOK_SECRET", "secret_file": "/x"},
            "routes[0].inbound.secret_file",
            "one source",
            id="two-sources",
        ),
        pytest.param(
            {"type": "github", "secret_env": "HOOK_SECRET", "header": "X-Sig"},
            "routes[0].inbound.header",
            "type hmac or bearer",
            id="foreign-key",
        ),
        pytest.param(
            {"type": "hmac", "secret_env": "HOOK_SECRET"},
            "routes[0].inbound.header",
            "required for type hmac",
            id="hmac-header",
        ),
        pytest.param(
            {"type": "hmac", "secret_env": "HOOK_SECRET", "header": "X-Sig", "encoding": "b32"},
            "routes[0].inbound.encoding",
            "'b32'",
            id="encoding",
        ),
        pytest.param(
            {"type": "basic", "secret_env": "HOOK_SECRET"},
            "routes[0].inbound.username",
            "required for type basic",
            id="basic-user",
        ),
        pytest.param(
            {"type": "basic", "secret_env": "HOOK_SECRET", "username": "a:b"},
            "routes[0].inbound.username",
            "no ':'",
            id="user-colon",
        ),
        pytest.param(
            {"type": "stripe", "secret_env": "HOOK_SECRET", "tolerance": "soon"},
            "routes[0].inbound.tolerance",
            "'soon'",
            id="tolerance",
        ),
        pytest.param(
            {"allow_ips": ["10.0.0.1/8"]},
            "routes[0].inbound.allow_ips[0]",
            "host bits set",
            id="host-bits",
        ),
        pytest.param(
            {"allow_ips": ["example.com"]},
            "routes[0].inbound.allow_ips[0]",
            "'example.com'",
            id="not-ip",
        ),
        pytest.param(
            {"allow_ips": []}, "routes[0].inbound.allow_ips", "not a list", id="empty-list"
        ),
        pytest.param(
            {"allow_ips": ["10.0.0.0/8"], "secret_env": "HOOK_SECRET"},
            "routes[0].inbound.secret_env",
            "expected type",
            id="secret-no-type",
        ),
    ],
)
def test_inbound_mistakes(
    monkeypatch: pytest.MonkeyPatch, inbound: dict[str, Any], path: str, says: str
) -> None:
    """Each inbound mistake names its key path and what was wrong, on one line."""
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    error = _error({"routes": [_route(inbound=inbound)]})
    assert error.path == path
    assert says in error.message
    assert "s3cret" not in str(error)


@pytest.mark.parametrize(
    ("fields", "path", "says"),
    [
        pytest.param(
            {"rate_limit": {"rate": "ten"}}, "routes[0].rate_limit.rate", "'ten'", id="rate"
        ),
        pytest.param(
            {"rate_limit": {"rate": "0/s"}}, "routes[0].rate_limit.rate", "'0/s'", id="zero"
        ),
        pytest.param(
            {"rate_limit": {"burst": 5}}, "routes[0].rate_limit.rate", "required", id="no-rate"
        ),
        pytest.param(
            {"rate_limit": {"rate": "1/s", "burst": 0}},
            "routes[0].rate_limit.burst",
            "0",
            id="burst",
        ),
        pytest.param({"max_concurrent": True}, "routes[0].max_concurrent", "true", id="bool"),
    ],
)
def test_limit_mistakes(fields: dict[str, Any], path: str, says: str) -> None:
    """Each rate-limit or concurrency mistake names its key path."""
    error = _error({"routes": [_route(**fields)]})
    assert error.path == path
    assert says in error.message


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.0.2.10:8080", "[::]:8080", "myhost:8080"])
def test_public_listen_needs_inbound_on_every_signing_route(listen: str) -> None:
    """Beyond loopback, a signing route without inbound: stops the start, naming the route."""
    document = {
        "listen": listen,
        "routes": [
            _route(name="open", path_prefix="/open"),
            _route(name="public", mode="none"),
        ],
    }
    error = _error(document)
    assert error.path == "listen"
    assert "route(s) open" in error.message
    assert "allow_unauthenticated" in error.message


@pytest.mark.parametrize(
    "document",
    [
        {"listen": "127.0.0.1:8080", "routes": [_route()]},
        {"listen": "localhost:8080", "routes": [_route()]},
        {"listen": "[::1]:8080", "routes": [_route()]},
        {"listen": "0.0.0.0:8080", "routes": [_route(mode="none")]},
        {"listen": "0.0.0.0:8080", "allow_unauthenticated": True, "routes": [_route()]},
        {"listen": "0.0.0.0:8080", "routes": [_route(inbound={"allow_ips": ["10.0.0.0/8"]})]},
    ],
    ids=["ipv4-loopback", "localhost", "ipv6-loopback", "unsigned", "asked-for", "protected"],
)
def test_allowed_listen_addresses(document: dict[str, Any]) -> None:
    """Loopback, unsigned routes, protected routes, or an explicit opt-out start fine."""
    assert parse_config(document).routes


def test_client_timeouts() -> None:
    """client_timeouts bounds the wait for request headers and for body chunks."""
    config = parse_config(
        {"client_timeouts": {"headers": "5s", "body": "30s"}, "routes": [_route()]}
    )
    assert (config.client_timeouts.headers, config.client_timeouts.body) == (5.0, 30.0)
