"""Inbound checks: address allowlists, bearer and Basic credentials, webhook signatures, replays.

Expected signatures are computed here from each provider's documented algorithm, with code that
shares nothing with proxy/inbound.py.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.core.inbound import InboundCheck
from proxy.core.replay import MAX_REMEMBERED, ReplayGuard
from proxy.errors import ConfigError, ForbiddenError, ProxyError, UnauthorizedError
from proxy.model import Inbound, Secret
from tests.webhooks import (
    B64,
    GITHUB_PUSH,
    HEX,
    NOW,
    PRESETS,
    SECRET,
    STRIPE,
    STRIPE_EVENT,
    TIMED,
    TOLERANCE,
    WRONG,
    Headers,
    Preset,
    hmac_sha256,
    rules_for,
)

ROUTE = "hooks"


def ids(presets: list[Preset]) -> list[str]:
    return [p.name for p in presets]


def chunks(body: bytes) -> Iterator[bytes]:
    """The body in uneven pieces, as a socket delivers it (one of them empty)."""
    cuts = [min(cut, len(body)) for cut in (0, 1, 1, 14, 78, 333)] + [len(body)]
    for start, end in itertools.pairwise(cuts):
        yield body[start:end]


def deliver(
    check: InboundCheck,
    headers: Headers,
    body: bytes,
    *,
    now: float = NOW,
    delivered: bool = True,
) -> None:
    """Run the checks as the server does: headers first, then the body chunk by chunk, then
    the upstream's verdict (``delivered``: it answered 2xx)."""
    body_check = check.check_headers(CIMultiDict(headers), now=now)
    if body_check is not None:
        for chunk in chunks(body):
            body_check.update(chunk)
        body_check.verify()
        body_check.settle(delivered=delivered)


def checker(rules: Inbound) -> InboundCheck:
    return InboundCheck(rules, route=ROUTE)


# -- webhook presets -------------------------------------------------------------------------


def test_chunks_cover_the_body_exactly() -> None:
    """The test helper feeds every byte once, in order."""
    assert b"".join(chunks(GITHUB_PUSH)) == GITHUB_PUSH
    assert len([c for c in chunks(GITHUB_PUSH) if c]) > 3


@pytest.mark.parametrize("preset", PRESETS, ids=ids(PRESETS))
def test_valid_signature_passes(preset: Preset) -> None:
    """A delivery signed with the route's secret passes, its body fed in pieces."""
    deliver(checker(preset.rules), preset.sign(SECRET, preset.body, NOW), preset.body)


@pytest.mark.parametrize("preset", PRESETS, ids=ids(PRESETS))
def test_wrong_secret_is_forbidden(preset: Preset) -> None:
    """A signature made with another secret is refused once the body has been read."""
    with pytest.raises(ForbiddenError, match="signature does not match the body"):
        deliver(checker(preset.rules), preset.sign(WRONG, preset.body, NOW), preset.body)


@pytest.mark.parametrize("preset", PRESETS, ids=ids(PRESETS))
def test_tampered_body_is_forbidden(preset: Preset) -> None:
    """A genuine signature over a body edited in transit is refused."""
    old, new = preset.tamper
    tampered = preset.body.replace(old, new)
    assert tampered != preset.body
    with pytest.raises(ForbiddenError, match="signature does not match the body"):
        deliver(checker(preset.rules), preset.sign(SECRET, preset.body, NOW), tampered)


MISSING = [
    pytest.param(p, name, id=f"{p.name}-without-{name}") for p in PRESETS for name in p.required
]


@pytest.mark.parametrize(("preset", "missing"), MISSING)
def test_missing_signature_header_is_unauthorized(preset: Preset, missing: str) -> None:
    """Without a required header the answer is 401, before the body is read, no challenge."""
    headers = [(k, v) for k, v in preset.sign(SECRET, preset.body, NOW) if k != missing]
    with pytest.raises(UnauthorizedError, match=missing) as caught:
        checker(preset.rules).check_headers(CIMultiDict(headers), now=NOW)
    assert caught.value.challenge is None


MALFORMED = [
    pytest.param(p, headers, id=f"{p.name}-{case}")
    for p in PRESETS
    for case, headers in p.malformed.items()
]


