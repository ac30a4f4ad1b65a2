"""Check a request's SigV4a Authorization header (AWS4-ECDSA-P256-SHA256) as a Lambda Web
Function endpoint does.

Pure: no I/O, no clock (``now`` is passed in). The canonical request is SigV4's, built by
botocore's ``SigV4Auth`` as in ``verify.py``; the ECDSA check is ``cryptography``'s, against the
public key of the P-256 private key derived from the secret as aws-c-auth derives it. Nothing
here comes from the proxy's own SigV4a signer.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from botocore.credentials import Credentials
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from proxy.emulator.authorization import ASYMMETRIC_ALGORITHM, check_scope, check_skew
from proxy.emulator.verify import (
    INCOMPLETE_SIGNATURE,
    INVALID_SIGNATURE,
    SIGNATURE_MISMATCH,
    Key,
    ReferenceSigner,
    Verdict,
    check_body_and_target,
    find_key,
    first_header,
    read_authorization,
    reference_request,
    refusal,
)

__all__ = [
    "REGION_SET_HEADER",
    "derive_private_key",
    "derive_public_key",
    "region_set_covers",
    "verify_sigv4a_request",
]

REGION_SET_HEADER = "x-amz-region-set"

# The order n of P-256's base point; a derived candidate k0 must be at most n - 2 so that the
# private key k0 + 1 lies in [1, n - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# NIST SP 800-108 KDF in counter mode with HMAC-SHA256, as aws-c-auth's key_derivation.c: the
# HMAC key is "AWS4A" + secret; its input is counter i (32-bit, always 1) || label || 0x00 ||
# context (access key id || an 8-bit retry counter, from 1) || L (32-bit, 256).
_KDF_KEY_PREFIX = b"AWS4A"
_KDF_LABEL = ASYMMETRIC_ALGORITHM.encode("ascii")
_KDF_ITERATION = (1).to_bytes(4, "big")
_KDF_OUTPUT_BITS = (256).to_bytes(4, "big")
# aws-c-auth gives up after this many candidates; with k0 uniform, needing a second is ~2^-32.
_KDF_MAX_COUNTER = 254
# Derivation costs an HMAC and a scalar multiplication; a handful of key pairs sign in a test run.
_DERIVED_KEYS_CACHED = 64


def derive_private_key(*, access_key_id: str, secret_access_key: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key SigV4a signs with for this key pair (cached per key pair)."""
    return _derive(access_key_id, secret_access_key)


def derive_public_key(*, access_key_id: str, secret_access_key: str) -> ec.EllipticCurvePublicKey:
    """The public key that verifies SigV4a signatures made with this key pair."""
    return _derive(access_key_id, secret_access_key).public_key()


@functools.lru_cache(maxsize=_DERIVED_KEYS_CACHED)
def _derive(access_key_id: str, secret_access_key: str) -> ec.EllipticCurvePrivateKey:
    hmac_key = _KDF_KEY_PREFIX + secret_access_key.encode("utf-8")
    context = access_key_id.encode("utf-8")
    for counter in range(1, _KDF_MAX_COUNTER + 1):
        fixed_input = (
            _KDF_ITERATION
            + _KDF_LABEL
            + b"\x00"
            + context
            + counter.to_bytes(1, "big")
            + _KDF_OUTPUT_BITS
        )
        digest = hmac.new(hmac_key, fixed_input, hashlib.sha256).digest()
        candidate = int.from_bytes(digest, "big")
        if candidate <= _P256_ORDER - 2:
            return ec.derive_private_key(candidate + 1, ec.SECP256R1())
    # Unreachable in practice (see _KDF_MAX_COUNTER), but never loop or return a bad key.
    raise ValueError("no SigV4a key could be derived from this key pair")


def region_set_covers(region_set: str, region: str) -> bool:
    """Whether the comma-separated ``region_set`` (``*`` a wildcard, as in ``us-*``) names
    ``region``."""
    for entry in region_set.split(","):
        pattern = entry.strip().lower()
        if pattern and re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), region):
            return True
    return False


def verify_sigv4a_request(
    *,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body_sha256: str,
    keys: Mapping[str, Key],
    now: datetime,
    region: str,
    service: str = "lambda",
) -> Verdict:
    """Decide whether one received request is correctly signed with SigV4a for ``service``,
    with a region set that covers ``region`` (the region that serves the request).

    ``target`` is the raw request target as received (``/path?query``, still encoded).
    """
    signed = read_authorization(headers, algorithm=ASYMMETRIC_ALGORITHM)
    if isinstance(signed, Verdict):
        return signed
    parsed, amz_date = signed.parsed, signed.amz_date
    key_id = parsed.access_key_id
    region_set = first_header(headers, REGION_SET_HEADER)
    if region_set is None:
        message = "Authorization header requires existence of a 'X-Amz-Region-Set' header."
        return refusal(INCOMPLETE_SIGNATURE, message, access_key_id=key_id)
    if REGION_SET_HEADER not in parsed.signed_headers:
        message = "'X-Amz-Region-Set' must be a 'SignedHeader' in the AWS Authorization."
        return refusal(INCOMPLETE_SIGNATURE, message, access_key_id=key_id)
    key = find_key(keys, key_id=key_id, headers=headers, now=now)
    if isinstance(key, Verdict):
        return key

    problem = check_scope(parsed, amz_date=amz_date, region=None, service=service)
    problem = problem or check_skew(signed_at=signed.signed_at, now=now)
    problem = problem or check_body_and_target(
        target=target, headers=headers, body_sha256=body_sha256
    )
    if problem is None and not region_set_covers(region_set, region):
        problem = (
            f"The region set '{region_set}' in X-Amz-Region-Set does not include {region}, "
            "the region that received this request."
        )
    if problem is not None:
        return refusal(INVALID_SIGNATURE, problem, access_key_id=key_id)

    request = reference_request(method=method, target=target, headers=headers, amz_date=amz_date)
    signer = ReferenceSigner(
        Credentials(key_id, key.secret_access_key, key.session_token),
        region="",  # SigV4's canonical request names no region; only its scope would
        service=service,
        signed_names=parsed.signed_headers,
        body_sha256=body_sha256,
    )
    canonical = signer.canonical_request(request)
    scope = f"{parsed.scope_date}/{parsed.scope_service}/{parsed.terminator}"
    string_to_sign = "\n".join(
        [
            ASYMMETRIC_ALGORITHM,
            amz_date,
            scope,
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    public_key = derive_public_key(access_key_id=key_id, secret_access_key=key.secret_access_key)
    if not _signature_verifies(public_key, parsed.signature, string_to_sign):
        message = SIGNATURE_MISMATCH.format(canonical=canonical, string_to_sign=string_to_sign)
        return refusal(
            INVALID_SIGNATURE,
            message,
            access_key_id=key_id,
            canonical_request=canonical,
            string_to_sign=string_to_sign,
        )
    return Verdict(
        ok=True,
        error_type=None,
        message="Signature verified.",
        access_key_id=key_id,
        canonical_request=canonical,
        string_to_sign=string_to_sign,
        algorithm=ASYMMETRIC_ALGORITHM,
        region_set=region_set,
    )


def _signature_verifies(
    public_key: ec.EllipticCurvePublicKey, signature_hex: str, string_to_sign: str
) -> bool:
    """The hex of a DER ECDSA signature over SHA-256 of the string to sign, checked."""
    try:
        signature = bytes.fromhex(signature_hex)
        public_key.verify(signature, string_to_sign.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        # Not hex, not DER, or not made with this key over this request: all the same answer.
        return False
    return True
