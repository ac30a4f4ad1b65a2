"""The warnings a valid config earns at start, on reload and in check."""

from __future__ import annotations

from proxy.config.lint import known_regions, warnings
from proxy.model import Address, Config, Route, SigningTarget, Upstream

LOOPBACK = Address("127.0.0.1", 8080)


def _route(**fields: object) -> Route:
    fields.setdefault("upstream", Upstream("https", "d111.cloudfront.net", 443))
    fields.setdefault(
        "signing", SigningTarget("abc.lambda-url.eu-central-1.on.aws", "eu-central-1", "lambda")
    )
    return Route(name="fn", **fields)  # type: ignore[arg-type]


def test_a_clean_config_earns_no_warning() -> None:
    """An https upstream, a known region, a loopback listener: nothing to say."""
    assert warnings(Config(routes=(_route(),)), LOOPBACK) == []


def test_a_misspelt_region_is_warned_with_the_nearest_known_one() -> None:
    """eu-centrl-1 has the shape of a region but AWS has none by that name."""
    target = SigningTarget("abc.lambda-url.eu-centrl-1.on.aws", "eu-centrl-1", "lambda")
    (found,) = warnings(Config(routes=(_route(signing=target),)), LOOPBACK)
    assert "eu-centrl-1" in found
    assert "did you mean eu-central-1?" in found


def test_the_known_regions_span_every_partition() -> None:
    """China, GovCloud and the commercial partition are all known."""
    assert {"eu-central-1", "cn-north-1", "us-gov-west-1"} <= known_regions()


def test_a_cleartext_upstream_beyond_loopback_is_warned() -> None:
    """http:// to another host carries signatures in the clear; to loopback it does not."""
    remote = _route(upstream=Upstream("http", "example.com", 80))
    local = _route(upstream=Upstream("http", "127.0.0.1", 9000))
    assert any("plain HTTP" in text for text in warnings(Config(routes=(remote,)), LOOPBACK))
    assert warnings(Config(routes=(local,)), LOOPBACK) == []


def test_a_named_host_without_inbound_is_warned() -> None:
    """A tunnel's host with no inbound: check signs for anyone."""
    (found,) = warnings(Config(routes=(_route(host="abc.ngrok.app"),)), LOOPBACK)
    assert "abc.ngrok.app" in found
    assert "without inbound:" in found