@pytest.mark.parametrize(("preset", "headers"), MALFORMED)
def test_malformed_signature_header_is_forbidden(preset: Preset, headers: Headers) -> None:
    """A header of the wrong shape is refused with 403 before the body is read."""
    with pytest.raises(ForbiddenError):
        checker(preset.rules).check_headers(CIMultiDict(headers), now=NOW)


def test_github_documented_example() -> None:
    """GitHub's documented test vector verifies (docs: validating webhook deliveries)."""
    rules = Inbound(type="github", secret=Secret(b"It's a Secret to Everybody", "env X"))
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    deliver(checker(rules), [("X-Hub-Signature-256", sig)], b"Hello, World!")


def test_slack_documented_example() -> None:
    """Slack's documented test vector verifies (docs: verifying requests from Slack)."""
    rules = Inbound(type="slack", secret=Secret(b"8f742231b10e8888abcd99yyyzzz85a5", "env X"))
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = [
        ("X-Slack-Request-Timestamp", "1531420618"),
        (
            "X-Slack-Signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ]
    deliver(checker(rules), headers, body, now=1531420618 + 60)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("t={t},v1={bad},v1={good}", id="second-v1-matches"),
        pytest.param("t={t},v1={bad},v1={bad},v1={good},v0={bad}", id="third-v1-and-v0"),
        pytest.param("v1={good}, t={t}, scheme=unknown", id="reordered-spaces-unknown-key"),
        pytest.param("t={t},v1=not-hex,v1={good}", id="malformed-v1-beside-a-good-one"),
    ],
)
def test_stripe_accepts_any_matching_v1(header: str) -> None:
    """Stripe sends one v1 per active secret during a roll; any one matching is enough."""
    good = hmac_sha256(SECRET, f"{NOW}.".encode() + STRIPE_EVENT).hex()
    bad = hmac_sha256(WRONG, f"{NOW}.".encode() + STRIPE_EVENT).hex()
    value = header.format(t=NOW, good=good, bad=bad)
    deliver(checker(STRIPE.rules), [("Stripe-Signature", value)], STRIPE_EVENT)


def test_stripe_v0_alone_is_not_enough() -> None:
    """A valid-looking v0 never stands in for v1."""
    v0 = hmac_sha256(SECRET, f"{NOW}.".encode() + STRIPE_EVENT).hex()
    with pytest.raises(ForbiddenError, match="v1="):
        deliver(checker(STRIPE.rules), [("Stripe-Signature", f"t={NOW},v0={v0}")], b"")


# -- timestamps and replays -------------------------------------------------------------------

TIMING = [
    pytest.param(-TOLERANCE, True, id="exactly-tolerance-old"),
    pytest.param(+TOLERANCE, True, id="exactly-tolerance-ahead"),
    pytest.param(-TOLERANCE - 1, False, id="stale"),
    pytest.param(+TOLERANCE + 1, False, id="from-the-future"),
    pytest.param(-86_400 * 365, False, id="a-year-old"),
]


@pytest.mark.parametrize("preset", TIMED, ids=ids(TIMED))
@pytest.mark.parametrize(("offset", "accepted"), TIMING)
def test_timestamp_tolerance(preset: Preset, offset: float, accepted: bool) -> None:
    """A signed timestamp up to `tolerance` seconds away passes; further off either way is 403."""
    t = int(NOW + offset)
    headers = preset.sign(SECRET, preset.body, t)
    if accepted:
        deliver(checker(preset.rules), headers, preset.body)
    else:
        with pytest.raises(ForbiddenError, match="timestamp outside the tolerance"):
            checker(preset.rules).check_headers(CIMultiDict(headers), now=NOW)


@pytest.mark.parametrize("preset", TIMED, ids=ids(TIMED))
def test_replay_within_the_window_is_forbidden(preset: Preset) -> None:
    """The same signed delivery accepted once is refused as a replay until its window ends."""
    check = checker(preset.rules)
    headers = preset.sign(SECRET, preset.body, NOW)
    deliver(check, headers, preset.body)
    for later in (NOW + 1, NOW + TOLERANCE):  # up to and including the tolerance edge
        with pytest.raises(ForbiddenError, match="replayed: this delivery was already accepted"):
            deliver(check, headers, preset.body, now=later)


