"""Pure: the one builder of the request a route sends upstream.

``serve`` (the pipeline), ``check`` (its probe) and ``sign`` (the printed request) all build
their headers and signature here, so what ``check`` tests and what ``sign`` prints is what
``serve`` sends: the route's header rules applied, the body's hash where AWS checks it, and a
SigV4 signature for the route's signing host (not the upstream's) over exactly the path and
query that go on the wire.
"""

from __future__ import annotations

from typing import Any

from multidict import CIMultiDict, MultiMapping

from proxy.core import sigv4, sigv4a
from proxy.core.credentials import Credentials
from proxy.core.headers import request_headers
from proxy.model import Route, SigningTarget


def upstream_headers(
    incoming: MultiMapping[str], route: Route, *, payload_hash: str
) -> CIMultiDict[str]:
    """What of a client's headers the route sends on, plus ``x-amz-content-sha256``: OAC and
    Lambda need it on every request with a body, and it costs nothing on the rest."""
    headers = request_headers(incoming, mode=route.mode, rules=route.headers)
    if route.mode != "none":
        headers["x-amz-content-sha256"] = payload_hash
    return headers


def sign(
    headers: CIMultiDict[str],
    target: SigningTarget,
    credentials: Credentials,
    *,
    method: str,
    path: str,
    query: str,
    payload_hash: str,
    amz_date: str,
) -> sigv4.Signature:
    """Sign for ``target`` (SigV4, or SigV4a) with one credentials snapshot and set what the
    signature needs in ``headers`` (X-Amz-Date, the region set, the session token,
    Authorization). Signed again for every
    attempt: a token an earlier attempt's credentials left is removed."""
    # SigV4 signs for one region; SigV4a (ECDSA P-256) for the region set in target.region.
    signer = sigv4a.sign_minimal if target.algorithm == "sigv4a" else _sigv4
    signature, sent = signer(
        method=method,
        path=path,
        query=query,
        payload_hash=payload_hash,
        host=target.host,
        region_set=target.region,
        service=target.service,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        token=credentials.token,
        amz_date=amz_date,
    )
    if not credentials.token:
        headers.popall("x-amz-security-token", None)
    headers.update(sent)
    return signature


def _sigv4(*, region_set: str, **signed: Any) -> tuple[sigv4.Signature, dict[str, str]]:
    """``sigv4.sign_minimal`` called as ``sigv4a``'s: for SigV4 the region is one region."""
    return sigv4.sign_minimal(region=region_set, **signed)


def request_target(path: str, query: str) -> str:
    """The request target on the wire: the path as signed, and the query when there is one."""
    return path + (f"?{query}" if query else "")
