"""Parse a SigV4 (or SigV4a) Authorization header and judge its scope and date, with AWS's own
messages.

Each check returns None when it passes, or the message AWS would send; the caller picks the
error type. Pure: the clock is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "ALGORITHM",
    "AMZ_DATE_FORMAT",
    "ASYMMETRIC_ALGORITHM",
    "MAX_SKEW",
    "ParsedAuthorization",
    "check_scope",
    "check_skew",
    "parse_amz_date",
    "parse_authorization",
]

ALGORITHM = "AWS4-HMAC-SHA256"
# SigV4a: ECDSA P-256 over SHA-256; its credential scope names no region.
ASYMMETRIC_ALGORITHM = "AWS4-ECDSA-P256-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=5)

_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    """The parts of ``AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…``.

    ``scope_region`` is None for SigV4a, whose scope is ``keyid/date/service/aws4_request``.
    """

    algorithm: str
    access_key_id: str
    scope_date: str
    scope_region: str | None
    scope_service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str, *, algorithm: str = ALGORITHM) -> ParsedAuthorization | str:
    """The parsed header, or the IncompleteSignatureException message for a malformed one.

    ``algorithm`` is the one expected: ALGORITHM, or ASYMMETRIC_ALGORITHM for SigV4a.
    """
    given, _, rest = value.strip().partition(" ")
    if given != algorithm:
        return f"Unsupported AWS 'algorithm': '{given}'. Expected '{algorithm}'."
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, param = part.strip().partition("=")
        if sep and name not in params:
            params[name] = param.strip()
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    if missing:
        return " ".join(missing)

    credential = params["Credential"]
    scope = credential.split("/")
    regional = algorithm == ALGORITHM
    if len(scope) != (5 if regional else 4):
        shape = "5 slash-delimited elements, e.g. keyid/date/region/service/term"
        if not regional:
            shape = "4 slash-delimited elements, e.g. keyid/date/service/term"
        return f"Credential must have exactly {shape}, got '{credential}'"
    names = (name.strip().lower() for name in params["SignedHeaders"].split(";"))
    access_key_id, scope_date, *scope_region, scope_service, terminator = scope
    return ParsedAuthorization(
        algorithm=algorithm,
        access_key_id=access_key_id,
        scope_date=scope_date,
        scope_region=scope_region[0] if scope_region else None,
        scope_service=scope_service,
        terminator=terminator,
        signed_headers=tuple(name for name in names if name),
        signature=params["Signature"],
    )


def parse_amz_date(value: str) -> datetime | str:
    """X-Amz-Date as an aware UTC datetime, or the IncompleteSignatureException message."""
    if _AMZ_DATE_RE.fullmatch(value):
        try:
            return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            pass  # the right shape but no such date (month 13): same answer as a bad shape
    return (
        f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
        "See http://en.wikipedia.org/wiki/ISO_8601"
    )


def check_scope(
    parsed: ParsedAuthorization, *, amz_date: str, region: str | None, service: str
) -> str | None:
    """The InvalidSignatureException message when the credential scope is wrong, else None.

    A SigV4a scope names no region (its region set is checked elsewhere): pass ``region=None``.
    """
    if parsed.terminator != "aws4_request":
        return (
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{parsed.terminator}'."
        )
    if parsed.scope_region != region:
        return "Credential should be scoped to a valid region."
    if parsed.scope_service != service:
        return f"Credential should be scoped to correct service: '{service}'."
    if parsed.scope_date != amz_date[:8]:
        return (
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{parsed.scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    return None


def check_skew(*, signed_at: datetime, now: datetime) -> str | None:
    """The InvalidSignatureException message when X-Amz-Date is over 5 minutes off, else None."""
    # A naive clock is taken to be UTC, as X-Amz-Date always is.
    now = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)
    if signed_at < now - MAX_SKEW:
        return (
            f"Signature expired: {_amz(signed_at)} is now earlier than "
            f"{_amz(now - MAX_SKEW)} ({_amz(now)} - 5 min.)"
        )
    if signed_at > now + MAX_SKEW:
        return (
            f"Signature not yet current: {_amz(signed_at)} is still later than "
            f"{_amz(now + MAX_SKEW)} ({_amz(now)} + 5 min.)"
        )
    return None


def _amz(moment: datetime) -> str:
    return moment.strftime(AMZ_DATE_FORMAT)
