"""`signing-proxy sign`: one request signed as the proxy would sign it, printed as a curl
command or as JSON, for scripts and for comparing with what AWS says it expected."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shlex
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from multidict import CIMultiDict

from proxy.core import outgoing, routing, sigv4
from proxy.core.credentials import Credentials
from proxy.errors import ConfigError, CredentialsUnavailableError
from proxy.model import Config, CredentialSet, Route, SigningTarget
from proxy.serve.credentials import build_providers

_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")


@dataclass(frozen=True, slots=True)
class SignRequest:
    """What to sign: the request and, for the route-less form, where it is signed for."""

    method: str
    target: str  # a path with --route, else a whole URL
    body: bytes
    data: str | None  # as given: a literal body, or @file (curl's spelling)
    headers: tuple[tuple[str, str], ...]
    amz_date: str | None
    route: str | None
    signing: SigningTarget | None


@dataclass(frozen=True, slots=True)
class Signed:
    """The signed request, ready to print."""

    method: str
    url: str
    headers: dict[str, str]
    data: str | None
    signing: SigningTarget
    signature: sigv4.Signature


async def sign_one(request: SignRequest, config: Config | None) -> Signed:
    """Resolve the target and the credentials (on a worker thread) and sign."""
    if request.amz_date is not None and not _AMZ_DATE.fullmatch(request.amz_date):
        raise ConfigError("--date", f"{request.amz_date!r} is not YYYYMMDDTHHMMSSZ")
    payload_hash = hashlib.sha256(request.body).hexdigest()
    given: CIMultiDict[str] = CIMultiDict(request.headers)
    if request.route is not None:
        if config is None:
            raise ConfigError("--route", "needs --config FILE (or SIGNING_PROXY_CONFIG)")
        route, path, query = _from_route(config, request)
        assert route.signing is not None  # noqa: S101 - _from_route refuses routes without
        origin, signing = route.upstream.origin, route.signing
        sets, name = config.credentials, route.credentials
        # What serve sends: the route's header rules applied, a client's own signature gone.
        sent = outgoing.upstream_headers(given, route, payload_hash=payload_hash)
    else:
        origin, path, query, signing = _from_url(request)
        sets, name = (CredentialSet("default"),), "default"
        sent = given
    credentials = await _credentials(sets, name)
    amz_date = request.amz_date or sigv4.format_amz_date(time.time())
    signature = outgoing.sign(
        sent,
        signing,
        credentials,
        method=request.method,
        path=path,
        query=query,
        payload_hash=payload_hash,
        amz_date=amz_date,
    )
    url = origin + outgoing.request_target(path, query)
    return Signed(request.method, url, dict(sent), request.data, signing, signature)


def _from_route(config: Config, request: SignRequest) -> tuple[Route, str, str]:
    route = next((r for r in config.routes if r.name == request.route), None)
    if route is None:
        names = ", ".join(r.name for r in config.routes)
        raise ConfigError("--route", f"{request.route!r} is not a route (expected one of: {names})")
    if route.mode != "iam" or route.signing is None:
        raise ConfigError(
            "--route", f"route {route.name!r} has mode {route.mode}: it signs nothing"
        )
    path, query = routing.split_target(request.target)
    return route, routing.upstream_path(route, path), query


def _from_url(request: SignRequest) -> tuple[str, str, str, SigningTarget]:
    parts = urlsplit(request.target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("URL", f"{request.target!r} is not an http(s) URL (or give --route)")
    if request.signing is None:
        raise ConfigError("--region", "needs --region and --service, or --route")
    target = parts.path or "/"
    path, query = routing.split_target(target + (f"?{parts.query}" if parts.query else ""))
    return f"{parts.scheme}://{parts.netloc}", path, query, request.signing


async def _credentials(sets: tuple[CredentialSet, ...], name: str) -> Credentials:
    providers = build_providers(sets)
    for provider in providers.values():  # sources first, as the proxy resolves them
        await provider.refresh()
    try:
        return providers[name].snapshot(time.time())
    except CredentialsUnavailableError as exc:
        raise ConfigError("credentials", exc.message) from exc


def as_curl(signed: Signed, *, show_canonical: bool) -> str:
    """A curl command line that sends exactly the signed request."""
    lines = []
    if show_canonical:
        lines += _commented("canonical request", signed.signature.canonical_request)
        lines += _commented("string to sign", signed.signature.string_to_sign)
    words = ["curl", "-sS", "-X", signed.method, signed.url]
    command = " ".join(shlex.quote(w) for w in words)
    for name, value in signed.headers.items():
        command += " \\\n  -H " + shlex.quote(f"{name}: {value}")
    if signed.data is not None:
        command += " \\\n  --data-binary " + shlex.quote(signed.data)
    return "\n".join([*lines, command])


def as_json(signed: Signed) -> str:
    """The signed request's parts as JSON."""
    return json.dumps(
        {
            "method": signed.method,
            "url": signed.url,
            "headers": signed.headers,
            "signed_for": {
                "host": signed.signing.host,
                "region": signed.signing.region,
                "service": signed.signing.service,
            },
            "canonical_request": signed.signature.canonical_request,
            "string_to_sign": signed.signature.string_to_sign,
        },
        indent=2,
    )


def _commented(title: str, text: str) -> list[str]:
    return [f"# {title}:", *(f"#   {line}" for line in text.split("\n"))]


def run(
    request: SignRequest, config: Config | None, *, as_json_output: bool, canonical: bool
) -> str:
    """Sign and render (the CLI prints the result)."""
    signed = asyncio.run(sign_one(request, config))
    return as_json(signed) if as_json_output else as_curl(signed, show_canonical=canonical)
