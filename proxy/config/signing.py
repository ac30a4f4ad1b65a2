"""A route's signing target: the host, region (or SigV4a region set), service and algorithm a
signature is computed for, from function_url: or web_function:, from sign: (which overrides
them), or implied by a function-URL, Web Function or execute-api host.

Lambda Web Function endpoints (GA 2026-10-01): a regional endpoint
``<id>.<shard>.lambda-web.<region>.on.aws`` takes SigV4 for its region; a multi-region one,
``<id>.lambda-web.global.on.aws``, takes SigV4a. AWS's pages do not say outright that the
service is ``lambda`` and that a global endpoint is signed for the region set ``*``: that is
inferred (the README says so), and ``sign:`` overrides either.
"""

from __future__ import annotations

import re

from proxy.config.strict_yaml import Section
from proxy.config.values import (
    REGION,
    is_host_name,
    parse_host_port,
    parse_region,
    parse_service,
    parse_url,
    show,
)
from proxy.core.endpoints import (
    is_global_web_function_host,
    is_web_function_host,
    web_function_region,
)
from proxy.errors import ConfigError
from proxy.model import SigningTarget

FUNCTION_URL_EXAMPLE = "https://abc123xyz.lambda-url.eu-central-1.on.aws"
WEB_FUNCTION_EXAMPLE = "https://abc123xyz.a1.lambda-web.eu-central-1.on.aws"
_SIGN_HOST_EXAMPLE = "abc123.execute-api.eu-central-1.amazonaws.com"
_ALGORITHMS = ("sigv4", "sigv4a")
ANY_REGION = "*"  # the region set a global Web Function endpoint is signed for (inferred)

# Host names that imply the signing region and service.
_FUNCTION_HOST = re.compile(r"[a-z0-9]+\.lambda-url\.([^.]+)\.on\.aws")
_EXECUTE_API_HOST = re.compile(rf"[a-z0-9]+\.execute-api\.({REGION})\.amazonaws\.com(?:\.cn)?")


def parse_signing(route: Section) -> SigningTarget | None:
    """function_url's or web_function's target, with the fields given in sign: overriding it."""
    if "function_url" in route and "web_function" in route:
        raise ConfigError(
            route.at("web_function"), "give function_url or web_function, not both (one endpoint)"
        )
    base = route.get("function_url", _parse_function_url, None)
    base = route.get("web_function", _parse_web_function, base)
    if route.fields.get("sign") is None:
        return base
    return _parse_sign(route.fields["sign"], path=route.at("sign"), base=base)


def _parse_function_url(value: object, *, path: str) -> SigningTarget:
    return _parse_endpoint(
        value,
        path=path,
        example=FUNCTION_URL_EXAMPLE,
        what="a function URL",
        shape="https://<url-id>.lambda-url.<region>.on.aws",
    )


def _parse_web_function(value: object, *, path: str) -> SigningTarget:
    return _parse_endpoint(
        value,
        path=path,
        example=WEB_FUNCTION_EXAMPLE,
        what="a Lambda Web Function endpoint",
        shape="https://<id>.<shard>.lambda-web.<region>.on.aws, or "
        "https://<id>.lambda-web.global.on.aws",
    )


def _parse_endpoint(
    value: object, *, path: str, example: str, what: str, shape: str
) -> SigningTarget:
    url = parse_url(value, path=path, schemes=("https",), example=example)
    kind = "web function" if "lambda-web" in example else "function url"
    target = implied_target(url.host, path=path)
    if target is None or _kind(url.host) != kind:
        raise ConfigError(path, f"{show(value)} is not {what} (expected {shape})")
    if url.port is not None or url.path not in ("", "/"):
        expected = f"expected only scheme and host, e.g. {example}"
        raise ConfigError(path, f"{show(value)} has a port or path ({expected})")
    return target


def _kind(host: str) -> str:
    if _FUNCTION_HOST.fullmatch(host):
        return "function url"
    if is_web_function_host(host):
        return "web function"
    return "other"


