"""Who may use a route: client address allowlists, bearer/Basic credentials, webhook signatures.

Pure: no I/O and no clock (the caller passes ``now``). Every comparison of a secret or a
signature is constant-time, and no message ever quotes a secret or a signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Literal

from multidict import CIMultiDict, MultiMapping

from proxy.core.replay import ReplayGuard, ReplayMemory, Reservation
from proxy.errors import ConfigError, ForbiddenError, UnauthorizedError
from proxy.model import Inbound, Network

BEARER_CHALLENGE = 'Bearer realm="signing-proxy"'
BASIC_CHALLENGE = 'Basic realm="signing-proxy", charset="UTF-8"'
UNKNOWN_PEER = "unknown"  # the client address when the server cannot name the peer

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Unix seconds; the length bound keeps int() away from huge attacker-chosen digit strings.
_UNIX_TIME = re.compile(r"[0-9]{1,15}")

# GitHub and Shopify name each event (X-GitHub-Delivery, X-Shopify-Webhook-Id) and offer
# redelivery for about this long; an event that reached the function is refused again for as
# long, while one that failed may be redelivered.
EVENT_ID_WINDOW = 72 * 3600.0

Encoding = Literal["hex", "base64"]


class BodyCheck:
    """Fed every body chunk while the body is read (``update``); then ``verify()`` raises
    ForbiddenError when the signature does not match the body or was already used, and
    ``settle()`` says whether the function took the delivery."""

    def __init__(
        self,
        mac: hmac.HMAC,
        candidates: Sequence[bytes],
        *,
        route: str,
        replay_key: Callable[[bytes], Reservation] | None = None,
    ) -> None:
        self._mac = mac
        self._candidates = tuple(candidates)
        self._route = route
        self._replay_key = replay_key  # the digest -> this delivery's replay-guard entry
        self._reserved: Reservation | None = None

    def update(self, chunk: bytes) -> None:
        """Add the next chunk of the body to the signature being computed."""
        self._mac.update(chunk)

    def verify(self) -> None:
        """Raise ForbiddenError unless one received signature matches; call once, at the end."""
        digest = self._mac.digest()
        matched = False
        for candidate in self._candidates:  # every one compared: no early exit
            matched |= hmac.compare_digest(digest, candidate)
        if not matched:
            raise ForbiddenError("signature does not match the body", route=self._route)
        if self._replay_key is None:
            return
        reservation = self._replay_key(digest)
        if not reservation.take():
            raise ForbiddenError("replayed: this delivery was already accepted", route=self._route)
        self._reserved = reservation

    def settle(self, *, delivered: bool) -> None:
        """After the upstream answered: a delivery the function did not accept (not 2xx, or
        no answer) is forgotten again, so its retry is not mistaken for a replay."""
        if self._reserved is not None and not delivered:
            self._reserved.withdraw()
        self._reserved = None


class InboundCheck:
    """The inbound rules of one route, with the state they need (a replay guard)."""

    def __init__(self, rules: Inbound, *, route: str, memory: ReplayMemory | None = None) -> None:
        self._rules = rules
        self._route = route
        self._secret = _required_secret(rules, route)
        # Stripe and Slack sign a timestamp; GitHub and Shopify name each event. The generic
        # hmac preset has neither, so a resent body cannot be told from a replay: no guard.
        self._memory: ReplayMemory = memory if memory is not None else ReplayGuard()

    def check_peer(self, *, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client address (for logs); ForbiddenError when allow_ips does not hold it."""
        client = self._client_address(peer, forwarded_for)
        allowed = self._rules.allow_ips
        if allowed and not _within(client, allowed):
            raise ForbiddenError(
                f"client address {_show_address(client)} is not in this route's allow_ips",
                route=self._route,
            )
        return client

    def check_headers(self, headers: MultiMapping[str], *, now: float) -> BodyCheck | None:
        """Check the credential in the headers, before the body is read; for webhook types,
        the BodyCheck that finishes the job once the body has been fed to it."""
        kind = self._rules.type
        if kind == "bearer":
            self._check_bearer(headers)
        elif kind == "basic":
            self._check_basic(headers)
        elif kind == "stripe":
            return self._check_stripe(headers, now)
        elif kind == "slack":
            return self._check_slack(headers, now)
        elif kind == "github":
            by_event = self._by_event(headers, "X-GitHub-Delivery", now)
            return self._check_plain(headers, "X-Hub-Signature-256", "sha256=", "hex", by_event)
        elif kind == "shopify":
            by_event = self._by_event(headers, "X-Shopify-Webhook-Id", now)
            return self._check_plain(headers, "X-Shopify-Hmac-Sha256", "", "base64", by_event)
        elif kind == "hmac":
            header = self._rules.header or ""  # the config requires it for hmac
            return self._check_plain(headers, header, self._rules.prefix, self._rules.encoding)
        return None

    def strip_credentials(self, headers: CIMultiDict[str]) -> None:
        """Remove the bearer/Basic credential before forwarding. Webhook signature headers stay:
        the function may verify them again."""
        if self._rules.type in ("bearer", "basic"):
            headers.popall(self._credential_header(), None)

    def _client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        # X-Forwarded-For is believed only as far as trusted proxies vouch for it: walking from
        # the right, each trusted hop names the one before it; the first untrusted hop is the
        # client, whatever a client wrote further left.
        hops = [peer or UNKNOWN_PEER]
        hops += reversed([a.strip() for v in forwarded_for for a in v.split(",") if a.strip()])
        trusted = self._rules.trusted_proxies
        for hop in hops:
            if not _within(hop, trusted):
                return hop
        return hops[-1]  # every hop is a trusted proxy: the furthest one is all we know

    def _credential_header(self) -> str:
        # Only bearer may move its secret to another header (X-Api-Key style).
        custom = self._rules.header if self._rules.type == "bearer" else None
        return custom or "Authorization"

    def _check_bearer(self, headers: MultiMapping[str]) -> None:
        name = self._credential_header()
        value = self._single(headers, name)
        if name == "Authorization" and value is not None:
            scheme, _, value = value.partition(" ")
            value = value if scheme.lower() == "bearer" else None
        if value is None:
            raise self._unauthorized(f"this route needs a bearer token in {name}", BEARER_CHALLENGE)
        if not same_secret(wire_bytes(value), self._secret):
            raise self._forbidden("the bearer token is wrong")

    def _check_basic(self, headers: MultiMapping[str]) -> None:
        value = self._single(headers, "Authorization")
        scheme, _, token = (value or "").partition(" ")
        if scheme.lower() != "basic":
            raise self._unauthorized("this route needs HTTP Basic authentication", BASIC_CHALLENGE)
        decoded = _b64decode(token)
        if decoded is None or b":" not in decoded:
            raise self._forbidden("malformed Basic credentials (expected base64 of user:password)")
        user, _, password = decoded.partition(b":")
        username = (self._rules.username or "").encode()
        # Both compared, always: a short-circuit would tell whether the user name was right.
        if not (same_secret(user, username) & same_secret(password, self._secret)):
            raise self._forbidden("wrong user name or password")

    def _check_plain(
        self,
        headers: MultiMapping[str],
        name: str,
        prefix: str,
        encoding: Encoding,
        replay_key: Callable[[bytes], Reservation] | None = None,
    ) -> BodyCheck:
        value = self._require(headers, name)
        digest = _decode_digest(value.removeprefix(prefix), encoding)
        if not value.startswith(prefix) or digest is None:
            shape = "64 hex digits" if encoding == "hex" else "base64 of 32 bytes"
            raise self._forbidden(f"malformed {name} header (expected {prefix}<{shape}>)")
        return BodyCheck(self._mac(), [digest], route=self._route, replay_key=replay_key)

    def _by_event(
        self, headers: MultiMapping[str], id_header: str, now: float
    ) -> Callable[[bytes], Reservation]:
        """Replay-memory entries keyed by the signed body's digest, and by the event's id when
        the sender names one: the id is not signed, so a captured delivery sent again under a
        new id (or none) is still the same signature."""
        event = self._single(headers, id_header)

        def reservation(digest: bytes) -> Reservation:
            keys = [digest, f"{id_header}:{event}".encode()] if event else [digest]
            return Reservation(self._memory, keys, expires=now + EVENT_ID_WINDOW, now=now)

        return reservation

    def _check_stripe(self, headers: MultiMapping[str], now: float) -> BodyCheck:
        value = self._require(headers, "Stripe-Signature")
        fields = [item.strip().partition("=") for item in value.split(",")]
        stamps = [v for k, _, v in fields if k == "t"]
        # Stripe signs with every active secret (during a roll): any one v1 may be ours.
        digests = [_decode_digest(v, "hex") for k, _, v in fields if k == "v1"]
        candidates = [d for d in digests if d is not None]
        if len(stamps) != 1 or not _UNIX_TIME.fullmatch(stamps[0]):
            raise self._forbidden("malformed Stripe-Signature header (expected one t=<unix time>)")
        if not candidates:
            raise self._forbidden("malformed Stripe-Signature header (expected v1=<64 hex digits>)")
        return self._timestamped(stamps[0], f"{stamps[0]}.", candidates, now)

    def _check_slack(self, headers: MultiMapping[str], now: float) -> BodyCheck:
        stamp = self._require(headers, "X-Slack-Request-Timestamp")
        value = self._require(headers, "X-Slack-Signature")
        if not _UNIX_TIME.fullmatch(stamp):
            raise self._forbidden("malformed X-Slack-Request-Timestamp (expected unix time)")
        digest = _decode_digest(value.removeprefix("v0="), "hex") if value[:3] == "v0=" else None
        if digest is None:
            raise self._forbidden("malformed X-Slack-Signature (expected v0=<64 hex digits>)")
        return self._timestamped(stamp, f"v0:{stamp}:", [digest], now)

    def _timestamped(
        self, stamp: str, signed_prefix: str, candidates: list[bytes], now: float
    ) -> BodyCheck:
        sent = int(stamp)
        tolerance = self._rules.tolerance
        if abs(now - sent) > tolerance:
            raise self._forbidden(
                f"timestamp outside the tolerance of {tolerance:g} s (stale or from the future)"
            )
        mac = self._mac()
        mac.update(signed_prefix.encode())

        # Keyed by the verified digest, not the header text: re-ordering or padding the header
        # yields the same digest, so it cannot dodge the guard.
        def reservation(digest: bytes) -> Reservation:
            return Reservation(self._memory, [digest], expires=sent + tolerance, now=now)

        return BodyCheck(mac, candidates, route=self._route, replay_key=reservation)

    def _mac(self) -> hmac.HMAC:
        return hmac.new(self._secret, digestmod=hashlib.sha256)

    def _single(self, headers: MultiMapping[str], name: str) -> str | None:
        values = headers.getall(name, [])
        # Two copies leave it open which one a later hop believes: refuse rather than guess.
        if len(values) > 1:
            raise self._forbidden(f"the {name} header was sent more than once")
        return values[0] if values else None

    def _require(self, headers: MultiMapping[str], name: str) -> str:
        value = self._single(headers, name)
        if value is None:
            raise self._unauthorized(f"missing the {name} header")  # no challenge: not HTTP auth
        return value

    def _unauthorized(self, message: str, challenge: str | None = None) -> UnauthorizedError:
        return UnauthorizedError(message, challenge=challenge, route=self._route)

    def _forbidden(self, message: str) -> ForbiddenError:
        return ForbiddenError(message, route=self._route)


