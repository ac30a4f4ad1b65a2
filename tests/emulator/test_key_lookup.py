"""The emulated function URL's keys: read live, expiring, and issued by a real local STS (moto)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import aiohttp
import botocore.session
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from proxy.emulator import DEFAULT_FUNCTION_HOST, Emulator, Key
from proxy.emulator.key_lookup import MODEL_DATA_PATH, keys_from_model_data

FUNCTION_HOST = DEFAULT_FUNCTION_HOST
REGION = "eu-central-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/webhook-signer"
OTHER_ROLE_ARN = "arn:aws:iam::210987654321:role/chained-reader"
KEY_ID = "AKIAEMULATORSTS00001"
KEY = Key("emulator-sts-test-secret-0123456789abcde")
TIMEOUT = aiohttp.ClientTimeout(total=20)
EXPIRED_MESSAGE = "The security token included in the request is expired"
INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid."
# Far longer than the lookup timeout used against it; cancelled when the front stops.
STALL = 30.0


@dataclass(frozen=True)
class Issued:
    """Temporary credentials as STS returned them, and the role they belong to."""

    key_id: str
    secret: str
    token: str
    role_arn: str


class StsClient(Protocol):
    """The part of botocore's STS client these tests call."""

    def assume_role(self, **kwargs: Any) -> dict[str, Any]: ...

    def assume_role_with_web_identity(self, **kwargs: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...


def sts_client(*, caller: Issued | None = None) -> StsClient:
    """botocore's STS client for REGION; the endpoint comes from AWS_ENDPOINT_URL_STS.

    Without ``caller`` it uses the keys in the environment.
    """
    client = botocore.session.get_session().create_client(
        "sts",
        region_name=REGION,
        aws_access_key_id=caller.key_id if caller else None,
        aws_secret_access_key=caller.secret if caller else None,
        aws_session_token=caller.token if caller else None,
    )
    return cast("StsClient", client)


@dataclass(frozen=True)
class Reply:
    """What came back through the emulated CloudFront."""

    status: int
    error_type: str | None
    body: dict[str, Any]


def signed(*, key_id: str, secret: str, token: str | None = None) -> dict[str, str]:
    """Headers (Host left out) for GET / signed with botocore for the function host, dated now."""
    request = AWSRequest(
        method="GET",
        url=f"https://{FUNCTION_HOST}/",
        headers={"host": FUNCTION_HOST, "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()},
    )
    SigV4Auth(Credentials(key_id, secret, token), "lambda", REGION).add_auth(request)
    return {name: str(value) for name, value in request.headers.items() if name.lower() != "host"}


def signed_with(issued: Issued) -> dict[str, str]:
    """Headers for GET / signed with ``issued``, session token included."""
    return signed(key_id=issued.key_id, secret=issued.secret, token=issued.token)


async def send(client: aiohttp.ClientSession, emulator: Emulator, headers: dict[str, str]) -> Reply:
    """GET / through the emulated CloudFront."""
    async with client.get(URL(emulator.cloudfront_url + "/", encoded=True), headers=headers) as r:
        return Reply(r.status, r.headers.get("x-amzn-ErrorType"), await r.json())


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session whose every request is bounded by TIMEOUT."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


@pytest.fixture
def sts(local_sts: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StsClient]:
    """botocore's STS client, reaching moto through AWS_ENDPOINT_URL_STS with throwaway keys."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMOTOCALLER000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto-caller-throwaway-secret-0123456789")
    client = sts_client()
    yield client
    client.close()


def _issued(answer: dict[str, Any], role_arn: str) -> Issued:
    credentials = answer["Credentials"]
    return Issued(
        credentials["AccessKeyId"],
        credentials["SecretAccessKey"],
        credentials["SessionToken"],
        role_arn,
    )


def assume_role(sts: StsClient) -> Issued:
    """AssumeRole with an external id."""
    answer = sts.assume_role(
        RoleArn=ROLE_ARN, RoleSessionName="emulator-test", ExternalId="ext-4711"
    )
    return _issued(answer, ROLE_ARN)


def assume_role_with_web_identity(sts: StsClient) -> Issued:
    """AssumeRoleWithWebIdentity, as from a token file."""
    answer = sts.assume_role_with_web_identity(
        RoleArn=ROLE_ARN, RoleSessionName="emulator-web", WebIdentityToken="a-web-identity-token"
    )
    return _issued(answer, ROLE_ARN)


def chained_roles(sts: StsClient) -> Issued:
    """AssumeRole with the keys of a first assumed role: role chaining."""
    first = assume_role(sts)
    chained_client = sts_client(caller=first)
    try:
        answer = chained_client.assume_role(RoleArn=OTHER_ROLE_ARN, RoleSessionName="chained")
    finally:
        chained_client.close()
    return _issued(answer, OTHER_ROLE_ARN)


@pytest.fixture
def role_keys(sts: StsClient) -> Issued:
    """Fresh keys from moto's AssumeRole."""
    return assume_role(sts)


@pytest.fixture
async def sts_emulator(local_sts: str) -> AsyncIterator[Emulator]:
    """An emulator that knows no keys itself and asks moto about every access key id."""
    async with Emulator(keys={}, sts_url=local_sts) as running:
        yield running


class StsFront:
    """A front of our own before moto: counts model-data requests, or stalls them."""

    def __init__(self, *, moto_url: str, session: aiohttp.ClientSession) -> None:
        self.moto_url = moto_url
        self.session = session
        self.hits = 0
        self.stall = False
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Relay GET /moto-api/data.json to moto; every other path is not found."""
        if request.path != MODEL_DATA_PATH:
            raise web.HTTPNotFound()
        self.hits += 1
        if self.stall:
            await asyncio.sleep(STALL)
        async with self.session.get(self.moto_url + MODEL_DATA_PATH) as upstream:
            return web.Response(body=await upstream.read(), content_type="application/json")


@pytest.fixture
async def front(local_sts: str) -> AsyncIterator[StsFront]:
    """An StsFront on 127.0.0.1, a free port, before the session's moto server."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        sts_front = StsFront(moto_url=local_sts, session=session)
        app = web.Application()
        app.router.add_get(r"/{tail:.*}", sts_front.handle)
        runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            sts_front.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            yield sts_front
        finally:
            await runner.cleanup()


@pytest.mark.parametrize(
    "issue", [assume_role, assume_role_with_web_identity, chained_roles], ids=lambda f: f.__name__
)
async def test_moto_issued_keys_verify_and_name_their_role(
    sts: StsClient,
    sts_emulator: Emulator,
    client: aiohttp.ClientSession,
    issue: Callable[[StsClient], Issued],
) -> None:
    """Keys moto issued (assume-role, web identity, chained) verify; the echo names the role."""
    issued = issue(sts)
    reply = await send(client, sts_emulator, signed_with(issued))
    assert reply.status == 200, reply
    assert reply.body["verified"] is True
    assert reply.body["access_key_id"] == issued.key_id
    assert reply.body["role_arn"] == issued.role_arn
    assert sts_emulator.requests[-1].role_arn == issued.role_arn


@pytest.mark.parametrize("token", ["not-the-session-token", None], ids=["wrong token", "no token"])
async def test_moto_issued_keys_need_their_own_session_token(
    role_keys: Issued, sts_emulator: Emulator, client: aiohttp.ClientSession, token: str | None
) -> None:
    """Keys moto issued with a wrong or missing session token are UnrecognizedClientException."""
    headers = signed(key_id=role_keys.key_id, secret=role_keys.secret, token=token)
    reply = await send(client, sts_emulator, headers)
    assert reply.status == 403
    assert reply.error_type == "UnrecognizedClientException"
    assert reply.body == {"Message": INVALID_TOKEN_MESSAGE}


async def test_key_moto_never_issued_is_unrecognized(
    sts_emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """An access key id that moto, reachable, never issued is UnrecognizedClientException."""
    headers = signed(key_id="ASIAUNKNOWNTOMOTO001", secret="x" * 40, token="some-token")
    reply = await send(client, sts_emulator, headers)
    assert reply.status == 403
    assert reply.error_type == "UnrecognizedClientException"
    assert reply.body == {"Message": INVALID_TOKEN_MESSAGE}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("nothing listening", "Cannot connect"),
        ("not a moto server", "answered HTTP 404 (is it a moto server?)"),
        ("stalled", "no answer within 0.2 s"),
    ],
)
async def test_sts_that_cannot_be_asked_gives_403_not_500(
    front: StsFront,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    case: str,
    reason: str,
) -> None:
    """When moto cannot be asked, the function answers 403 UnrecognizedClientException, logs why."""
    sts_url = {
        "nothing listening": closed_port_url(),
        "not a moto server": front.url + "/elsewhere",
        "stalled": front.url,
    }[case]
    front.stall = case == "stalled"
    secret, token = "s" * 40, "session-token-that-must-not-be-logged"
    headers = signed(key_id="ASIAUNREACHABLE00042", secret=secret, token=token)
    async with Emulator(keys={}, sts_url=sts_url, sts_timeout=0.2) as emulator:
        with caplog.at_level(logging.WARNING, logger="signing_proxy.emulator"):
            reply = await send(client, emulator, headers)
    assert reply.status == 403
    assert reply.error_type == "UnrecognizedClientException"
    assert f"the STS at {sts_url} could not be asked" in reply.body["Message"]
    assert reason in reply.body["Message"]
    assert f"the STS at {sts_url} could not be asked" in caplog.text
    assert "ASIA…0042" in caplog.text
    assert token not in caplog.text
    assert secret not in caplog.text


async def test_issued_keys_are_looked_up_once(
    sts: StsClient, front: StsFront, client: aiohttp.ClientSession
) -> None:
    """Concurrent and later requests with one issued key ask moto only once: the key is cached."""
    issued = assume_role(sts)
    async with Emulator(keys={}, sts_url=front.url) as emulator:
        replies = await asyncio.gather(
            *(send(client, emulator, signed_with(issued)) for _ in range(5))
        )
        later = await send(client, emulator, signed_with(issued))
    assert [reply.status for reply in [*replies, later]] == [200] * 6
    assert front.hits == 1


@pytest.mark.parametrize(
    ("expires_in", "clock_ahead", "error_type"),
    [
        (timedelta(minutes=-1), timedelta(0), "ExpiredTokenException"),
        (timedelta(minutes=2), timedelta(minutes=3), "ExpiredTokenException"),
        (timedelta(hours=1), timedelta(0), None),
    ],
    ids=["expired", "expired by the emulator's clock", "still valid"],
)
@pytest.mark.parametrize("naive", [False, True], ids=["aware", "naive UTC"])
async def test_expired_keys_are_refused(
    client: aiohttp.ClientSession,
    expires_in: timedelta,
    clock_ahead: timedelta,
    error_type: str | None,
    naive: bool,
) -> None:
    """A key whose expires_at has passed, per the emulator's clock, gets ExpiredTokenException."""
    expires_at = datetime.now(UTC) + expires_in
    if naive:
        expires_at = expires_at.replace(tzinfo=None)
    key = Key("emulator-expiring-secret-0123456789abcdef", "a-session-token", expires_at)
    keys = {"ASIAEXPIRINGKEY00001": key}
    async with Emulator(keys=keys, clock=lambda: datetime.now(UTC) + clock_ahead) as emulator:
        headers = signed(
            key_id="ASIAEXPIRINGKEY00001", secret=key.secret_access_key, token="a-session-token"
        )
        reply = await send(client, emulator, headers)
    if error_type is None:
        assert reply.status == 200, reply
    else:
        assert reply.status == 403
        assert reply.error_type == error_type
        assert reply.body == {"Message": EXPIRED_MESSAGE}


def test_expiring_key_repr_shows_the_expiry_but_no_secret() -> None:
    """A Key with expires_at shows when it expires and still hides its secret and token."""
    expires_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    text = repr(Key("very-secret-value", "very-secret-token", expires_at))
    assert "very-secret" not in text
    assert text == f"Key(secret_access_key='***', session_token='***', expires_at={expires_at!r})"


async def test_key_added_after_start_is_accepted(client: aiohttp.ClientSession) -> None:
    """The emulator reads its keys mapping live: a key added after start is accepted."""
    keys: dict[str, Key] = {}
    headers = signed(key_id=KEY_ID, secret=KEY.secret_access_key)
    async with Emulator(keys=keys) as emulator:
        before = await send(client, emulator, headers)
        keys[KEY_ID] = KEY
        after = await send(client, emulator, headers)
    assert before.error_type == "UnrecognizedClientException"
    assert after.status == 200, after
    assert after.body["role_arn"] is None


async def test_oac_key_and_live_keys_are_both_accepted(client: aiohttp.ClientSession) -> None:
    """With OAC, CloudFront's own key sits on top of the live mapping, which is still read."""
    keys: dict[str, Key] = {}
    async with Emulator(keys=keys, oac=True) as emulator:
        keys[KEY_ID] = KEY
        async with client.get(URL(emulator.cloudfront_url + "/", encoded=True)) as resp:
            through_cloudfront = await resp.json()
        # Straight to the function, so that the viewer's own signature is what it checks.
        headers = {"Host": FUNCTION_HOST, **signed(key_id=KEY_ID, secret=KEY.secret_access_key)}
        async with client.get(
            URL(emulator.function_url_local + "/", encoded=True), headers=headers
        ) as resp:
            direct = await resp.json()
    assert through_cloudfront["access_key_id"] == emulator.oac_access_key_id
    assert direct["access_key_id"] == KEY_ID


def test_model_data_without_sts_has_no_keys() -> None:
    """moto's model data before any STS call ({}) and odd entries yield no keys, not an error."""
    assert keys_from_model_data({}) == {}
    assert keys_from_model_data({"sts": {"AssumedRole": [{"access_key_id": "ASIA1"}, 7]}}) == {}


def test_model_data_expiration_is_used_when_present() -> None:
    """An AssumedRole entry with an ISO-8601 expiration string gets that expiry; no role, None."""
    entry = {
        "access_key_id": "ASIAWITHEXPIRY000001",
        "secret_access_key": "secret",
        "session_token": "token",
        "expiration": "2030-01-02T03:04:05",
    }
    found = keys_from_model_data({"sts": {"AssumedRole": [entry]}})["ASIAWITHEXPIRY000001"]
    assert found.key.expires_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert found.key.session_token == "token"
    assert found.role_arn is None


def test_model_data_that_is_not_an_object_is_an_error() -> None:
    """An answer that is not a JSON object is not moto's model data."""
    with pytest.raises(ValueError, match="not a JSON object"):
        keys_from_model_data([])


@pytest.mark.parametrize(
    "sts_url", ["127.0.0.1:5000", "ftp://127.0.0.1:5000", "http://?x=1"], ids=str
)
def test_sts_url_must_be_a_moto_base_url(sts_url: str) -> None:
    """An sts_url that is not an http(s) base URL is refused when the emulator is made."""
    with pytest.raises(ValueError, match="is not the base URL of a moto server"):
        Emulator(keys={}, sts_url=sts_url)
