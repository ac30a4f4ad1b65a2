"""Credentials that expire every minute, under steady load: does any request fail?

    python bench/credential_rotation.py [--minutes 10] [--lifetime 60] [--concurrency 8]

Starts, on 127.0.0.1 only: a container-credentials endpoint (the ECS/EKS kind) that issues a
new key on every call, valid for --lifetime seconds; the emulator (CloudFront + function URL),
which refuses expired keys with ExpiredTokenException like Lambda; and the proxy, taking its
credentials from that endpoint through botocore's default chain. Workers send requests
through the proxy for --minutes and every status is counted. Prints a line every 30 s and a
summary; exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

from proxy.config.load import parse_config
from proxy.emulator import Emulator, Key
from proxy.serve.server import running


def _isolate(home: str, token: str) -> None:
    """The default chain must find the bench's endpoint, not the operator's own keys."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ["HOME"] = home
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    token_file = Path(home, "container-token")
    token_file.write_text(token)
    os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(token_file)


class Issuer:
    """The container-credentials endpoint: a fresh key per call, registered with the emulator."""

    def __init__(self, *, lifetime: float, keys: dict[str, Key], token: str) -> None:
        self.lifetime = lifetime
        self.keys = keys
        self.token = token
        self.numbers = itertools.count(1)

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self.token:
            return web.json_response({"message": "bad token"}, status=401)
        number = next(self.numbers)
        expires = datetime.now(UTC) + timedelta(seconds=self.lifetime)
        key_id = f"ASIABENCH{number:011d}"
        self.keys[key_id] = Key(f"bench-secret-{number}", f"bench-token-{number}", expires)
        return web.json_response(
            {
                "AccessKeyId": key_id,
                "SecretAccessKey": f"bench-secret-{number}",
                "Token": f"bench-token-{number}",
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    stop_at: float,
    counts: collections.Counter[str],
    used: set[str],
) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        try:
            async with session.get(url) as response:
                body = await response.read()
                counts[str(response.status)] += 1
                if response.status == 200:
                    used.add(json.loads(body)["access_key_id"])
        except aiohttp.ClientError as exc:
            counts[type(exc).__name__] += 1


async def main(*, minutes: float, lifetime: float, concurrency: int, token: str) -> int:
    keys: dict[str, Key] = {}
    issuer = Issuer(lifetime=lifetime, keys=keys, token=token)
    app = web.Application()
    app.router.add_get("/credentials", issuer.handle)
    endpoint = web.AppRunner(app, access_log=None)
    await endpoint.setup()
    site = web.TCPSite(endpoint, "127.0.0.1", 0)
    await site.start()
    port = endpoint.addresses[0][1]
    os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"http://127.0.0.1:{port}/credentials"
    try:
        return await _run(keys, minutes=minutes, lifetime=lifetime, concurrency=concurrency)
    finally:
        await endpoint.cleanup()


async def _run(keys: dict[str, Key], *, minutes: float, lifetime: float, concurrency: int) -> int:
    counts: collections.Counter[str] = collections.Counter()
    used: set[str] = set()
    async with Emulator(keys=keys) as emulator:
        config = parse_config(
            {
                "listen": "127.0.0.1:0",
                "routes": [
                    {
                        "name": "bench",
                        "upstream": emulator.cloudfront_url,
                        "function_url": f"https://{emulator.function_host}",
                    }
                ],
            }
        )
        async with running(config) as proxy, aiohttp.ClientSession() as session:
            loop = asyncio.get_running_loop()
            started = loop.time()
            stop_at = started + minutes * 60
            print(
                f"{minutes:g} min, keys living {lifetime:g} s, {concurrency} workers "
                f"-> {proxy.url}",
                flush=True,
            )
            workers = [
                asyncio.create_task(_worker(session, f"{proxy.url}/bench", stop_at, counts, used))
                for _ in range(concurrency)
            ]
            pending = set(workers)
            while pending:
                _, pending = await asyncio.wait(pending, timeout=30)
                if pending:
                    _report(loop.time() - started, counts, keys)
            await asyncio.gather(*workers)
    failed = sum(n for status, n in counts.items() if status != "200")
    print(
        f"done: {sum(counts.values())} requests, {failed} failed, {len(used)} keys used, "
        f"{len(keys)} issued ({time.strftime('%H:%M:%S')})"
    )
    return 1 if failed else 0


def _report(elapsed: float, counts: collections.Counter[str], keys: dict[str, Key]) -> None:
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
    print(f"{elapsed:6.0f} s  {statuses}  keys issued: {len(keys)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--lifetime", type=float, default=60.0, help="seconds each key lives")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        token = secrets.token_hex(16)
        _isolate(home, token)
        code = asyncio.run(
            main(
                minutes=args.minutes,
                lifetime=args.lifetime,
                concurrency=args.concurrency,
                token=token,
            )
        )
    sys.exit(code)