@pytest.mark.parametrize("preset", TIMED, ids=ids(TIMED))
def test_after_the_window_the_timestamp_check_takes_over(preset: Preset) -> None:
    """Past the window the guard has let go; the old delivery is refused as stale and a fresh
    signature of the same body is accepted."""
    check = checker(preset.rules)
    deliver(check, preset.sign(SECRET, preset.body, NOW), preset.body)
    later = NOW + TOLERANCE + 1
    with pytest.raises(ForbiddenError, match="timestamp outside the tolerance"):
        deliver(check, preset.sign(SECRET, preset.body, NOW), preset.body, now=later)
    deliver(check, preset.sign(SECRET, preset.body, int(later)), preset.body, now=later)


def test_rewritten_stripe_header_is_still_a_replay() -> None:
    """Re-ordering, padding or upper-casing a captured header does not dodge the replay guard."""
    check = checker(STRIPE.rules)
    good = hmac_sha256(SECRET, f"{NOW}.".encode() + STRIPE_EVENT).hex()
    deliver(check, [("Stripe-Signature", f"t={NOW},v1={good}")], STRIPE_EVENT)
    rewritten = f"v1={good.upper()}, t={NOW},x=1,v1={'0' * 64}"
    with pytest.raises(ForbiddenError, match="replayed"):
        deliver(check, [("Stripe-Signature", rewritten)], STRIPE_EVENT, now=NOW + 5)


@pytest.mark.parametrize("preset", TIMED, ids=ids(TIMED))
def test_forgery_does_not_poison_the_guard(preset: Preset) -> None:
    """Only accepted signatures are remembered: a failed attempt does not block the real one."""
    check = checker(preset.rules)
    with pytest.raises(ForbiddenError, match="does not match"):
        deliver(check, preset.sign(SECRET, preset.body, NOW), preset.body + b" ")
    deliver(check, preset.sign(SECRET, preset.body, NOW), preset.body)


GENERIC = [p for p in PRESETS if p.rules.type == "hmac"]
NAMED = [p for p in PRESETS if p.name in ("github", "shopify")]
EVENT_ID = {"github": "X-GitHub-Delivery", "shopify": "X-Shopify-Webhook-Id"}


@pytest.mark.parametrize("preset", GENERIC, ids=ids(GENERIC))
def test_generic_hmac_accepts_a_resent_body(preset: Preset) -> None:
    """Without a timestamp or an event id a resent body cannot be told from a replay: it passes."""
    check = checker(preset.rules)
    headers = preset.sign(SECRET, preset.body, NOW)
    deliver(check, headers, preset.body)
    deliver(check, headers, preset.body, now=NOW + 86_400)


@pytest.mark.parametrize("with_id", [True, False], ids=["event-id", "no-event-id"])
@pytest.mark.parametrize("preset", NAMED, ids=ids(NAMED))
def test_named_event_accepted_once_is_refused_as_a_replay(preset: Preset, with_id: bool) -> None:
    """A GitHub or Shopify delivery the function took is refused again (by its signature, and
    by its event id) for three days; sent again under another event id it is still refused."""
    check = checker(preset.rules)
    event = [(EVENT_ID[preset.name], "72d4c8b0-1f2e-11ef-9a3b-6f1c2d3e4f50")] if with_id else []
    headers = [*preset.sign(SECRET, preset.body, NOW), *event]
    deliver(check, headers, preset.body)
    with pytest.raises(ForbiddenError, match="replayed"):
        deliver(check, headers, preset.body, now=NOW + 71 * 3600)
    deliver(check, headers, preset.body, now=NOW + 73 * 3600)  # the window has passed
    if with_id:
        other = [*preset.sign(SECRET, preset.body, NOW), (EVENT_ID[preset.name], "another")]
        with pytest.raises(ForbiddenError, match="replayed"):
            deliver(check, other, preset.body, now=NOW + 73 * 3600 + 1)


@pytest.mark.parametrize("preset", [*NAMED, *TIMED], ids=ids([*NAMED, *TIMED]))
def test_delivery_the_function_did_not_take_may_be_retried(preset: Preset) -> None:
    """When the upstream did not answer 2xx the delivery is forgotten, so a retry gets through."""
    check = checker(preset.rules)
    headers = preset.sign(SECRET, preset.body, NOW)
    deliver(check, headers, preset.body, delivered=False)
    deliver(check, headers, preset.body, now=NOW + 1)
    with pytest.raises(ForbiddenError, match="replayed"):
        deliver(check, headers, preset.body, now=NOW + 2)


