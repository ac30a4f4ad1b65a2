"""What the page says of how an exchange was signed: the algorithm, the region or region set."""

from __future__ import annotations

from proxy.core import sigv4, sigv4a
from proxy.inspector.view import signing

SIGNED = {
    "method": "GET",
    "path": "/orders",
    "query": "id=7",
    "payload_hash": sigv4.EMPTY_SHA256,
    "host": "abc123xyz.lambda-web.global.on.aws",
    "service": "lambda",
    "access_key": "AKIDEXAMPLE",
    "secret_key": "secret",
    "token": None,
    "amz_date": "20261202T101500Z",
}


def test_a_sigv4_exchange_shows_its_region() -> None:
    """SigV4: the algorithm and the region of the credential scope."""
    signature, _ = sigv4.sign_minimal(region="eu-central-1", **SIGNED)  # type: ignore[arg-type]
    shown = signing(signature.string_to_sign, signature.canonical_request)
    assert shown == {"algorithm": "AWS4-HMAC-SHA256", "region": "eu-central-1", "region_set": None}


def test_a_sigv4a_exchange_shows_its_region_set() -> None:
    """SigV4a: the ECDSA algorithm and the signed X-Amz-Region-Set."""
    signature, _ = sigv4a.sign_minimal(region_set="*", **SIGNED)  # type: ignore[arg-type]
    shown = signing(signature.string_to_sign, signature.canonical_request)
    assert shown == {"algorithm": "AWS4-ECDSA-P256-SHA256", "region": None, "region_set": "*"}


def test_an_unsigned_exchange_shows_nothing() -> None:
    """Mode none or oac: nothing was signed by the proxy."""
    assert signing(None, None) is None
