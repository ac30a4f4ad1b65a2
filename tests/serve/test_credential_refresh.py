"""Credentials end to end: real sources, refresh under load, a slow STS, rejected keys, recovery."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from proxy.core.credentials import Credentials
from proxy.emulator import Emulator, Key
from tests.stack import proxy, route

ROLE_ORDERS = "arn:aws:iam::123456789012:role/orders-invoker"
ROLE_BILLING = "arn:aws:iam::123456789012:role/billing-invoker"
TWO_ROLES = Path(__file__).resolve().parents[2] / "examples" / "two-roles.yaml"
GUARD = 30.0  # an upper bound so a broken test fails instead of hanging; never a measurement


async def _echo(client: aiohttp.ClientSession, url: str) -> dict[str, object]:
    async with client.get(url) as response:
        assert response.status == 200, await response.text()
        echoed: dict[str, object] = await response.json()
        return echoed


@dataclass
class ContainerEndpoint:
    """A container-credentials endpoint (ECS/EKS style) that issues a new key on every call."""

    lifetime: float
    keys: dict[str, Key] = field(default_factory=dict)
    token: str = "container-authorization-token"
    calls: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self.token:
            return web.json_response({"message": "bad token"}, status=401)
        number = next(self.calls)
        expires = datetime.now(UTC) + timedelta(seconds=self.lifetime)
        key_id = f"ASIACONTAINER{number:07d}"
        key = Key(f"container-secret-{number}", f"container-token-{number}", expires_at=expires)
        self.keys[key_id] = key
        return web.json_response(
            {
                "AccessKeyId": key_id,
                "SecretAccessKey": key.secret_access_key,
                "Token": key.session_token,
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )


async def _container_endpoint(
    aiohttp_server: AiohttpServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    lifetime: float,
) -> ContainerEndpoint:
    endpoint = ContainerEndpoint(lifetime=lifetime)
    app = web.Application()
    app.router.add_get("/v2/credentials", endpoint.handle)
    server = await aiohttp_server(app)
    token_file = tmp_path / "container-token"
    token_file.write_text(endpoint.token)
    monkeypatch.setenv(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", str(server.make_url("/v2/credentials"))
    )
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
    return endpoint


async def test_container_credentials_rotate_under_load_without_a_failed_request(
    aiohttp_server: AiohttpServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    client: aiohttp.ClientSession,
) -> None:
    """Keys living 3 s are replaced in the background; no request fails or uses an expired key."""
    endpoint = await _container_endpoint(aiohttp_server, monkeypatch, tmp_path, lifetime=3)
    statuses: list[int] = []
    used: set[object] = set()
    async with (
        Emulator(keys=endpoint.keys) as emulator,
        proxy(route(emulator.cloudfront_url), overrides=None) as running,
    ):
        # Three lifetimes of steady traffic: every key is replaced at least twice meanwhile.
        stop_at = asyncio.get_running_loop().time() + 9
        while asyncio.get_running_loop().time() < stop_at:
            async with client.get(f"{running.url}/orders") as response:
                statuses.append(response.status)
                if response.status == 200:
                    used.add((await response.json())["access_key_id"])
            await asyncio.sleep(0.02)

    assert set(statuses) == {200}
    assert len(used) >= 3
    assert all(seen.verdict.ok for seen in emulator.requests)


async def test_web_identity_token_file_appearing_late_recovers_by_itself(
    local_sts: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    client: aiohttp.ClientSession,
) -> None:
    """A sidecar started before its token file exists answers 503, then 200 once it appears."""
    token_file = tmp_path / "eks-token"
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ORDERS)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    async with (
        Emulator(keys={}, sts_url=local_sts) as emulator,
        proxy(route(emulator.cloudfront_url), overrides=None) as running,
    ):
        async with client.get(f"{running.url}/orders") as response:
            refused = await response.json()
        token_file.write_text("eyJhbGciOiJSUzI1NiJ9.e30.signature")
        deadline = asyncio.get_running_loop().time() + GUARD
        while True:
            async with client.get(f"{running.url}/orders") as response:
                if response.status == 200:
                    echoed = await response.json()
                    break
            assert asyncio.get_running_loop().time() < deadline, "never recovered"
            await asyncio.sleep(0.2)

    assert refused["error"] == "credentials_unavailable"
    assert "'default'" in refused["message"]
    assert echoed["role_arn"] == ROLE_ORDERS


async def test_two_roles_example_signs_each_route_with_its_role(
    local_sts: str, monkeypatch: pytest.MonkeyPatch, client: aiohttp.ClientSession
) -> None:
    """examples/two-roles.yaml: each route signs with its own role's keys and session token."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIABASEKEY000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
    document = yaml.safe_load(TWO_ROLES.read_text())
    async with Emulator(keys={}, sts_url=local_sts) as emulator:
        for item in document["routes"]:
            item["upstream"] = emulator.cloudfront_url  # the README runs it on port 9000
        async with proxy(
            *document["routes"], credentials=document["credentials"], overrides=None
        ) as running:
            orders = await _echo(client, f"{running.url}/orders/7")
            billing = await _echo(client, f"{running.url}/billing/7")

    assert orders["role_arn"] == ROLE_ORDERS
    assert billing["role_arn"] == ROLE_BILLING
    assert orders["access_key_id"] != billing["access_key_id"]
    assert all(seen.verdict.ok for seen in emulator.requests)
    assert all("x-amz-security-token" in dict(seen.headers) for seen in emulator.requests)


