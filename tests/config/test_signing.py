"""A route's signing target: function_url, web_function, sign: with SigV4 or SigV4a."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.config.load import parse_config, quick_config
from proxy.errors import ConfigError
from proxy.model import SigningTarget

REGIONAL = "abc123xyz.a1.lambda-web.eu-central-1.on.aws"
GLOBAL = "abc123xyz.lambda-web.global.on.aws"


def _target(**route: Any) -> SigningTarget | None:
    route = {"name": "r", "upstream": "https://d111.cloudfront.net", **route}
    return parse_config({"routes": [route]}).routes[0].signing


def _refused(**route: Any) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        _target(**route)
    return raised.value


def test_a_regional_web_function_endpoint_is_signed_with_sigv4_for_its_region() -> None:
    """<id>.<shard>.lambda-web.<region>.on.aws: SigV4, service lambda, the host's region."""
    target = _target(web_function=f"https://{REGIONAL}")
    assert target == SigningTarget(REGIONAL, "eu-central-1", "lambda", "sigv4")


def test_a_global_web_function_endpoint_is_signed_with_sigv4a_for_every_region() -> None:
    """<id>.lambda-web.global.on.aws: SigV4a with the region set *."""
    assert _target(web_function=f"https://{GLOBAL}") == SigningTarget(
        GLOBAL, "*", "lambda", "sigv4a"
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("https://abc.lambda-url.eu-central-1.on.aws", "is not a Lambda Web Function endpoint"),
        ("https://example.com", "is not a Lambda Web Function endpoint"),
        ("https://abc.a1.lambda-web.eu-central.on.aws", "'eu-central' is not an AWS region"),
        (f"https://{REGIONAL}/path", "has a port or path"),
        (f"http://{REGIONAL}", "https"),
    ],
)
def test_a_web_function_that_is_no_endpoint_is_refused_naming_the_key(
    value: str, fragment: str
) -> None:
    """A function URL, another host, a bad region, a path or http are errors at load."""
    error = _refused(web_function=value)
    assert error.path == "routes[0].web_function"
    assert fragment in error.message


def test_a_web_function_is_not_a_function_url() -> None:
    """function_url: refuses a Web Function endpoint, which takes its own key."""
    error = _refused(function_url=f"https://{REGIONAL}")
    assert error.path == "routes[0].function_url"
    assert "is not a function URL" in error.message


def test_function_url_and_web_function_together_are_refused() -> None:
    """A route signs for one endpoint."""
    error = _refused(
        function_url="https://abc.lambda-url.eu-central-1.on.aws",
        web_function=f"https://{REGIONAL}",
    )
    assert "not both" in error.message


def test_sign_sigv4a_takes_a_region_set_of_star_or_regions() -> None:
    """A generic SigV4a route signs for * or for a list of regions, joined by commas."""
    star = _target(
        sign={
            "host": "api.example.com",
            "service": "execute-api",
            "algorithm": "sigv4a",
            "region_set": "*",
        }
    )
    listed = _target(
        sign={
            "host": "api.example.com",
            "service": "s3",
            "algorithm": "sigv4a",
            "region_set": ["us-east-1", "eu-west-1", "us-east-1"],
        }
    )
    assert star == SigningTarget("api.example.com", "*", "execute-api", "sigv4a")
    assert listed == SigningTarget("api.example.com", "us-east-1,eu-west-1", "s3", "sigv4a")


@pytest.mark.parametrize(
    ("sign", "path", "fragment"),
    [
        (
            {
                "host": "a.example.com",
                "service": "s3",
                "algorithm": "sigv4b",
                "region": "us-east-1",
            },
            "algorithm",
            "sigv4 or sigv4a",
        ),
        (
            {"host": "a.example.com", "service": "s3", "algorithm": "sigv4a"},
            "region_set",
            "required",
        ),
        (
            {
                "host": "a.example.com",
                "service": "s3",
                "algorithm": "sigv4a",
                "region": "us-east-1",
            },
            "region",
            "give region_set",
        ),
        (
            {"host": "a.example.com", "service": "s3", "algorithm": "sigv4a", "region_set": []},
            "region_set",
            "not a region set",
        ),
        (
            {
                "host": "a.example.com",
                "service": "s3",
                "algorithm": "sigv4a",
                "region_set": ["eu-west"],
            },
            "region_set[0]",
            "not an AWS region",
        ),
        (
            {"host": "a.example.com", "service": "s3", "region": "us-east-1", "region_set": "*"},
            "region_set",
            "only algorithm: sigv4a",
        ),
    ],
)
def test_sign_mistakes_name_their_key(sign: dict[str, Any], path: str, fragment: str) -> None:
    """Each mistake in sign: names the key and what was expected."""
    error = _refused(sign=sign)
    assert error.path == f"routes[0].sign.{path}"
    assert fragment in error.message


def test_sign_host_may_carry_a_port_other_than_443() -> None:
    """localhost:4566 is signed as HOST:PORT, as clients send it in Host."""
    target = _target(sign={"host": "localhost:4566", "region": "us-east-1", "service": "sts"})
    assert target == SigningTarget("localhost:4566", "us-east-1", "sts")


def test_sign_over_a_global_web_function_keeps_sigv4a_and_takes_a_region_set() -> None:
    """sign: narrows the region set a global endpoint is signed for."""
    target = _target(web_function=f"https://{GLOBAL}", sign={"region_set": ["us-east-1"]})
    assert target == SigningTarget(GLOBAL, "us-east-1", "lambda", "sigv4a")


def test_the_quick_form_takes_a_web_function() -> None:
    """serve --web-function URL is one SigV4a route for a global endpoint."""
    config = quick_config(
        upstream="https://d111.cloudfront.net",
        function_url=None,
        web_function=f"https://{GLOBAL}",
        mode="iam",
        listen=None,
        role_arn=None,
    )
    assert config.routes[0].signing == SigningTarget(GLOBAL, "*", "lambda", "sigv4a")


def test_the_quick_form_names_the_web_function_flag() -> None:
    """A bad --web-function is reported under its flag."""
    with pytest.raises(ConfigError) as raised:
        quick_config(
            upstream="https://d111.cloudfront.net",
            function_url=None,
            web_function="https://example.com",
            mode="iam",
            listen=None,
            role_arn=None,
        )
    assert raised.value.path == "--web-function"


def test_a_regional_endpoint_with_one_label_before_lambda_web_is_one_too() -> None:
    """AWS's pages also show <id>.lambda-web.<region>.on.aws, without a shard label."""
    target = _target(web_function="https://abcd1234.lambda-web.us-west-2.on.aws")
    assert target == SigningTarget("abcd1234.lambda-web.us-west-2.on.aws", "us-west-2", "lambda")
