"""The emulator: a stand-in for CloudFront before a Lambda function URL (AWS_IAM), on real sockets.

Used by ``signing-proxy emulate`` / ``signing-proxy demo`` and by the tests as the independent
signature checker::

    client ──▶ fake CloudFront ──Host: <function host>──▶ fake function URL (checks SigV4, echoes)

Nothing here imports the proxy's own signer: signatures are checked with botocore's SigV4Auth.
Besides the keys it is given, the function can accept the temporary credentials a local STS
(moto's server, ``sts_url``) has issued, and reports which role signed each request.

Failures it can be set up to produce, for ``signing-proxy check`` and its tests: a ``clock``
off from this machine's (signatures expire; every reply's Date shows the skew), identities
``denied`` (AccessDeniedException, as without lambda:InvokeFunctionUrl), and CloudFront's own
403s (``restrictions``: WAF-blocked paths, a geographic restriction, allowed methods). A wrong
region or signing host needs no setting: the function refuses them as Lambda does.

Given a Lambda Web Function endpoint as ``function_host`` (regional
``<id>.<shard>.lambda-web.<region>.on.aws`` or multi-region ``<id>.lambda-web.global.on.aws``),
the origin is that endpoint: SigV4a verified (with ``sigv4a_verify.py``, only SigV4a for the
multi-region one), x-amz-content-sha256 required on every request.
"""

from __future__ import annotations

import collections
import secrets
import string
from collections.abc import Callable, Container, Mapping
from datetime import datetime
from types import TracebackType
from typing import Self

from aiohttp import web

from proxy.emulator.cloudfront import ORIGIN_READ_TIMEOUT, create_cloudfront_app
from proxy.emulator.function_url import (
    KEEP_SEEN,
    SeenRequest,
    create_function_app,
    region_from_host,
)
from proxy.emulator.key_lookup import STS_LOOKUP_TIMEOUT, LayeredKeys, check_sts_url
from proxy.emulator.restrictions import Restrictions
from proxy.emulator.verify import Key
from proxy.emulator.web_function import DEFAULT_SERVING_REGION, web_function_endpoint

DEFAULT_FUNCTION_HOST = "abc123xyz.lambda-url.eu-central-1.on.aws"
# How long close() lets in-flight requests (a slow /stream, say) finish before cutting them.
SHUTDOWN_GRACE = 2.0

_KEY_ID_ALPHABET = string.ascii_uppercase + string.digits


def generate_key() -> tuple[str, Key]:
    """A fresh random access key id ("AKIA" + 16 characters) and its 40-character secret."""
    key_id = "AKIA" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))
    return key_id, Key(secret_access_key=secrets.token_urlsafe(30))