def _parse_sign(value: object, *, path: str, base: SigningTarget | None) -> SigningTarget:
    sign = Section(
        value,
        path=path,
        keys=("host", "region", "service", "algorithm", "region_set"),
        expected="host, region and service, or algorithm: sigv4a with region_set",
    )
    defaults = base
    if "host" in sign:
        host = sign.get("host", _parse_sign_host, "")
        defaults = implied_target(host, path=sign.at("host")) or base
    elif base is not None:
        host = base.host
    else:
        expected = f"expected a bare host name such as {_SIGN_HOST_EXAMPLE}"
        raise ConfigError(sign.at("host"), f"required without function_url ({expected})")
    algorithm = sign.get("algorithm", _parse_algorithm, defaults.algorithm if defaults else "sigv4")
    implied = f"required, as host {host!r} implies none"
    if algorithm == "sigv4a":
        if "region" in sign:
            raise ConfigError(
                sign.at("region"),
                "sigv4a signs for a region set: give region_set (e.g. '*' or [us-east-1, "
                "eu-west-1]) instead",
            )
        region_set = sign.get(
            "region_set", _parse_region_set, defaults.region if defaults else None
        )
        if region_set is None:
            raise ConfigError(
                sign.at("region_set"), f"{implied} (expected '*' or a list of regions)"
            )
        return SigningTarget(host, region_set, _service(sign, defaults, implied), "sigv4a")
    if "region_set" in sign:
        raise ConfigError(
            sign.at("region_set"), "only algorithm: sigv4a signs for a region set (sigv4: region)"
        )
    region = sign.get("region", parse_region, _single_region(defaults))
    if region is None:
        raise ConfigError(
            sign.at("region"), f"{implied} (expected an AWS region, e.g. eu-central-1)"
        )
    return SigningTarget(host, region, _service(sign, defaults, implied))


def _service(sign: Section, defaults: SigningTarget | None, implied: str) -> str:
    service = sign.get("service", parse_service, defaults.service if defaults else None)
    if service is None:
        raise ConfigError(sign.at("service"), f"{implied} (expected e.g. execute-api or lambda)")
    return service


def _single_region(target: SigningTarget | None) -> str | None:
    """A default region for SigV4: the one implied, never a SigV4a region set."""
    return target.region if target is not None and target.algorithm == "sigv4" else None


def _parse_sign_host(value: object, *, path: str) -> str:
    """A host name, or HOST:PORT for an endpoint on another port (``localhost:4566``); the
    default HTTPS port is left out, as clients leave it out of Host."""
    if isinstance(value, str) and ":" in value and "/" not in value and "[" not in value:
        host, port = parse_host_port(value, path=path, example=f"{_SIGN_HOST_EXAMPLE}:8443")
        if port in (0, 443):
            raise ConfigError(
                path,
                f"{show(value)} has port {port} (expected the host alone for the default "
                f"port, e.g. {_SIGN_HOST_EXAMPLE}, as clients send it in Host)",
            )
        return f"{host}:{port}"
    host = value.lower() if isinstance(value, str) else ""
    if not is_host_name(host):
        raise ConfigError(
            path,
            f"{show(value)} is not a bare host name (expected e.g. {_SIGN_HOST_EXAMPLE}, "
            "or HOST:PORT, without scheme or path)",
        )
    return host


def _parse_algorithm(value: object, *, path: str) -> str:
    if value not in _ALGORITHMS:
        raise ConfigError(path, f"{show(value)} is not an algorithm (expected sigv4 or sigv4a)")
    return str(value)


def _parse_region_set(value: object, *, path: str) -> str:
    """``*``, or a non-empty list of regions: the X-Amz-Region-Set value, joined by commas."""
    if value == ANY_REGION:
        return ANY_REGION
    if not isinstance(value, list) or not value:
        raise ConfigError(
            path, f"{show(value)} is not a region set (expected '*' or a list of regions)"
        )
    regions = [parse_region(item, path=f"{path}[{i}]") for i, item in enumerate(value)]
    return ",".join(dict.fromkeys(regions))


def implied_target(host: str, *, path: str | None = None) -> SigningTarget | None:
    """The target a function-URL, Web Function or execute-api host name implies, region and
    service included; with ``path``, such a host whose region is no AWS region is a
    ConfigError there."""
    if is_global_web_function_host(host):
        return SigningTarget(host, ANY_REGION, "lambda", "sigv4a")
    match = _FUNCTION_HOST.fullmatch(host)
    region = match[1] if match else web_function_region(host)
    if region is not None:
        if re.fullmatch(REGION, region):
            return SigningTarget(host, region, "lambda")
        if path is not None:
            parse_region(region, path=path)  # raises, naming the region
    if match := _EXECUTE_API_HOST.fullmatch(host):
        return SigningTarget(host, match[1], "execute-api")
    return None
