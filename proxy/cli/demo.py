"""`signing-proxy emulate` and `demo`: the proxy against a local CloudFront stand-in, in front of
an emulated function URL or (``--web-function``) Lambda Web Function endpoint."""

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
from proxy.emulator import (
    DEFAULT_FUNCTION_HOST,
    DEFAULT_GLOBAL_WEB_FUNCTION_HOST,
    DEFAULT_WEB_FUNCTION_HOST,
    Emulator,
    Key,
    generate_key,
    web_function_endpoint,
)
from proxy.errors import ConfigError
from proxy.model import Address, Config
from proxy.serve.credentials import static_fetch
from proxy.serve.server import describe_routes, running

DEMO_TIMEOUT = aiohttp.ClientTimeout(total=30)
DEMO_ADMIN = Address("127.0.0.1", 9901)


async def emulate(
    *,
    listen: str,
    function_url: str,
    oac: bool,
    sts_url: str | None,
    stop: asyncio.Event,
    web_function: str | None = None,
) -> int:
    """Run the emulator until stopped, printing how to point the proxy at it; with
    ``web_function`` its origin is that Web Function endpoint instead of ``function_url``."""
    # The same HOST:PORT rules as the config's listen key.
    host, port = parse_host_port(listen, path="--listen", example="127.0.0.1:9000")
    if web_function is None:
        function_host = _function_host(function_url)
    else:
        function_host = _web_function_host(web_function)
        if oac and _is_global(function_host):
            raise ConfigError(
                "--oac",
                "CloudFront's origin access control signs with SigV4, which a multi-region "
                "Web Function endpoint (.lambda-web.global.on.aws) does not accept",
            )
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
        print(f"  in front of an emulated {_origin_words(emulator)}")
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
        endpoint_flag = "--function-url" if web_function is None else "--web-function"
        print("  Then:")
        print(
            f"    signing-proxy serve --upstream {emulator.cloudfront_url} "
            f"{endpoint_flag} https://{function_host} --mode {mode}"
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


def _web_function_host(web_function: str) -> str:
    host = urlsplit(web_function).hostname or ""
    if web_function_endpoint(host) is None:
        raise ConfigError(
            "--web-function",
            f"{web_function!r} is not a Lambda Web Function endpoint (expected e.g. "
            f"https://{DEFAULT_WEB_FUNCTION_HOST} or https://{DEFAULT_GLOBAL_WEB_FUNCTION_HOST})",
        )
    return host


def _is_global(host: str) -> bool:
    endpoint = web_function_endpoint(host)
    return endpoint is not None and endpoint.is_global


def _origin_words(emulator: Emulator) -> str:
    """What the emulated origin is, and which signatures it checks."""
    endpoint = emulator.web_function
    host = emulator.function_host
    if endpoint is None:
        return f"function URL https://{host} (auth AWS_IAM)"
    if endpoint.is_global:
        return (
            f"multi-region Web Function endpoint https://{host} "
            f"(SigV4a; it serves from {emulator.region})"
        )
    return f"Web Function endpoint https://{host} (SigV4 for {endpoint.region}, or SigV4a)"


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
    *,
    serve: bool,
    listen: str | None,
    admin: Address | None = None,
    web_function: str | None = None,
    stop: asyncio.Event,
) -> int:
    """Emulator and proxy together; send three requests (or wait for the user's with --serve).

    With ``web_function`` the emulated origin is that Lambda Web Function endpoint, and the
    proxy's route names it with ``web_function:``.
    """
    function_host = DEFAULT_FUNCTION_HOST
    if web_function is not None:
        function_host = _web_function_host(web_function)
    access_key, key = generate_key()
    async with Emulator(keys={access_key: key}, function_host=function_host) as emulator:
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
            if emulator.web_function is None:
                print(
                    f"  function URL     https://{emulator.function_host} (emulated; checks SigV4)"
                )
            else:
                checks = "SigV4a" if emulator.web_function.is_global else "SigV4"
                print(
                    f"  Web Function     https://{emulator.function_host} "
                    f"(emulated; checks {checks})"
                )
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
    origin = "function URL" if web_function is None else "Web Function endpoint"
    print(f"All {len(results)} requests arrived signed and verified by the {origin}.")
    return 0


def _demo_config(emulator: Emulator, listen: str) -> Config:
    # A Web Function endpoint's route implies its signing: SigV4 for the region in the host,
    # or SigV4a for region set * at a multi-region endpoint.
    endpoint_key = "function_url" if emulator.web_function is None else "web_function"
    return parse_config(
        {
            "listen": listen,
            "routes": [
                {
                    "name": "demo",
                    "path_prefix": "/",
                    "upstream": emulator.cloudfront_url,
                    endpoint_key: f"https://{emulator.function_host}",
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
        # SigV4a says so, with the region set it covered; SigV4 is what everyone expects.
        region_set = echoed.get("region_set")
        how = "" if region_set is None else f" (SigV4a, region set {region_set})"
        print(
            f"   -> 200, signature verified{how}; the function saw Host: {headers.get('host')}, "
            f"via {headers.get('via', '?')}"
        )
        return _Result(name, True, f"function hashed {str(echoed.get('body_sha256'))[:16]}…")
    message = echoed.get("Message", body[:200].decode(errors="replace")) if echoed else ""
    print(f"   -> FAILED: {status} {message}")
    return _Result(name, False, str(status))