def test_guard_forgets_expired_entries_on_insert() -> None:
    """An entry whose window has passed is pruned by the next insert."""
    guard = ReplayGuard()
    assert guard.take([b"a"], expires=100.0, now=0.0)
    assert guard.take([b"b"], expires=200.0, now=0.0)
    assert not guard.take([b"a"], expires=100.0, now=100.0)  # at the edge: still a replay
    assert guard.take([b"c"], expires=300.0, now=150.0)
    assert len(guard) == 2
    assert guard.take([b"a"], expires=400.0, now=150.0)


def test_guard_drops_the_oldest_beyond_its_capacity() -> None:
    """Over capacity the entry that expires first goes; memory stays bounded."""
    guard = ReplayGuard(capacity=3)
    for key, expires in [(b"late", 300.0), (b"early", 100.0), (b"mid", 200.0), (b"new", 400.0)]:
        assert guard.take([key], expires=expires, now=0.0)
    assert len(guard) == 3
    assert guard.take([b"early"], expires=100.0, now=0.0)  # forgotten
    assert not guard.take([b"late"], expires=300.0, now=0.0)


def test_guard_default_capacity() -> None:
    """The default guard holds at most 100_000 entries."""
    guard = ReplayGuard()
    for i in range(MAX_REMEMBERED + 10):
        guard.take([i.to_bytes(4, "big")], expires=1e9 + i, now=0.0)
    assert MAX_REMEMBERED == 100_000
    assert len(guard) == MAX_REMEMBERED


# -- bearer and Basic ---------------------------------------------------------------------------

