"""A route's signing target: the host, region and service a signature is computed for, from
function_url:, from sign: (which overrides it), or implied by a function-URL or execute-api host.
"""

from __future__ import annotations

import re
from functools import partial

from proxy.config.strict_yaml import Section
from proxy.config.values import (
    REGION,
    parse_bare_host,
    parse_region,
    parse_service,
    parse_url,
    show,
)
from proxy.errors import ConfigError
from proxy.model import SigningTarget

FUNCTION_URL_EXAMPLE = "https://abc123xyz.lambda-url.eu-central-1.on.aws"
_SIGN_HOST_EXAMPLE = "abc123.execute-api.eu-central-1.amazonaws.com"

# Host names that imply the signing region and service.
_FUNCTION_HOST = re.compile(r"[a-z0-9]+\.lambda-url\.([^.]+)\.on\.aws")
_EXECUTE_API_HOST = re.compile(rf"[a-z0-9]+\.execute-api\.({REGION})\.amazonaws\.com(?:\.cn)?")


def parse_signing(route: Section) -> SigningTarget | None:
    """function_url's target, with the fields given in sign: overriding it."""
    base = route.get("function_url", _parse_function_url, None)
    if route.fields.get("sign") is None:
        return base
    return _parse_sign(route.fields["sign"], path=route.at("sign"), base=base)


def _parse_function_url(value: object, *, path: str) -> SigningTarget:
    url = parse_url(value, path=path, schemes=("https",), example=FUNCTION_URL_EXAMPLE)
    match = _FUNCTION_HOST.fullmatch(url.host)
    if match is None:
        shape = "https://<url-id>.lambda-url.<region>.on.aws"
        raise ConfigError(path, f"{show(value)} is not a function URL (expected {shape})")
    if url.port is not None or url.path not in ("", "/"):
        expected = f"expected only scheme and host, e.g. {FUNCTION_URL_EXAMPLE}"
        raise ConfigError(path, f"{show(value)} has a port or path ({expected})")
    return SigningTarget(url.host, parse_region(match[1], path=path), "lambda")


def _parse_sign(value: object, *, path: str, base: SigningTarget | None) -> SigningTarget:
    sign = Section(
        value, path=path, keys=("host", "region", "service"), expected="host, region and service"
    )
    defaults = base
    if "host" in sign:
        host = sign.get("host", partial(parse_bare_host, example=_SIGN_HOST_EXAMPLE), "")
        defaults = implied_target(host, path=sign.at("host")) or base
    elif base is not None:
        host = base.host
    else:
        expected = f"expected a bare host name such as {_SIGN_HOST_EXAMPLE}"
        raise ConfigError(sign.at("host"), f"required without function_url ({expected})")
    region = sign.get("region", parse_region, defaults.region if defaults else None)
    service = sign.get("service", parse_service, defaults.service if defaults else None)
    implied = f"required, as host {host!r} implies none"
    if region is None:
        raise ConfigError(
            sign.at("region"), f"{implied} (expected an AWS region, e.g. eu-central-1)"
        )
    if service is None:
        raise ConfigError(sign.at("service"), f"{implied} (expected e.g. execute-api or lambda)")
    return SigningTarget(host, region, service)


def implied_target(host: str, *, path: str | None = None) -> SigningTarget | None:
    """The target a function-URL or execute-api host name implies, region and service included;
    with ``path``, a function-URL host whose region is no AWS region is a ConfigError there."""
    if match := _FUNCTION_HOST.fullmatch(host):
        if re.fullmatch(REGION, match[1]):
            return SigningTarget(host, match[1], "lambda")
        if path is not None:
            parse_region(match[1], path=path)  # raises, naming the region
    if match := _EXECUTE_API_HOST.fullmatch(host):
        return SigningTarget(host, match[1], "execute-api")
    return None
