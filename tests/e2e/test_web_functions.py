"""Lambda Web Function endpoints end to end: regional (SigV4), global (SigV4a) and a generic
SigV4a route, each through the real proxy to the emulator, which verifies every signature."""

from __future__ import annotations

import hashlib
import io

import aiohttp
import pytest

from proxy.emulator import Emulator
from tests.stack import KEY, KEY_ID, proxy

REGIONAL = "abc123xyz.a1.lambda-web.eu-central-1.on.aws"
GLOBAL = "abc123xyz.lambda-web.global.on.aws"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
TARGET = "/orders/caf%C3%A9/a%20b?z=1&a=%7e!&a=2&empty="


def _routes(emulator: Emulator, **route: object) -> dict[str, object]:
    return {"name": "r", "path_prefix": "/", "upstream": emulator.cloudfront_url, **route}


async def _through(
    client: aiohttp.ClientSession, url: str, method: str, body: bytes
) -> tuple[int, dict[str, object]]:
    data = io.BytesIO(body) if body else None
    async with client.request(method, url + TARGET, data=data) as response:
        echoed = await response.json() if method != "HEAD" else {}
        return response.status, echoed


@pytest.mark.parametrize(
    ("host", "route", "algorithm", "region_set"),
    [
        (REGIONAL, {"web_function": f"https://{REGIONAL}"}, "AWS4-HMAC-SHA256", None),
        (GLOBAL, {"web_function": f"https://{GLOBAL}"}, "AWS4-ECDSA-P256-SHA256", "*"),
        (
            REGIONAL,
            {
                "sign": {
                    "host": REGIONAL,
                    "service": "lambda",
                    "algorithm": "sigv4a",
                    "region_set": ["eu-central-1", "eu-west-1"],
                }
            },
            "AWS4-ECDSA-P256-SHA256",
            "eu-central-1,eu-west-1",
        ),
    ],
    ids=["regional-sigv4", "global-sigv4a", "generic-sigv4a"],
)
async def test_every_method_and_body_arrives_verified(
    client: aiohttp.ClientSession,
    host: str,
    route: dict[str, object],
    algorithm: str,
    region_set: str | None,
) -> None:
    """Every method, with and without a body up to 2 MiB, verifies at the endpoint as signed."""
    async with (
        Emulator(keys={KEY_ID: KEY}, function_host=host) as emulator,
        proxy(_routes(emulator, **route)) as running,
    ):
        for method in METHODS:
            for body in (b"", b"x" * (2 * 1024 * 1024)):
                if method in ("GET", "HEAD") and body:
                    continue  # CloudFront refuses them; the proxy says so before sending
                status, echoed = await _through(client, running.url, method, body)
                assert status == 200, (method, len(body), echoed)
                if method == "HEAD":
                    continue
                assert echoed["verified"] is True
                assert echoed["algorithm"] == algorithm
                assert echoed["region_set"] == region_set
                assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()
                assert echoed["path"] == "/orders/caf%C3%A9/a%20b"


async def test_a_global_endpoint_refuses_sigv4(client: aiohttp.ClientSession) -> None:
    """Signed with SigV4 for one region, a global endpoint's request is refused, not served."""
    region = {
        "sign": {"host": GLOBAL, "service": "lambda", "algorithm": "sigv4", "region": "us-east-1"}
    }
    async with (
        Emulator(keys={KEY_ID: KEY}, function_host=GLOBAL) as emulator,
        proxy(_routes(emulator, **region)) as running,
        client.get(f"{running.url}/orders") as response,
    ):
        assert response.status == 403
        assert response.headers["x-amzn-ErrorType"].startswith("IncompleteSignatureException")