@dataclass
class SlowSts:
    """A front for moto that holds every STS call until ``release`` is set."""

    moto: str
    received: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.set()
        await self.release.wait()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.moto, data=await request.read(), headers=headers) as answer,
        ):
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                content_type=answer.content_type,
            )


async def test_slow_sts_refresh_never_holds_requests(
    moto_sts_url: str,
    aiohttp_server: AiohttpServer,
    monkeypatch: pytest.MonkeyPatch,
    client: aiohttp.ClientSession,
) -> None:
    """While STS holds a refresh unanswered, requests keep flowing on the current keys."""
    slow = SlowSts(moto_sts_url)
    slow.release.set()  # the first fetch, at start, goes through
    app = web.Application()
    app.router.add_post("/", slow.handle)
    front = await aiohttp_server(app)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", str(front.make_url("/")))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIABASEKEY000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
    sets = {"orders": {"role_arn": ROLE_ORDERS}}
    async with Emulator(keys={}, sts_url=moto_sts_url) as emulator:
        routes = route(emulator.cloudfront_url, credentials="orders")
        async with proxy(routes, credentials=sets, overrides=None) as running:
            provider = running.state.current.providers["orders"]
            before = provider.current
            assert before is not None
            slow.received.clear()
            slow.release.clear()
            refresh = asyncio.create_task(provider.refresh())
            await asyncio.wait_for(slow.received.wait(), GUARD)
            # STS holds the refresh until released: every request below is served while it
            # waits, so none of them waits for it, whatever the machine's load.
            during = [await _echo(client, f"{running.url}/o/{i}") for i in range(20)]
            refresh_was_pending = not refresh.done()
            slow.release.set()
            await asyncio.wait_for(refresh, GUARD)
            after = await _echo(client, f"{running.url}/o/after")

    assert refresh_was_pending
    assert {echoed["access_key_id"] for echoed in during} == {before.access_key}
    assert after["access_key_id"] != before.access_key


def _rotating(
    keys: dict[str, Key], *, first_expired: bool
) -> tuple[Callable[[], Credentials], list[str]]:
    """A credential source issuing key 1, 2, ...; key 1 is already expired at AWS if asked."""
    issued: list[str] = []

    def fetch() -> Credentials:
        number = len(issued) + 1
        key_id = f"ASIAROTATING{number:08d}"
        expired_at_aws = first_expired and number == 1
        keys[key_id] = Key(
            f"rotating-secret-{number}",
            f"rotating-token-{number}",
            expires_at=datetime.now(UTC) - timedelta(minutes=1) if expired_at_aws else None,
        )
        issued.append(key_id)
        return Credentials(
            key_id,
            f"rotating-secret-{number}",
            f"rotating-token-{number}",
            expires_at=time.time() + 3600,
        )

    return fetch, issued


