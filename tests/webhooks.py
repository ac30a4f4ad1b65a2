"""Webhook senders as each provider documents them, with real payloads: shared by the tests.

Written independently of proxy/inbound.py: these are the expected signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from proxy.model import Inbound, Secret

SECRET = b"whsec_9pQ4tVb7Lr2Xs8Kd1Nf6Hy3Jm5Wc0Ez"
WRONG = b"whsec_attacker-guessed-this-one-0000"
NOW = 1_719_849_600  # 2024-07-01T16:00:00Z
TOLERANCE = 300.0

Headers = list[tuple[str, str]]


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


GITHUB_PUSH = _json(
    {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",
        "repository": {
            "id": 186853002,
            "name": "hello-lambda",
            "full_name": "octo-org/hello-lambda",
            "private": True,
            "default_branch": "main",
        },
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
        "commits": [
            {
                "id": "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",
                "message": "Deploy handler v2 ✨",
                "timestamp": "2024-07-01T18:00:00+02:00",
                "author": {"name": "Mona Lisa Octocat", "username": "octocat"},
                "added": [],
                "removed": [],
                "modified": ["handler.py"],
            }
        ],
    }
)
STRIPE_EVENT = _json(
    {
        "id": "evt_3PXrLp2eZvKYlo2C1a6DfA7M",
        "object": "event",
        "api_version": "2024-06-20",
        "created": NOW,
        "data": {
            "object": {
                "id": "pi_3PXrLp2eZvKYlo2C1a6DfA7M",
                "object": "payment_intent",
                "amount": 2000,
                "currency": "eur",
                "customer": "cus_QOkPgYs3vDyBQJ",
                "status": "succeeded",
            }
        },
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_8Kz1rXJt0vYwQm", "idempotency_key": "4c1a7e5f-0d2b"},
        "type": "payment_intent.succeeded",
    }
)
SLACK_COMMAND = urlencode(
    {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "team_id": "T0001",
        "team_domain": "example",
        "channel_id": "C2147483705",
        "channel_name": "deploys",
        "user_id": "U2147483697",
        "user_name": "steve",
        "command": "/deploy",
        "text": "hello-lambda to prod",
        "api_app_id": "A123456",
        "response_url": "https://hooks.slack.com/commands/1234/5678",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
    }
).encode()
SHOPIFY_ORDER = _json(
    {
        "id": 820982911946154508,
        "email": "jon@example.com",
        "created_at": "2024-07-01T12:00:00-04:00",
        "currency": "USD",
        "total_price": "598.94",
        "financial_status": "paid",
        "line_items": [
            {"id": 866550311766439020, "title": "IPod Nano - 8GB", "quantity": 1, "price": "199.00"}
        ],
        "customer": {"id": 115310627314723954, "first_name": "John", "last_name": "Smith"},
    }
)
BUILD_EVENT = _json({"event": "build.finished", "build": {"id": 4711, "status": "passed"}})


# -- the providers' documented algorithms, written independently of proxy/inbound.py ----------


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    """HMAC-SHA256, the primitive every preset uses."""
    return hmac.new(secret, message, hashlib.sha256).digest()


def github(secret: bytes, body: bytes, t: int) -> Headers:
    """GitHub: X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256(secret, body)."""
    sig = "sha256=" + hmac_sha256(secret, body).hex()
    return [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", sig)]


def stripe(secret: bytes, body: bytes, t: int) -> Headers:
    """Stripe: t=<unix>,v1=hex HMAC-SHA256(secret, "<t>." + body); v0 is a legacy test scheme."""
    v1 = hmac_sha256(secret, f"{t}.".encode() + body).hex()
    return [("Stripe-Signature", f"t={t},v1={v1},v0={'0' * 64}")]


def slack(secret: bytes, body: bytes, t: int) -> Headers:
    """Slack: v0=hex HMAC-SHA256(secret, "v0:<timestamp>:" + body)."""
    sig = "v0=" + hmac_sha256(secret, f"v0:{t}:".encode() + body).hex()
    return [("X-Slack-Request-Timestamp", str(t)), ("X-Slack-Signature", sig)]


def shopify(secret: bytes, body: bytes, t: int) -> Headers:
    """Shopify: X-Shopify-Hmac-Sha256 = base64 HMAC-SHA256(secret, body)."""
    sig = base64.b64encode(hmac_sha256(secret, body)).decode()
    return [("X-Shopify-Topic", "orders/create"), ("X-Shopify-Hmac-Sha256", sig)]


def hmac_hex(secret: bytes, body: bytes, t: int) -> Headers:
    """The generic preset as configured below: X-Signature = "sha256=" + upper-case hex."""
    return [("X-Signature", "sha256=" + hmac_sha256(secret, body).hex().upper())]


def hmac_base64(secret: bytes, body: bytes, t: int) -> Headers:
    """The generic preset as configured below: X-Webhook-Signature = base64, no prefix."""
    return [("X-Webhook-Signature", base64.b64encode(hmac_sha256(secret, body)).decode())]


@dataclass(frozen=True)
class Preset:
    """One webhook preset: its rules, a real payload, how a sender signs, what a tamperer edits."""

    name: str
    rules: Inbound
    body: bytes
    sign: Callable[[bytes, bytes, int], Headers]
    tamper: tuple[bytes, bytes]
    required: tuple[str, ...]
    malformed: dict[str, Headers] = field(default_factory=dict)


def rules_for(kind: Any, **extra: Any) -> Inbound:
    """Inbound rules of ``kind`` with the shared test secret."""
    return Inbound(type=kind, secret=Secret(SECRET, "env TEST_SECRET"), **extra)


HEX = "ab" * 32
B64 = base64.b64encode(b"\x01" * 32).decode()
PRESETS = [
    Preset(
        "github",
        rules_for("github"),
        GITHUB_PUSH,
        github,
        (b'"ref": "refs/heads/main"', b'"ref": "refs/heads/release"'),
        ("X-Hub-Signature-256",),
        {
            "sha1": [("X-Hub-Signature-256", "sha1=" + "ab" * 20)],
            "no-prefix": [("X-Hub-Signature-256", HEX)],
            "short": [("X-Hub-Signature-256", "sha256=" + HEX[:-1])],
            "not-hex": [("X-Hub-Signature-256", "sha256=" + "zz" * 32)],
            "twice": [("X-Hub-Signature-256", "sha256=" + HEX)] * 2,
        },
    ),
    Preset(
        "stripe",
        rules_for("stripe", tolerance=TOLERANCE),
        STRIPE_EVENT,
        stripe,
        (b'"amount": 2000', b'"amount": 200000'),
        ("Stripe-Signature",),
        {
            "no-t": [("Stripe-Signature", f"v1={HEX}")],
            "no-v1": [("Stripe-Signature", f"t={NOW},v0={HEX}")],
            "t-not-a-number": [("Stripe-Signature", f"t=soon,v1={HEX}")],
            "t-twice": [("Stripe-Signature", f"t={NOW},t={NOW},v1={HEX}")],
            "t-huge": [("Stripe-Signature", f"t={'9' * 5000},v1={HEX}")],
            "v1-short": [("Stripe-Signature", f"t={NOW},v1={HEX[:-2]}")],
            "empty": [("Stripe-Signature", "")],
        },
    ),
    Preset(
        "slack",
        rules_for("slack", tolerance=TOLERANCE),
        SLACK_COMMAND,
        slack,
        (b"text=hello-lambda+to+prod", b"text=hello-lambda+to+prod%3B+drop"),
        ("X-Slack-Request-Timestamp", "X-Slack-Signature"),
        {
            "timestamp-not-a-number": [
                ("X-Slack-Request-Timestamp", "yesterday"),
                ("X-Slack-Signature", f"v0={HEX}"),
            ],
            "timestamp-fraction": [
                ("X-Slack-Request-Timestamp", f"{NOW}.5"),
                ("X-Slack-Signature", f"v0={HEX}"),
            ],
            "v1-scheme": [
                ("X-Slack-Request-Timestamp", str(NOW)),
                ("X-Slack-Signature", f"v1={HEX}"),
            ],
            "short": [
                ("X-Slack-Request-Timestamp", str(NOW)),
                ("X-Slack-Signature", f"v0={HEX[:10]}"),
            ],
        },
    ),
    Preset(
        "shopify",
        rules_for("shopify"),
        SHOPIFY_ORDER,
        shopify,
        (b'"total_price": "598.94"', b'"total_price": "0.01"'),
        ("X-Shopify-Hmac-Sha256",),
        {
            "not-base64": [("X-Shopify-Hmac-Sha256", "%%%not-base64%%%")],
            "hex-instead": [("X-Shopify-Hmac-Sha256", HEX)],
            "31-bytes": [("X-Shopify-Hmac-Sha256", base64.b64encode(b"\x01" * 31).decode())],
        },
    ),
    Preset(
        "hmac-hex",
        rules_for("hmac", header="X-Signature", prefix="sha256=", encoding="hex"),
        BUILD_EVENT,
        hmac_hex,
        (b'"passed"', b'"failed"'),
        ("X-Signature",),
        {
            "no-prefix": [("X-Signature", HEX)],
            "wrong-prefix": [("X-Signature", "sha1=" + HEX)],
            "base64-instead": [("X-Signature", "sha256=" + B64)],
        },
    ),
    Preset(
        "hmac-base64",
        rules_for("hmac", header="X-Webhook-Signature", encoding="base64"),
        BUILD_EVENT,
        hmac_base64,
        (b'"passed"', b'"failed"'),
        ("X-Webhook-Signature",),
        {
            "hex-instead": [("X-Webhook-Signature", HEX)],
            "padding-only": [("X-Webhook-Signature", "==")],
        },
    ),
]
STRIPE = next(p for p in PRESETS if p.name == "stripe")
TIMED = [p for p in PRESETS if p.name in ("stripe", "slack")]
UNTIMED = [p for p in PRESETS if p not in TIMED]
