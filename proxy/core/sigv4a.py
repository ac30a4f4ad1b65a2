"""Pure AWS Signature Version 4a (AWS4-ECDSA-P256-SHA256): the multi-region, asymmetric signer.

SigV4a signs the same canonical request as SigV4, with two differences: the credential scope
has no region (``<date>/<service>/aws4_request``; the regions go in ``X-Amz-Region-Set``), and
the signature is ECDSA over P-256 with a key derived from the secret access key, not an HMAC.
As in ``sigv4``, nothing here does I/O or reads a clock: the caller passes the time and one
credentials snapshot. ECDSA signatures are randomised, so unlike SigV4 the same inputs give a
different (equally valid) signature each time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from proxy.core.sigv4 import Signature, canonical, minimal_canonical

ALGORITHM = "AWS4-ECDSA-P256-SHA256"
# The order N of P-256's base point. A KDF candidate k0 is kept when k0 <= N - 2, so that the
# private key k0 + 1 lies in [1, N - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_LARGEST_CANDIDATE = _P256_ORDER - 2
# aws-c-auth's bound: a candidate fails with probability below 2**-32, so 254 in a row never do.
_MAX_COUNTER = 254
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # made once: it is the same for every signature


def sign(
    *,
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    service: str,
    amz_date: str,
    normalize: bool = True,
) -> Signature:
    """Sign one request; ``headers`` are exactly the headers to sign, ``host`` among them and,
    for header signing, ``x-amz-region-set`` (a presigned URL carries it in ``query`` instead).

    ``path`` and ``query`` are the wire form (still percent-encoded, no ``?``). ``normalize``
    resolves dot segments and empty segments as every service but S3 does.
    """
    canonical_request, signed_headers = canonical(
        method, path, query, headers, payload_hash, normalize=normalize
    )
    return _finish(canonical_request, signed_headers, access_key, secret_key, service, amz_date)


def sign_minimal(
    *,
    method: str,
    path: str,
    query: str,
    payload_hash: str,
    host: str,
    region_set: str,
    service: str,
    access_key: str,
    secret_key: str,
    token: str | None,
    amz_date: str,
) -> tuple[Signature, dict[str, str]]:
    """Sign what ``sigv4.sign_minimal`` signs plus ``x-amz-region-set`` (``region_set``: ``*``
    or regions joined by commas, e.g. ``us-east-1,eu-west-1``). Returns the signature and the
    headers to send with the request (besides Host).

    The same result as ``sign`` with those five headers (a test holds them equal), built
    directly: this runs for every request.
    """
    canonical_request, signed_headers, sent = minimal_canonical(
        method, path, query, payload_hash, host, token, amz_date, region_set
    )
    signature = _finish(
        canonical_request, signed_headers, access_key, secret_key, service, amz_date
    )
    sent["Authorization"] = signature.authorization
    return signature, sent


def _finish(
    canonical_request: str,
    signed_headers: str,
    access_key: str,
    secret_key: str,
    service: str,
    amz_date: str,
) -> Signature:
    """The string to sign, the signature (hex of the DER ECDSA signature) and Authorization."""
    scope = f"{amz_date[:8]}/{service}/aws4_request"
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
    # ECDSA over SHA-256(string to sign), as aws-c-auth signs; the DER form goes on the wire.
    der = signing_key(access_key, secret_key).sign(string_to_sign.encode(), _ECDSA_SHA256)
    authorization = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={der.hex()}"
    )
    return Signature(authorization, signed_headers, canonical_request, string_to_sign)


def public_key(access_key: str, secret_key: str) -> tuple[int, int]:
    """The (x, y) coordinates of the P-256 public key the credentials derive: what a verifier
    (AWS, or the inspector) checks a SigV4a signature against."""
    numbers = signing_key(access_key, secret_key).public_key().public_numbers()
    return numbers.x, numbers.y


@lru_cache(maxsize=64)
def signing_key(access_key: str, secret_key: str) -> ec.EllipticCurvePrivateKey:
    """The derived private key. Unlike SigV4's it does not depend on the day, region or
    service, only on the key pair, so it is derived once per credentials and kept: the
    derivation (HMACs and a scalar multiplication) costs more than a signature."""
    return ec.derive_private_key(_private_value(access_key, secret_key), ec.SECP256R1())


def _private_value(access_key: str, secret_key: str) -> int:
    """The private scalar, as aws-c-auth derives it: NIST SP 800-108 KDF in counter mode with
    HMAC-SHA256, keyed with ``"AWS4A" + secret``, one 256-bit block.

    The input to the HMAC is ``i || Label || 0x00 || Context || L``: the block counter
    ``i = 1`` (32-bit big-endian), the label ``AWS4-ECDSA-P256-SHA256``, the context (the
    access key id and a one-byte retry counter), and the output length ``L = 256`` (32-bit
    big-endian). The first retry counter (1 to 254) whose output ``k0`` is at most N - 2
    gives the private key ``k0 + 1``.
    """
    key = f"AWS4A{secret_key}".encode()
    prefix = b"\x00\x00\x00\x01" + ALGORITHM.encode() + b"\x00" + access_key.encode()
    for counter in range(1, _MAX_COUNTER + 1):
        block = hmac.digest(key, prefix + bytes((counter,)) + b"\x00\x00\x01\x00", "sha256")
        candidate = int.from_bytes(block, "big")
        if candidate <= _LARGEST_CANDIDATE:
            return candidate + 1
    # Unreachable in practice (probability about 2**-8128), but never loop or sign with junk.
    raise ValueError(f"no SigV4a key in {_MAX_COUNTER} KDF rounds for access key {access_key}")
