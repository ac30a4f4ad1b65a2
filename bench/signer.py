"""Micro-benchmark: this project's signer against botocore's ``SigV4Auth.add_auth``.

    .venv/bin/python bench/signer.py [--repeat 7]

Both sign the same requests (a small GET, a POST with a query string) for a Lambda function
URL with temporary credentials, over the header set the proxy signs (host,
x-amz-content-sha256, x-amz-date, x-amz-security-token), with the body hash already known
(the proxy hashes while reading the body) and the clock frozen. Each is timed in several
repeated runs of many calls (timeit); the best run counts. Prints microseconds per request
for each (the proxy's ``sign_minimal``, the general ``sign``, botocore), botocore's time over
the proxy's, and exits 1 unless all three produce the same Authorization header.

Also SigV4a (``sigv4a.sign_minimal``: the same headers and ``x-amz-region-set``, the derived
ECDSA key cached): its µs per request, and whether its signature verifies against the public
key (ECDSA is randomised, so there is no second signer's header to compare; exit 1 if not).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import sys
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from proxy.core import sigv4, sigv4a

HOST = "abc123xyz.lambda-url.eu-central-1.on.aws"
REGION, SERVICE = "eu-central-1", "lambda"
NOW = datetime.datetime(2026, 11, 21, 10, 15, 0)
AMZ_DATE = NOW.strftime("%Y%m%dT%H%M%SZ")
ACCESS_KEY = "ASIABENCHEXAMPLE0001"
SECRET_KEY = "bench/secret/not+a+real+key"  # noqa: S105 - made up
TOKEN = "bench-session-token-" + "x" * 300


@dataclass(frozen=True)
class Case:
    """One request to sign."""

    name: str
    method: str
    path: str
    params: list[tuple[str, str]]
    body: bytes

    @property
    def query(self) -> str:
        """The query as it goes on the wire."""
        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.params)

    @property
    def payload_hash(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


CASES = (
    Case("small GET", "GET", "/orders/7", [], b""),
    Case(
        "POST with query",
        "POST",
        "/hooks/github/events",
        [("delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"), ("page", "2"), ("q", "a b/c")],
        b'{"action":"opened","number":1347}' * 30,
    ),
)


def ours(case: Case) -> Callable[[], str]:
    """The proxy's signer as the proxy calls it for every request (``sign_minimal``: the four
    headers it signs, built directly), key cache warm."""
    payload_hash, query = case.payload_hash, case.query

    def sign() -> str:
        signature, _ = sigv4.sign_minimal(
            method=case.method,
            path=case.path,
            query=query,
            payload_hash=payload_hash,
            host=HOST,
            region=REGION,
            service=SERVICE,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            token=TOKEN,
            amz_date=AMZ_DATE,
        )
        return signature.authorization

    return sign


def ours_general(case: Case) -> Callable[[], str]:
    """The general signer (any header set; `signing-proxy sign` uses it), same request."""
    payload_hash, query = case.payload_hash, case.query

    def sign() -> str:
        headers = [
            ("host", HOST),
            ("x-amz-content-sha256", payload_hash),
            ("x-amz-date", AMZ_DATE),
            ("x-amz-security-token", TOKEN),
        ]
        return sigv4.sign(
            method=case.method,
            path=case.path,
            query=query,
            headers=headers,
            payload_hash=payload_hash,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            service=SERVICE,
            amz_date=AMZ_DATE,
        ).authorization

    return sign


def ours_sigv4a(case: Case) -> Callable[[], sigv4.Signature]:
    """SigV4a as the proxy would call it per request: ``sign_minimal``, key derived once."""
    payload_hash, query = case.payload_hash, case.query

    def sign() -> sigv4.Signature:
        signature, _ = sigv4a.sign_minimal(
            method=case.method,
            path=case.path,
            query=query,
            payload_hash=payload_hash,
            host=HOST,
            region_set=REGION,
            service=SERVICE,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            token=TOKEN,
            amz_date=AMZ_DATE,
        )
        return signature

    return sign


def sigv4a_verifies(signature: sigv4.Signature) -> bool:
    """The SigV4a signature checks out against the derived public key over its string to sign."""
    x, y = sigv4a.public_key(ACCESS_KEY, SECRET_KEY)
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    der = bytes.fromhex(signature.authorization.rpartition("Signature=")[2])
    try:
        public.verify(der, signature.string_to_sign.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def botocores(case: Case) -> Callable[[], str]:
    """botocore's add_auth on a request that carries exactly the headers the proxy signs."""
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, TOKEN), SERVICE, REGION)
    request = AWSRequest(
        method=case.method,
        url=f"https://{HOST}{case.path}",
        params=case.params,  # type: ignore[arg-type]  # a list keeps order and repeats
        data=case.body,
        # Present, so botocore signs this hash instead of hashing the body again.
        headers={"X-Amz-Content-SHA256": case.payload_hash},
    )

    def sign() -> str:
        auth.add_auth(request)  # replaces its own X-Amz-Date and Authorization each time
        return str(request.headers["Authorization"])

    return sign


@contextmanager
def frozen_botocore_clock() -> Iterator[None]:
    """botocore's add_auth reads the wall clock; sign at NOW instead, as ours does."""
    module: Any = botocore.auth  # botocore-stubs do not declare get_current_datetime
    original = module.get_current_datetime

    def fixed(remove_tzinfo: bool = True) -> datetime.datetime:
        return NOW

    module.get_current_datetime = fixed
    try:
        yield
    finally:
        module.get_current_datetime = original


def best_us(function: Callable[[], object], *, repeat: int) -> float:
    """Best of ``repeat`` timed runs, in microseconds per call."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()  # enough calls for a run of at least 0.2 s
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs; the best counts")
    args = parser.parse_args()
    failed = False
    print(
        f"{'request':18} {'ours µs':>9} {'general µs':>11} {'botocore µs':>12} {'ratio':>7}"
        f"  same Authorization  {'SigV4a µs':>9}  SigV4a verifies"
    )
    with frozen_botocore_clock():
        for case in CASES:
            mine, general, theirs = ours(case), ours_general(case), botocores(case)
            asymmetric = ours_sigv4a(case)
            same = mine() == general() == theirs()
            verifies = sigv4a_verifies(asymmetric())
            failed |= not same or not verifies
            ours_us = best_us(mine, repeat=args.repeat)
            general_us = best_us(general, repeat=args.repeat)
            botocore_us = best_us(theirs, repeat=args.repeat)
            sigv4a_us = best_us(asymmetric, repeat=args.repeat)
            print(
                f"{case.name:18} {ours_us:9.2f} {general_us:11.2f} {botocore_us:12.2f} "
                f"{botocore_us / ours_us:6.1f}x  {'yes' if same else 'NO':18}  {sigv4a_us:9.2f}"
                f"  {'yes' if verifies else 'NO'}"
            )
            if not same:
                print(f"  ours:     {mine()}\n  general:  {general()}\n  botocore: {theirs()}")
    # Derived once and kept (per secret, day, region and service), however many signatures.
    print(f"signing keys derived: {sigv4.signing_key.cache_info().misses}")
    # SigV4a's key depends only on the key pair: one derivation for the whole run.
    print(f"SigV4a keys derived: {sigv4a.signing_key.cache_info().misses}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
