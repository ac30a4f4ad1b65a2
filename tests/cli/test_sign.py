"""`signing-proxy sign`: a signed request printed, that the function URL accepts as it is."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from proxy.emulator import Emulator
from tests.processes import child_env, module_command, run
from tests.stack import FUNCTION_URL, KEY, KEY_ID

KEYS = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": KEY.secret_access_key}


def _config(tmp_path: Path, upstream: str) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(
        "routes:\n"
        f"  - {{name: orders, path_prefix: /api, strip_prefix: true, upstream: '{upstream}',\n"
        f"     function_url: '{FUNCTION_URL}'}}\n"
        f"  - {{name: public, path_prefix: /, upstream: '{upstream}', mode: none}}\n"
    )
    return path


def _sign(*args: str) -> tuple[int, str, str]:
    result = run(module_command("sign", *args), env=child_env(**KEYS))
    return result.returncode, result.stdout, result.stderr


async def test_printed_request_verifies_at_the_function(
    emulator: Emulator, tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The request `sign --route --json` prints is accepted by the function URL as printed."""
    config = _config(tmp_path, emulator.cloudfront_url)
    code, out, err = _sign(
        "--config", str(config), "--route", "orders", "--json",
        "-d", '{"item": 1}', "-H", "Content-Type: application/json", "/api/orders?id=7&x=a b",
    )  # fmt: skip
    assert code == 0, err
    printed = json.loads(out)
    async with client.request(
        printed["method"], printed["url"], headers=printed["headers"], data=b'{"item": 1}'
    ) as response:
        echoed = await response.json()
    assert response.status == 200, echoed
    assert echoed["verified"] is True
    assert echoed["target"] == "/orders?id=7&x=a%20b"  # prefix stripped, query made wire-safe
    assert printed["signed_for"]["host"] == emulator.function_host


def test_curl_output_is_stable_with_a_fixed_date(tmp_path: Path) -> None:
    """With --date the same request signs to the same curl command, byte for byte."""
    body = tmp_path / "body.json"
    body.write_text('{"b": 2}')
    args = ("--date", "20261121T101500Z", "--data", f"@{body}", f"{FUNCTION_URL}/x?y=1")
    first, second = _sign(*args), _sign(*args)
    assert first == second
    code, out, _ = first
    assert code == 0
    assert out.startswith(f"curl -sS -X POST '{FUNCTION_URL}/x?y=1'")
    assert f"--data-binary @{body}" in out
    assert "x-amz-date: 20261121T101500Z" in out
    assert f"Credential={KEY_ID}/20261121/eu-central-1/lambda/aws4_request" in out


def test_show_canonical_prints_what_was_signed() -> None:
    """--show-canonical adds the canonical request and the string to sign as comments."""
    code, out, _ = _sign("--date", "20261121T101500Z", "--show-canonical", f"{FUNCTION_URL}/a%20b")
    assert code == 0
    assert "# canonical request:\n#   GET\n#   /a%2520b\n" in out
    assert "# string to sign:\n#   AWS4-HMAC-SHA256\n#   20261121T101500Z\n" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--date", "yesterday", f"{FUNCTION_URL}/"), "--date"),
        (("https://example.com/x",), "--region"),
        (("not a url",), "URL"),
        (("--route", "orders", "/x"), "--config"),
    ],
    ids=["date", "no-region", "not-a-url", "route-without-config"],
)
def test_mistakes_exit_2_with_one_line(args: tuple[str, ...], says: str) -> None:
    """A bad date, an unknown signing target or a route without a config: exit 2, one line."""
    code, out, err = _sign(*args)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert says in err


@pytest.mark.parametrize(
    ("route", "says"),
    [("nope", "is not a route"), ("public", "mode none")],
    ids=["unknown", "unsigned"],
)
def test_route_that_cannot_sign(tmp_path: Path, route: str, says: str) -> None:
    """A route that does not exist or does not sign is named in the error."""
    config = _config(tmp_path, "http://127.0.0.1:9")
    code, _, err = _sign("--config", str(config), "--route", route, "/x")
    assert code == 2
    assert says in err


async def test_a_printed_sigv4a_request_verifies_at_a_global_web_function(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """`sign` signs a .lambda-web.global.on.aws URL with SigV4a, which the endpoint accepts."""
    host = "abc123xyz.lambda-web.global.on.aws"
    async with Emulator(keys={KEY_ID: KEY}, function_host=host) as emulator:
        code, out, err = _sign("--json", "-X", "PUT", "-d", "x=1", f"https://{host}/items/7?a=b")
        assert code == 0, err
        printed = json.loads(out)
        url = printed["url"].replace(f"https://{host}", emulator.cloudfront_url)
        async with client.request(
            printed["method"], url, headers=printed["headers"], data=b"x=1"
        ) as response:
            echoed = await response.json()
    assert response.status == 200, echoed
    assert echoed["verified"] is True
    assert echoed["algorithm"] == "AWS4-ECDSA-P256-SHA256"
    assert echoed["region_set"] == "*"
    assert printed["headers"]["Authorization"].startswith("AWS4-ECDSA-P256-SHA256 Credential=")


async def test_the_routes_header_rules_are_in_the_printed_request(
    emulator: Emulator, tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """`sign --route` adds and removes the route's headers as serve does; it still verifies."""
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "routes:\n"
        f"  - name: orders\n    path_prefix: /\n    upstream: '{emulator.cloudfront_url}'\n"
        f"    function_url: '{FUNCTION_URL}'\n"
        "    headers: {add: {X-Tenant: blue}, remove: [X-Debug]}\n"
    )
    code, out, err = _sign(
        "--config", str(config), "--route", "orders", "--json",
        "-H", "X-Debug: 1", "-H", "Authorization: Bearer the-callers-own", "/orders",
    )  # fmt: skip
    assert code == 0, err
    printed = json.loads(out)
    names = {name.lower(): value for name, value in printed["headers"].items()}
    assert names["x-tenant"] == "blue"
    assert "x-debug" not in names
    assert names["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert "the-callers-own" not in out
    async with client.get(printed["url"], headers=printed["headers"]) as response:
        echoed = await response.json()
    assert response.status == 200, echoed
    assert echoed["verified"] is True
