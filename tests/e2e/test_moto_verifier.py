"""moto's server as a third-party SigV4 verifier, reached through the real proxy.

moto checks a signature with botocore given the raw URL: the query is canonicalised as it
arrives, sorted but not re-encoded. A query whose wire spelling differs from its signed
encoding (``!``, ``%7e``, lower-case escapes) fails there, so this is where the proxy's
"what is signed is what is sent" is held against a verifier that shares no code with it.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from proxy.core import sigv4
from proxy.serve.credentials import static_fetch
from tests.processes import GUARD, child_env, free_port, send, started
from tests.stack import proxy

REGION = "us-east-1"
MOTO_ACCOUNT = "123456789012"  # moto's default account
USER = "signing-proxy-e2e"
CALLER_IDENTITY = "Action=GetCallerIdentity&Version=2011-06-15"


@dataclass(frozen=True)
class Moto:
    """moto's server with request authentication on, and an IAM user's keys it knows."""

    port: int
    key_id: str
    secret: str

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    """moto's server in its own process (its authentication switch is process-wide, and the
    session's local STS must stay open), with an IAM user created, then authentication on."""
    port = free_port()
    # Not the test's AWS_* variables (the autouse fixture has not run for a module fixture).
    env = {name: value for name, value in child_env().items() if not name.startswith("AWS_")}
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with started(command, env=env) as child:
        _wait_for_port(port, child.err)
        created = _iam(port, {"Action": "CreateUser", "UserName": USER})
        assert created.status == 200, created.body
        key = _iam(port, {"Action": "CreateAccessKey", "UserName": USER})
        assert key.status == 200, key.body
        key_id, secret = (_xml_text(key.body, tag) for tag in ("AccessKeyId", "SecretAccessKey"))
        # From here on every request's signature is checked (the count of unchecked ones is 0).
        reset = send(port, "POST", "/moto-api/reset-auth", body=b"0")
        assert reset.status == 200, reset.body
        yield Moto(port, key_id, secret)


def _wait_for_port(port: int, err: str) -> None:
    deadline = time.monotonic() + GUARD  # a guard against a hung child, not a measurement
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    pytest.fail(f"moto's server did not listen on {port}: {err}")


def _iam(port: int, params: dict[str, str]) -> Any:
    """One IAM call before authentication is on: moto routes it by the signature's scope."""
    body = urlencode({**params, "Version": "2010-05-08"})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    request = AWSRequest("POST", f"http://127.0.0.1:{port}/", data=body, headers=headers)
    SigV4Auth(Credentials("AKIAIOSFODNN7EXAMPLE", "bootstrap"), "iam", REGION).add_auth(request)
    return send(port, "POST", "/", body=body.encode(), headers=dict(request.headers.items()))


def _xml_text(body: bytes, tag: str) -> str:
    found = re.search(rf"<{tag}>([^<]+)</{tag}>", body.decode())
    assert found is not None, body
    return found[1]


def _sts_route(moto: Moto) -> dict[str, Any]:
    """A generic SigV4 route: sign for moto's host and port as STS."""
    return {
        "name": "sts",
        "path_prefix": "/",
        "upstream": f"http://{moto.host}",
        "mode": "iam",
        "sign": {"host": moto.host, "region": REGION, "service": "sts"},
    }


TRICKY_QUERIES = [
    "x=!'()*,",
    "t=%7e&u=%7E&v=~",
    "q=a%20b&r=%2f%3a",
    "%E1%88%B4=%F0%9F%98%80&%e1%88%b4=%f0%9f%98%80",
    "plus=a+b&escaped=a%2Bb",
    "flag&empty=&x=y=z&&",
    "b=2&a=1&a=0",
    "k[]=v&at=@&colon=:&slash=/&question=?",
]


@pytest.mark.parametrize("query", TRICKY_QUERIES)
async def test_moto_accepts_tricky_queries_through_the_proxy(
    moto: Moto, client: aiohttp.ClientSession, query: str
) -> None:
    """Queries spelt any way a client spells them verify at moto, a verifier that does not
    re-encode the query: STS GetCallerIdentity answers 200 for moto's IAM user."""
    keys = {"default": static_fetch(moto.key_id, moto.secret)}
    async with (
        proxy(_sts_route(moto), overrides=keys) as running,
        client.get(URL(f"{running.url}/?{CALLER_IDENTITY}&{query}", encoded=True)) as response,
    ):
        body = await response.text()
    assert response.status == 200, body
    assert f"<Arn>arn:aws:iam::{MOTO_ACCOUNT}:user/{USER}</Arn>" in body


@pytest.mark.parametrize("query", ["x=!'()*,", "t=%7e", "q=%2f"])
def test_moto_refuses_a_query_sent_in_another_spelling_than_signed(moto: Moto, query: str) -> None:
    """The control: signed in the strict encoding but sent as the client spelt it (what the
    proxy did before), the request fails moto's signature check."""
    wire_query = f"{CALLER_IDENTITY}&{query}"
    amz_date = sigv4.format_amz_date(time.time())
    _, headers = sigv4.sign_minimal(
        method="GET",
        path="/",
        query=wire_query,
        payload_hash=sigv4.EMPTY_SHA256,
        host=moto.host,
        region=REGION,
        service="sts",
        access_key=moto.key_id,
        secret_key=moto.secret,
        token=None,
        amz_date=amz_date,
    )
    reply = send(moto.port, "GET", f"/?{wire_query}", headers=headers)
    assert reply.status == 403, reply.body
    assert b"SignatureDoesNotMatch" in reply.body
