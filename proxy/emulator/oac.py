"""CloudFront Origin Access Control: sign the origin request with CloudFront's own identity."""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from proxy.emulator.authorization import ALGORITHM, AMZ_DATE_FORMAT
from proxy.emulator.verify import Key, canonical_query

__all__ = ["OAC_REPLACED", "sign_as_oac"]

# CloudFront's signature replaces the viewer's; a leftover viewer token or date would be
# read as part of CloudFront's credentials.
OAC_REPLACED = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})


def sign_as_oac(
    headers: CIMultiDict[str],
    *,
    method: str,
    target: str,
    function_host: str,
    region: str,
    key_id: str,
    key: Key,
    now: datetime,
) -> None:
    """Add X-Amz-Date and Authorization to ``headers`` (already bound for the origin).

    Signs host, x-amz-date and, when the viewer sent it, x-amz-content-sha256. Without that
    header nothing vouches for the body, which is why Lambda refuses such a request.
    """
    amz_date = now.astimezone(UTC).strftime(AMZ_DATE_FORMAT)
    path, _, raw_query = target.partition("?")
    # botocore would sign a query found inside the URL un-encoded; give it the canonical form.
    query = canonical_query(raw_query)
    signable = AWSRequest(
        method=method,
        url=f"https://{function_host}{path}" + (f"?{query}" if query else ""),
    )
    signable.headers["host"] = function_host
    signable.headers["x-amz-date"] = amz_date
    content_sha256 = headers.get("x-amz-content-sha256")
    if content_sha256 is not None:
        # The viewer's hash is trusted as-is: that is what lets Lambda check the body.
        signable.headers["x-amz-content-sha256"] = content_sha256
    signable.context["timestamp"] = amz_date

    signer = SigV4Auth(Credentials(key_id, key.secret_access_key), "lambda", region)
    canonical = signer.canonical_request(signable)
    signature = signer.signature(signer.string_to_sign(signable, canonical), signable)
    signed_headers = signer.signed_headers(signer.headers_to_sign(signable))
    headers["X-Amz-Date"] = amz_date
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={signer.scope(signable)}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