def _required_secret(rules: Inbound, route: str) -> bytes:
    # proxy.config.load guarantees all of this; checked again so that a hand-built Inbound fails at
    # start instead of open (an empty secret would match an empty bearer token).
    if rules.type is None:
        return b""
    secret = rules.secret.value if rules.secret is not None else b""
    missing = None if secret else "a secret"
    if rules.type == "hmac" and not rules.header:
        missing = "header"
    if rules.type == "basic" and not rules.username:
        missing = "username"
    if missing is not None:
        raise ConfigError(f"route {route!r} inbound", f"type {rules.type} needs {missing}")
    return secret


def wire_bytes(value: str) -> bytes:
    """A header value's bytes as they came (aiohttp decodes them as UTF-8 with
    surrogateescape)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no wire could have sent: matches nothing
        return b""


def same_secret(received: bytes, expected: bytes) -> bool:
    """A constant-time comparison. Hashing first makes the lengths equal, so the time taken
    does not reveal the secret's either."""
    return hmac.compare_digest(hashlib.sha256(received).digest(), hashlib.sha256(expected).digest())


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return None


def _decode_digest(text: str, encoding: Encoding) -> bytes | None:
    """The 32 raw bytes of a hex or base64 SHA-256 digest, or None when it is not one."""
    if encoding == "hex":
        return bytes.fromhex(text) if _HEX_SHA256.fullmatch(text) else None
    raw = _b64decode(text)
    return raw if raw is not None and len(raw) == hashlib.sha256().digest_size else None


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``text`` is, IPv4-mapped IPv6 as IPv4; None when it is not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; allow_ips name them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(text: str, networks: Sequence[Network]) -> bool:
    address = parse_ip(text)  # unparseable: inside nothing, so never allowed nor trusted
    return address is not None and any(address in network for network in networks)


def _show_address(text: str) -> str:
    # The text may come from X-Forwarded-For: quote and bound it before it reaches a message.
    return text if parse_ip(text) is not None else f"{text[:64]!r} (not an IP address)"
