"""`signing-proxy emulate` and `demo`: the proxy against a local CloudFront stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from proxy.config.load import parse_config
from proxy.config.values import parse_host_port
from proxy.emulator import DEFAULT_FUNCTION_HOST, Emulator, Key, generate_key
from proxy.errors import ConfigError
from proxy.model import Address, Config
from proxy.serve.credentials import static_fetch
from proxy.serve.server import describe_routes, running

DEMO_TIMEOUT = aiohttp.ClientTimeout(total=30)
DEMO_ADMIN = Address("127.0.0.1", 9901)


async def emulate(
    *, listen: str, function_url: str, oac: bool, sts_url: str | None, stop: asyncio.Event
) -> int:
    """Run the emulator until stopped, printing how to point the proxy at it."""
    # The same HOST:PORT rules as the config's listen key.
    host, port = parse_host_port(listen, path="--listen", example="127.0.0.1:9000")
    function_host = _function_host(function_url)
    access_key, key, from_env = _emulator_key()
    emulator = Emulator(
        keys={access_key: key},
        function_host=function_host,
        oac=oac,
        host=host,
        cloudfront_port=port,
        sts_url=sts_url,
    )
    try:
        await emulator.start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError("--listen", f"cannot listen on {listen}: {reason}") from exc
    try:
        print(f"Emulated CloudFront listening on {emulator.cloudfront_url}")
        print(f"  in front of an emulated function URL https://{function_host} (auth AWS_IAM)")
        print("  which checks the signature of every request like Lambda does.")
        if from_env:
            print(f"  It accepts the keys in AWS_ACCESS_KEY_ID ({access_key}).")
        else:
            print("  It accepts these (made-up) keys; export them where the proxy runs:")
            print(f"    export AWS_ACCESS_KEY_ID={access_key}")
            print(f"    export AWS_SECRET_ACCESS_KEY={key.secret_access_key}")
        if sts_url:
            print(f"  It also accepts keys issued by the STS at {sts_url} (moto).")
        mode = "oac" if oac else "iam"
        print("  Then:")
        print(
            f"    signing-proxy serve --upstream {emulator.cloudfront_url} "
            f"--function-url https://{function_host} --mode {mode}"
        )
        await stop.wait()
    finally:
        await emulator.close()
    return 0


def _function_host(function_url: str) -> str:
    host = urlsplit(function_url).hostname or ""
    if not host.endswith(".on.aws") or ".lambda-url." not in host:
        raise ConfigError(
            "--function-url",
            f"{function_url!r} is not a function URL "
            f"(expected e.g. https://{DEFAULT_FUNCTION_HOST})",
        )
    return host


def _emulator_key() -> tuple[str, Key, bool]:
    """The keys in the environment when there are some, so one shell can run both sides."""
    access_key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret:
        return access_key, Key(secret, os.environ.get("AWS_SESSION_TOKEN")), True
    access_key, key = generate_key()
    return access_key, key, False


@dataclass(frozen=True)
class _Result:
    name: str
    ok: bool
    detail: str


async def demo(
    *, serve: bool, listen: str | None, admin: Address | None = None, stop: asyncio.Event
) -> int:
    """Emulator and proxy together; send three requests (or wait for the user's with --serve)."""
    access_key, key = generate_key()
    async with Emulator(keys={access_key: key}) as emulator:
        config = _demo_config(emulator, listen or ("127.0.0.1:8080" if serve else "127.0.0.1:0"))
        overrides = {"default": static_fetch(access_key, key.secret_access_key)}
        # With --serve, the user's own requests can be watched in the inspector.
        async with running(
            config,
            credential_overrides=overrides,
            admin=(admin or DEMO_ADMIN) if serve else None,
            inspect=serve,
        ) as proxy:
            print("signing-proxy demo: no AWS account needed")
            print(f"  proxy            {proxy.url}")
            if proxy.admin_url:
                print(f"  inspector        {proxy.admin_url}/inspect (every request, live)")
            for line in describe_routes(config):
                print(f"  {line.strip()}")
            print(
                f"  CloudFront       {emulator.cloudfront_url} (emulated; sets Host to the origin)"
            )
            print(f"  function URL     https://{emulator.function_host} (emulated; checks SigV4)")
            print()
            if serve:
                _print_examples(proxy.url)
                with _request_lines():
                    await stop.wait()
                return 0
            results = await _send_examples(proxy.url)
    failed = [result for result in results if not result.ok]
    print()
    if failed:
        print(f"{len(failed)} of {len(results)} requests failed.")
        return 1
    print(f"All {len(results)} requests arrived signed and verified by the function URL.")
    return 0


def _demo_config(emulator: Emulator, listen: str) -> Config:
    return parse_config(
        {
            "listen": listen,
            "routes": [
                {
                    "name": "demo",
                    "path_prefix": "/",
                    "upstream": emulator.cloudfront_url,
                    "function_url": f"https://{emulator.function_host}",
                    "mode": "iam",
                }
            ],
        }
    )


@contextlib.contextmanager
def _request_lines() -> Iterator[None]:
    """While the demo serves: one line on stdout per request the proxy answered, from its
    access log (which then goes nowhere else: the line says it all)."""
    access = logging.getLogger("signing_proxy.access")
    handler = _RequestLines()
    saved = access.level, access.propagate
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        yield
    finally:
        access.removeHandler(handler)
        access.setLevel(saved[0])
        access.propagate = saved[1]


class _RequestLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(request_line(record), flush=True)


def request_line(record: logging.LogRecord) -> str:
    """``GET /orders -> 200  signed, verified by the function URL``, or why not, from an
    access-log record's fields (the path only: a query may hold a token)."""
    fields = vars(record)
    error, error_type = fields.get("error"), fields.get("amzn_error_type")
    upstream = fields.get("upstream_status")
    if error is not None:
        why = f"refused by the proxy: {error}: {_first_clause(fields.get('error_message'))}"
    elif error_type:
        why = f"refused by the function URL: {str(error_type).partition(':')[0]}"
    elif upstream == 403:
        why = "refused by CloudFront"
    elif upstream is not None:
        why = "signed, verified by the function URL"
    else:
        why = "not sent"
    if fields.get("cut"):
        why += f"; the reply was cut short ({fields['cut']})"
    return f"  {fields.get('method')} {fields.get('path')} -> {fields.get('status')}  {why}"


def _first_clause(message: object) -> str:
    text = str(message or "")
    clause = text.split("; ")[0].split(": ")[0]
    return clause if len(clause) <= 100 else clause[:99] + "…"


def _print_examples(url: str) -> None:
    print("Send your own requests (Ctrl-C stops both):")
    print(f"  curl -s {url}/hello?name=world")
    print(
        f"  curl -s -X POST {url}/orders -H 'content-type: application/json' -d '{{\"item\": 1}}'"
    )
    print(f"  curl -sN '{url}/stream?chunks=5&delay=0.5'")
    print()
    print("Requests, as the proxy answers them:")


async def _send_examples(url: str) -> list[_Result]:
    async with aiohttp.ClientSession(timeout=DEMO_TIMEOUT, auto_decompress=False) as session:
        return [
            await _get(session, url),
            await _post(session, url),
            await _stream(session, url),
        ]


async def _get(session: aiohttp.ClientSession, url: str) -> _Result:
    name = "GET /hello?name=world"
    print(f"1. {name}")
    async with session.get(f"{url}/hello?name=world") as response:
        return _report(name, response.status, await response.read())


async def _post(session: aiohttp.ClientSession, url: str) -> _Result:
    body = json.dumps({"item": "book", "quantity": 2}).encode()
    name = "POST /orders (JSON)"
    print(f"2. {name} {body.decode()}")
    async with session.post(
        f"{url}/orders", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        result = _report(name, response.status, await response.read())
    if result.ok:
        print(f"   body hash: sent {hashlib.sha256(body).hexdigest()[:16]}…, {result.detail}")
    return result


async def _stream(session: aiohttp.ClientSession, url: str) -> _Result:
    name = "GET /stream (Lambda response streaming)"
    print(f"3. {name}")
    started = time.monotonic()
    events = 0
    async with session.get(f"{url}/stream?chunks=5&delay=0.3") as response:
        if response.status != 200:
            return _report(name, response.status, await response.read())
        async for line in response.content:
            if line.startswith(b"data:"):
                events += 1
                elapsed = time.monotonic() - started
                print(f"   {elapsed:5.2f}s  {line.decode().strip()}")
    ok = events == 5
    print(f"   -> {'verified, streamed' if ok else 'FAILED'}: {events} of 5 events")
    return _Result(name, ok, f"{events} events")


def _report(name: str, status: int, body: bytes) -> _Result:
    try:
        echoed = json.loads(body)
    except ValueError:
        echoed = {}
    if status == 200 and isinstance(echoed, dict) and echoed.get("verified") is True:
        headers = echoed.get("headers", {})
        print(
            f"   -> 200, signature verified; the function saw Host: {headers.get('host')}, "
            f"via {headers.get('via', '?')}"
        )
        return _Result(name, True, f"function hashed {str(echoed.get('body_sha256'))[:16]}…")
    message = echoed.get("Message", body[:200].decode(errors="replace")) if echoed else ""
    print(f"   -> FAILED: {status} {message}")
    return _Result(name, False, str(status))