TOKEN = SECRET.decode()
BEARER = rules_for("bearer")
API_KEY = rules_for("bearer", header="X-Api-Key")
BEARER_CASES = [
    pytest.param(BEARER, [("Authorization", f"Bearer {TOKEN}")], None, id="valid"),
    pytest.param(BEARER, [("authorization", f"bearer {TOKEN}")], None, id="lower-case"),
    pytest.param(BEARER, [("Authorization", f"BEARER {TOKEN}")], None, id="upper-case-scheme"),
    pytest.param(BEARER, [], UnauthorizedError, id="missing"),
    pytest.param(BEARER, [("Authorization", f"Token {TOKEN}")], UnauthorizedError, id="scheme"),
    pytest.param(BEARER, [("Authorization", "Basic Y2k6eA==")], UnauthorizedError, id="basic"),
    pytest.param(BEARER, [("Authorization", TOKEN)], UnauthorizedError, id="no-scheme"),
    pytest.param(BEARER, [("X-Api-Key", TOKEN)], UnauthorizedError, id="other-header"),
    pytest.param(BEARER, [("Authorization", "Bearer nope")], ForbiddenError, id="wrong"),
    pytest.param(BEARER, [("Authorization", "Bearer ")], ForbiddenError, id="empty-token"),
    pytest.param(BEARER, [("Authorization", f"Bearer {TOKEN[:-1]}")], ForbiddenError, id="prefix"),
    pytest.param(BEARER, [("Authorization", f"Bearer {TOKEN}x")], ForbiddenError, id="longer"),
    pytest.param(BEARER, [("Authorization", f"Bearer  {TOKEN}")], ForbiddenError, id="2-spaces"),
    pytest.param(BEARER, [("Authorization", "Bearer \udcff\ud800")], ForbiddenError, id="bytes"),
    pytest.param(
        BEARER,
        [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer other")],
        ForbiddenError,
        id="sent-twice",
    ),
    pytest.param(API_KEY, [("X-Api-Key", TOKEN)], None, id="api-key"),
    pytest.param(API_KEY, [("x-api-key", TOKEN)], None, id="api-key-any-case"),
    pytest.param(API_KEY, [], UnauthorizedError, id="api-key-missing"),
    pytest.param(
        API_KEY, [("Authorization", f"Bearer {TOKEN}")], UnauthorizedError, id="api-key-elsewhere"
    ),
    pytest.param(API_KEY, [("X-Api-Key", "nope")], ForbiddenError, id="api-key-wrong"),
    pytest.param(API_KEY, [("X-Api-Key", f"Bearer {TOKEN}")], ForbiddenError, id="api-key-scheme"),
]


@pytest.mark.parametrize(("rules", "headers", "error"), BEARER_CASES)
def test_bearer(rules: Inbound, headers: Headers, error: type[ProxyError] | None) -> None:
    """Bearer tokens: missing or another scheme is 401 with a challenge, wrong is 403."""
    check = checker(rules)
    if error is None:
        assert check.check_headers(CIMultiDict(headers), now=NOW) is None
        return
    with pytest.raises(error) as caught:
        check.check_headers(CIMultiDict(headers), now=NOW)
    if isinstance(caught.value, UnauthorizedError):
        assert caught.value.challenge == 'Bearer realm="signing-proxy"'


def test_bearer_token_with_non_ascii_characters() -> None:
    """A UTF-8 token matches as aiohttp hands it over (decoded with surrogateescape)."""
    rules = Inbound(type="bearer", secret=Secret("pässwörd-✓".encode(), "env X"))
    wire = "Bearer pässwörd-✓".encode().decode("utf-8", "surrogateescape")
    assert checker(rules).check_headers(CIMultiDict([("Authorization", wire)]), now=NOW) is None


def basic(raw: bytes) -> Headers:
    return [("Authorization", "Basic " + base64.b64encode(raw).decode())]


BASIC = rules_for("basic", username="ci")
BASIC_CASES = [
    pytest.param(BASIC, basic(b"ci:" + SECRET), None, id="valid"),
    pytest.param(
        BASIC, [("Authorization", "basic " + basic(b"ci:" + SECRET)[0][1][6:])], None, id="scheme"
    ),
    pytest.param(BASIC, basic(b"root:" + SECRET), ForbiddenError, id="wrong-user"),
    pytest.param(BASIC, basic(b"ci:hunter2"), ForbiddenError, id="wrong-password"),
    pytest.param(BASIC, basic(b"root:hunter2"), ForbiddenError, id="both-wrong"),
    pytest.param(BASIC, basic(b"ci" + SECRET), ForbiddenError, id="no-colon"),
    pytest.param(BASIC, basic(b":" + SECRET), ForbiddenError, id="empty-user"),
    pytest.param(BASIC, basic(b"\xff\xfe:\xc3\x28"), ForbiddenError, id="non-utf8-bytes"),
    pytest.param(BASIC, [("Authorization", "Basic !!!not base64")], ForbiddenError, id="bad-b64"),
    pytest.param(BASIC, [("Authorization", "Basic Y2k6eA")], ForbiddenError, id="no-padding"),
    pytest.param(BASIC, [("Authorization", "Basic \udcff\udcfe")], ForbiddenError, id="raw-bytes"),
    pytest.param(BASIC, [], UnauthorizedError, id="missing"),
    pytest.param(BASIC, [("Authorization", f"Bearer {TOKEN}")], UnauthorizedError, id="bearer"),
    pytest.param(BASIC, [("Authorization", "Basic")], ForbiddenError, id="scheme-only"),
    pytest.param(
        rules_for("basic", username="jürgen"),
        basic("jürgen:".encode() + SECRET),
        None,
        id="utf8-user",
    ),
    pytest.param(
        Inbound(type="basic", username="ci", secret=Secret(b"pa:ss", "env X")),
        basic(b"ci:pa:ss"),
        None,
        id="colon-in-password",
    ),
]


@pytest.mark.parametrize(("rules", "headers", "error"), BASIC_CASES)
def test_basic(rules: Inbound, headers: Headers, error: type[ProxyError] | None) -> None:
    """HTTP Basic: missing or another scheme is 401 with a challenge; malformed or wrong is 403."""
    check = checker(rules)
    if error is None:
        assert check.check_headers(CIMultiDict(headers), now=NOW) is None
        return
    with pytest.raises(error) as caught:
        check.check_headers(CIMultiDict(headers), now=NOW)
    if isinstance(caught.value, UnauthorizedError):
        assert caught.value.challenge == 'Basic realm="signing-proxy", charset="UTF-8"'


# -- client addresses ---------------------------------------------------------------------------


def nets(*texts: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)


OFFICE = Inbound(allow_ips=nets("198.51.100.0/24", "2001:db8::/32"))
TUNNEL = Inbound(allow_ips=nets("198.51.100.0/24"), trusted_proxies=nets("127.0.0.1", "10.0.0.0/8"))
OPEN = Inbound(trusted_proxies=nets("127.0.0.1", "10.0.0.0/8"))
PEER_CASES = [
    pytest.param(OFFICE, "198.51.100.7", [], "198.51.100.7", id="v4-inside"),
    pytest.param(OFFICE, "2001:db8::1", [], "2001:db8::1", id="v6-inside"),
    pytest.param(OFFICE, "::ffff:198.51.100.7", [], "::ffff:198.51.100.7", id="v4-mapped"),
    pytest.param(OFFICE, "192.0.2.1", [], None, id="v4-outside"),
    pytest.param(OFFICE, "2001:db9::1", [], None, id="v6-outside"),
    pytest.param(OFFICE, "::1", [], None, id="loopback-outside"),
    pytest.param(OFFICE, None, [], None, id="unknown-peer"),
    pytest.param(OFFICE, "not-an-ip", [], None, id="garbage-peer"),
    pytest.param(OFFICE, "192.0.2.1", ["198.51.100.7"], None, id="spoofed-xff-ignored"),
    pytest.param(TUNNEL, "127.0.0.1", ["198.51.100.7"], "198.51.100.7", id="via-tunnel"),
    pytest.param(TUNNEL, "127.0.0.1", [], None, id="tunnel-without-xff-is-itself"),
    pytest.param(
        TUNNEL, "127.0.0.1", ["203.0.113.5, 198.51.100.7, 10.0.0.2"], "198.51.100.7", id="chain"
    ),
    pytest.param(
        TUNNEL, "127.0.0.1", ["198.51.100.7", "10.0.0.2 , 10.0.0.3"], "198.51.100.7", id="headers"
    ),
    pytest.param(TUNNEL, "127.0.0.1", ["198.51.100.7, 192.0.2.50"], None, id="forged-left-part"),
    pytest.param(TUNNEL, "127.0.0.1", ["garbage"], None, id="garbage-xff"),
    pytest.param(TUNNEL, "127.0.0.1", ["198.51.100.7:4711"], None, id="xff-with-port"),
    pytest.param(TUNNEL, "127.0.0.1", ["garbage, 198.51.100.7"], "198.51.100.7", id="junk-left"),
    pytest.param(TUNNEL, "127.0.0.1", [" , ,198.51.100.7,"], "198.51.100.7", id="empty-items"),
    pytest.param(TUNNEL, "127.0.0.1", ["10.0.0.2"], None, id="all-trusted-furthest-outside"),
    pytest.param(TUNNEL, "10.9.9.9", ["198.51.100.7"], "198.51.100.7", id="trusted-range"),
    pytest.param(OPEN, "127.0.0.1", ["garbage"], "garbage", id="no-allowlist-passes"),
    pytest.param(OPEN, None, ["198.51.100.7"], "unknown", id="no-allowlist-unknown"),
    pytest.param(OPEN, "127.0.0.1", ["10.0.0.2"], "10.0.0.2", id="all-trusted-gives-furthest"),
    pytest.param(OPEN, "127.0.0.1", [], "127.0.0.1", id="trusted-peer-alone-is-client"),
    pytest.param(Inbound(), "192.0.2.1", ["198.51.100.7"], "192.0.2.1", id="nothing-trusted"),
]


@pytest.mark.parametrize(("rules", "peer", "xff", "client"), PEER_CASES)
def test_check_peer(rules: Inbound, peer: str | None, xff: list[str], client: str | None) -> None:
    """The client is the peer, or the rightmost untrusted X-Forwarded-For hop behind trusted
    proxies; outside allow_ips it is refused with 403."""
    check = checker(rules)
    if client is not None:
        assert check.check_peer(peer=peer, forwarded_for=xff) == client
        return
    with pytest.raises(ForbiddenError, match="is not in this route's allow_ips") as caught:
        check.check_peer(peer=peer, forwarded_for=xff)
    assert caught.value.route == ROUTE


def test_refusal_names_the_address_safely() -> None:
    """The message names the client address; a non-address is quoted and cut short."""
    with pytest.raises(ForbiddenError) as caught:
        checker(OFFICE).check_peer(peer="192.0.2.1", forwarded_for=[])
    assert caught.value.message == "client address 192.0.2.1 is not in this route's allow_ips"
    with pytest.raises(ForbiddenError) as caught:
        checker(TUNNEL).check_peer(peer="127.0.0.1", forwarded_for=["x" * 500])
    assert f"'{'x' * 64}' (not an IP address)" in caught.value.message


def test_allowlist_only_route_checks_no_headers() -> None:
    """A route with allow_ips only has nothing to check in the headers."""
    headers = CIMultiDict([("Authorization", "Bearer anything")])
    assert checker(OFFICE).check_headers(headers, now=NOW) is None


# -- credentials never travel upstream ---------------------------------------------------------

ALL_HEADERS = [
    ("Authorization", "Bearer t"),
    ("X-Api-Key", "k"),
    ("X-Hub-Signature-256", "sha256=" + HEX),
    ("Stripe-Signature", f"t={NOW},v1={HEX}"),
    ("X-Slack-Signature", f"v0={HEX}"),
    ("X-Slack-Request-Timestamp", str(NOW)),
    ("X-Shopify-Hmac-Sha256", B64),
    ("X-Signature", "sha256=" + HEX),
    ("Content-Type", "application/json"),
]
STRIP_CASES = [
    pytest.param(BEARER, {"authorization"}, id="bearer"),
    pytest.param(API_KEY, {"x-api-key"}, id="bearer-custom-header"),
    pytest.param(BASIC, {"authorization"}, id="basic"),
    *[pytest.param(p.rules, set(), id=p.name) for p in PRESETS],
    pytest.param(OFFICE, set(), id="allow-ips-only"),
]


@pytest.mark.parametrize(("rules", "removed"), STRIP_CASES)
def test_strip_credentials(rules: Inbound, removed: set[str]) -> None:
    """Exactly the bearer/Basic credential header goes; webhook signatures are kept."""
    headers = CIMultiDict([*ALL_HEADERS, ("Authorization", "Bearer second copy")])
    checker(rules).strip_credentials(headers)
    kept = {name.lower() for name, _ in ALL_HEADERS} - removed
    assert {name.lower() for name in headers} == kept


# -- what errors say --------------------------------------------------------------------------


def _failures() -> Iterator[tuple[Inbound, Headers, bytes]]:
    """Every refused request of this file's tables, with the body to feed."""
    for p in PRESETS:
        yield p.rules, p.sign(WRONG, p.body, NOW), p.body
        yield p.rules, p.sign(SECRET, p.body, NOW), p.body + b"!"
        if p in TIMED:
            yield p.rules, p.sign(SECRET, p.body, NOW - 10_000), p.body
        for headers in p.malformed.values():
            yield p.rules, headers, p.body
        for name in p.required:
            yield p.rules, [(k, v) for k, v in p.sign(SECRET, p.body, NOW) if k != name], p.body
    for case in [*BEARER_CASES, *BASIC_CASES]:
        rules, sent, error = case.values
        assert isinstance(rules, Inbound)
        assert isinstance(sent, list)
        if error is not None:
            yield rules, sent, b""


def _sensitive(rules: Inbound, headers: Headers, body: bytes) -> set[str]:
    """The secret, every credential or signature received, and the signature expected."""
    assert rules.secret is not None
    found = {rules.secret.value.decode("utf-8", "replace")}
    for _, value in headers:
        found |= {value, *re.findall(r"[0-9A-Za-z+/=]{12,}", value)}
    for message in (body, f"{NOW}.".encode() + body, f"v0:{NOW}:".encode() + body):
        digest = hmac_sha256(rules.secret.value, message)
        found |= {digest.hex(), base64.b64encode(digest).decode()}
    return {s for s in found if len(s) >= 8}


def test_messages_never_contain_secrets_or_signatures() -> None:
    """No refusal quotes the secret, a received credential or signature, or the expected one;
    each names the route."""
    seen = 0
    for rules, headers, body in _failures():
        check = checker(rules)
        with pytest.raises((UnauthorizedError, ForbiddenError)) as caught:
            deliver(check, headers, body)
        error = caught.value
        assert isinstance(error, ProxyError)
        assert error.route == ROUTE
        text = f"{error} {error.message} {error.to_json()}"
        for secret in _sensitive(rules, headers, body):
            assert secret not in text, (secret, text)
        seen += 1
    assert seen > 60


def test_hand_built_rules_without_a_secret_are_refused() -> None:
    """An Inbound that skipped proxy.config.load's validation fails at start, not per request."""
    with pytest.raises(ConfigError, match="needs a secret"):
        InboundCheck(Inbound(type="github"), route=ROUTE)
    with pytest.raises(ConfigError, match="needs a secret"):
        InboundCheck(Inbound(type="bearer", secret=Secret(b"", "env EMPTY")), route=ROUTE)
    with pytest.raises(ConfigError, match="needs header"):
        InboundCheck(Inbound(type="hmac", secret=Secret(SECRET, "env X")), route=ROUTE)
    with pytest.raises(ConfigError, match="needs username"):
        InboundCheck(Inbound(type="basic", secret=Secret(SECRET, "env X")), route=ROUTE)


# -- hostile input ------------------------------------------------------------------------------

HEADER_NAMES = [
    "Authorization",
    "X-Api-Key",
    "X-Hub-Signature-256",
    "Stripe-Signature",
    "X-Slack-Request-Timestamp",
    "X-Slack-Signature",
    "X-Shopify-Hmac-Sha256",
    "X-Signature",
    "X-Webhook-Signature",
]
FRAGMENTS = [
    *("sha256=", "v0=", "v1=", "t=", ",", "=", " ", "Bearer ", "Basic ", TOKEN, HEX, B64),
    *(str(NOW), "9" * 40, "\udcff", "\ud800", "\x00", "é", base64.b64encode(b"ci:x").decode()),
]
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)
VALUES = st.lists(st.one_of(st.sampled_from(FRAGMENTS), ANY_TEXT), max_size=8).map("".join)
HEADERS = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), VALUES), max_size=2)
# Well-shaped but unsigned values, so that examples get past the header checks to verify().
_HEXES = st.binary(min_size=32, max_size=32).map(bytes.hex)
_B64S = st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode())


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