class Emulator:
    """Fake CloudFront and fake function URL, started together; use ``async with``.

    ``region`` defaults to the one in ``function_host`` (for a multi-region Web Function
    endpoint, which names none: the region that serves it, default us-east-1, which a SigV4a
    region set must cover); ``origin_read_timeout`` is how long CloudFront waits for the next
    bytes from the function (CloudFront's default is 30 s). With ``oac=True`` CloudFront signs
    with its own key, ``oac_access_key_id`` (SigV4, so not before a multi-region endpoint).

    ``keys`` is read live (add to the mapping after start and the key is accepted). An access
    key id it does not hold is looked up among the credentials the moto server at ``sts_url``
    (e.g. ``http://127.0.0.1:5000``) issued, when one is given; a lookup waits at most
    ``sts_timeout`` seconds.

    ``denied`` (read live) lists access key ids and role ARNs whose valid signatures the
    function refuses with AccessDeniedException, or holds DENY_ALL; ``restrictions`` are the
    requests CloudFront refuses itself. Every reply's Date comes from ``clock``.
    """

    def __init__(
        self,
        *,
        keys: Mapping[str, Key],
        function_host: str = DEFAULT_FUNCTION_HOST,
        oac: bool = False,
        clock: Callable[[], datetime] | None = None,
        host: str = "127.0.0.1",
        cloudfront_port: int = 0,
        function_port: int = 0,
        region: str | None = None,
        origin_read_timeout: float = ORIGIN_READ_TIMEOUT,
        sts_url: str | None = None,
        sts_timeout: float = STS_LOOKUP_TIMEOUT,
        denied: Container[str] = (),
        restrictions: Restrictions | None = None,
    ) -> None:
        self.function_host = function_host.lower()
        # Set when the origin is a Lambda Web Function endpoint rather than a function URL.
        self.web_function = web_function_endpoint(self.function_host)
        if self.web_function is not None and self.web_function.is_global:
            if oac:
                raise ValueError(
                    "CloudFront's origin access control signs with SigV4; the multi-region "
                    f"endpoint {self.function_host} accepts only SigV4a"
                )
            self.region = region or DEFAULT_SERVING_REGION
        else:
            self.region = region or region_from_host(self.function_host)
        # The last KEEP_SEEN requests the function saw, oldest first.
        self.requests: collections.deque[SeenRequest] = collections.deque(maxlen=KEEP_SEEN)
        self.oac = oac
        self.oac_access_key_id: str | None = None
        self._oac_key: Key | None = None
        if oac:
            # CloudFront signs with its own identity, which the function must also accept.
            self.oac_access_key_id, self._oac_key = generate_key()
        # Not copied: the function reads the caller's mapping on every request.
        self._keys = keys
        self.sts_url = None if sts_url is None else check_sts_url(sts_url)
        self._sts_timeout = sts_timeout
        self._clock = clock
        self._denied = denied
        self._restrictions = restrictions
        self._origin_read_timeout = origin_read_timeout
        self._host = host
        self._cloudfront_port = cloudfront_port
        self._function_port = function_port
        self._function_runner: web.AppRunner | None = None
        self._cloudfront_runner: web.AppRunner | None = None
        self._cloudfront_url: str | None = None
        self._function_url_local: str | None = None

    def __repr__(self) -> str:
        return (
            f"Emulator(function_host={self.function_host!r}, oac={self.oac}, "
            f"cloudfront_url={self._cloudfront_url!r}, keys={len(self._keys)}, "
            f"sts_url={self.sts_url!r})"
        )

    @property
    def cloudfront_url(self) -> str:
        """Where clients send requests: the fake CloudFront, ``http://HOST:PORT``."""
        if self._cloudfront_url is None:
            raise RuntimeError("the emulator is not started; use 'async with Emulator(...)'")
        return self._cloudfront_url

    @property
    def function_url_local(self) -> str:
        """The fake function URL's own local address (it still expects the function Host)."""
        if self._function_url_local is None:
            raise RuntimeError("the emulator is not started; use 'async with Emulator(...)'")
        return self._function_url_local

    async def start(self) -> None:
        """Bind both servers: the function URL first, since CloudFront needs its address."""
        if self._function_runner is not None:
            raise RuntimeError("the emulator is already started")
        function_keys: Mapping[str, Key] = self._keys
        if self.oac_access_key_id is not None and self._oac_key is not None:
            # CloudFront's own key on top, the caller's mapping still read live beneath it.
            function_keys = LayeredKeys({self.oac_access_key_id: self._oac_key}, self._keys)
        try:
            function_app = create_function_app(
                function_host=self.function_host,
                keys=function_keys,
                clock=self._clock,
                region=self.region,
                requests=self.requests,
                sts_url=self.sts_url,
                sts_timeout=self._sts_timeout,
                denied=self._denied,
            )
            self._function_runner, self._function_url_local = await self._serve(
                function_app, self._function_port
            )
            cloudfront_app = create_cloudfront_app(
                origin_url=self._function_url_local,
                function_host=self.function_host,
                region=self.region,
                oac_key_id=self.oac_access_key_id,
                oac_key=self._oac_key,
                clock=self._clock,
                origin_read_timeout=self._origin_read_timeout,
                restrictions=self._restrictions,
            )
            self._cloudfront_runner, self._cloudfront_url = await self._serve(
                cloudfront_app, self._cloudfront_port
            )
        except BaseException:
            await self.close()
            raise

    async def _serve(self, app: web.Application, port: int) -> tuple[web.AppRunner, str]:
        runner = web.AppRunner(
            app,
            shutdown_timeout=SHUTDOWN_GRACE,
            # A viewer that goes away cancels the handler, so an abandoned /stream stops.
            handler_cancellation=True,
            # The body must stay the bytes that were hashed and signed.
            auto_decompress=False,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        return runner, f"http://{host}:{bound_port}"

    async def close(self) -> None:
        """Stop CloudFront first (it holds connections to the function), then the function."""
        cloudfront, self._cloudfront_runner = self._cloudfront_runner, None
        function, self._function_runner = self._function_runner, None
        self._cloudfront_url = None
        self._function_url_local = None
        try:
            if cloudfront is not None:
                await cloudfront.cleanup()
        finally:
            if function is not None:
                await function.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