async def test_expired_token_at_aws_is_refreshed_and_retried_once(
    client: aiohttp.ClientSession,
) -> None:
    """Lambda's ExpiredTokenException leads to fresh credentials and one re-signed retry."""
    keys: dict[str, Key] = {}
    fetch, issued = _rotating(keys, first_expired=True)
    async with (
        Emulator(keys=keys) as emulator,
        proxy(route(emulator.cloudfront_url), overrides={"default": fetch}) as running,
        client.post(f"{running.url}/orders", data=b'{"n": 1}') as response,
    ):
        echoed = await response.json()

    assert response.status == 200
    assert echoed["access_key_id"] == issued[1]
    verdicts = [seen.verdict for seen in emulator.requests]
    assert [v.error_type for v in verdicts] == ["ExpiredTokenException", None]
    assert emulator.requests[0].body_sha256 == emulator.requests[1].body_sha256


async def test_many_rejected_requests_share_one_refresh(client: aiohttp.ClientSession) -> None:
    """Ten requests rejected at once cause a single refresh, and all succeed on the retry."""
    keys: dict[str, Key] = {}
    fetch, issued = _rotating(keys, first_expired=True)
    async with (
        Emulator(keys=keys) as emulator,
        proxy(route(emulator.cloudfront_url), overrides={"default": fetch}) as running,
    ):
        answers = await asyncio.gather(*(_echo(client, f"{running.url}/o/{i}") for i in range(10)))

    assert len(issued) == 2
    assert {echoed["access_key_id"] for echoed in answers} == {issued[1]}


async def test_unrecognized_key_is_retried_once_then_passed_through(
    client: aiohttp.ClientSession,
) -> None:
    """A key AWS does not know is refreshed and retried once; the second 403 reaches the client."""
    fetch_calls = 0

    def unknown() -> Credentials:
        nonlocal fetch_calls
        fetch_calls += 1
        return Credentials("AKIAUNKNOWNKEY000001", "nope")

    async with (
        Emulator(keys={}) as emulator,
        proxy(route(emulator.cloudfront_url), overrides={"default": unknown}) as running,
        client.get(f"{running.url}/x") as response,
    ):
        await response.read()

    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"].startswith("UnrecognizedClientException")
    assert len(emulator.requests) == 2
    assert fetch_calls == 2


async def test_no_secret_reaches_the_log(
    local_sts: str,
    monkeypatch: pytest.MonkeyPatch,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refreshes, retries and errors are logged without any secret key or session token."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIABASEKEY000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "base-secret-never-logged")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "base-token-never-logged")
    sets = {"orders": {"role_arn": ROLE_ORDERS}, "broken": {"profile": "missing"}}
    with caplog.at_level("DEBUG", logger="signing_proxy"):
        async with Emulator(keys={}, sts_url=local_sts) as emulator:
            routes = (
                route(
                    emulator.cloudfront_url, name="orders", path_prefix="/o", credentials="orders"
                ),
                route(
                    emulator.cloudfront_url, name="broken", path_prefix="/b", credentials="broken"
                ),
            )
            async with proxy(*routes, credentials=sets, overrides=None) as running:
                provider = running.state.current.providers["orders"]
                await _echo(client, f"{running.url}/o/1")
                await provider.refresh()
                await _echo(client, f"{running.url}/o/2")
                async with client.get(f"{running.url}/b/1") as refused:
                    assert refused.status == 503
                issued = provider.current
                assert issued is not None

    assert "credentials 'orders'" in caplog.text  # refreshes were logged, then:
    assert issued.token is not None
    for secret in (
        "base-secret-never-logged",
        "base-token-never-logged",
        issued.secret_key,
        issued.token,
    ):
        assert secret not in caplog.text