_STAMPS = st.integers(min_value=NOW - 400, max_value=NOW + 400)
SHAPES = {
    "Authorization": st.one_of(
        VALUES.map(lambda v: "Bearer " + v),
        st.builds(lambda u, p: "Basic " + _b64(f"{u}:{p}"), st.sampled_from(["ci", ""]), VALUES),
        VALUES.map(lambda v: "Basic " + _b64(v)),
    ),
    "X-Api-Key": VALUES,
    "X-Hub-Signature-256": _HEXES.map(lambda h: "sha256=" + h),
    "Stripe-Signature": st.builds(lambda t, h: f"t={t},v1={h}", _STAMPS, _HEXES),
    "X-Slack-Request-Timestamp": _STAMPS.map(str),
    "X-Slack-Signature": _HEXES.map(lambda h: "v0=" + h),
    "X-Shopify-Hmac-Sha256": _B64S,
    "X-Signature": _HEXES.map(lambda h: "sha256=" + h),
    "X-Webhook-Signature": _B64S,
}


def hostile_headers(names: tuple[str, ...]) -> st.SearchStrategy[Headers]:
    """The route's own headers, well-shaped or garbage, among a few random others."""
    own = st.tuples(*(st.tuples(st.just(n), st.one_of(SHAPES[n], VALUES)) for n in names))
    return st.tuples(own, HEADERS).map(lambda pair: [*pair[0], *pair[1]])


ALL_RULES = [
    *(pytest.param(p.rules, p.required, id=p.name) for p in PRESETS),
    pytest.param(BEARER, ("Authorization",), id="bearer"),
    pytest.param(API_KEY, ("X-Api-Key",), id="bearer-api-key"),
    pytest.param(BASIC, ("Authorization",), id="basic"),
    pytest.param(OFFICE, (), id="allow-ips-only"),
]


@pytest.mark.parametrize(("rules", "names"), ALL_RULES)
@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    body=st.lists(st.binary(max_size=64), max_size=4),
    now=st.one_of(st.just(float(NOW)), st.floats(min_value=0, max_value=1e11)),
)
def test_hostile_headers_only_ever_401_or_403(
    rules: Inbound, names: tuple[str, ...], data: st.DataObject, body: list[bytes], now: float
) -> None:
    """Random header values and bodies raise nothing but UnauthorizedError or ForbiddenError,
    and a webhook route never accepts one (none of them carries a real signature)."""
    headers = data.draw(hostile_headers(names))
    check = checker(rules)
    refused: ProxyError | None = None
    try:
        body_check = check.check_headers(CIMultiDict(headers), now=now)
        if body_check is not None:
            for chunk in body:
                body_check.update(chunk)
            body_check.verify()
    except (UnauthorizedError, ForbiddenError) as exc:
        refused = exc
    if rules.type not in (None, "bearer", "basic"):
        assert refused is not None
    assert refused is None or refused.route == ROUTE
