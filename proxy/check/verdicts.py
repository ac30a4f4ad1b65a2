"""Pure: one route's verdict from its probe's reply: passed, or which known failure it is and
the concrete fix, with the clock compared against the reply's Date either way."""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_never

from proxy.check.access import Signer, denied_fixes
from proxy.check.cloudfront import cloudfront_reason, origin_unreachable, refused_by_cloudfront
from proxy.check.mismatch import explain_mismatch
from proxy.check.probe import ProbeReply
from proxy.check.report import Finding, Mark
from proxy.config.signing import implied_target
from proxy.core.refusals import ORIGIN_REQUEST_POLICY, Refusal, classify, message_of
from proxy.model import Route
from proxy.serve.clock import WARN_AFTER

# AWS refuses signatures more than this far from its clock.
MAX_SKEW = 300.0
CLOCK_FIX = "synchronise this machine's clock (NTP); AWS allows 5 minutes"

Verdict = Callable[[Route, ProbeReply, Signer | None], Finding]


def verdict(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    """The route's finding: the reply's kind decides the text; a clock off by more than a
    minute is flagged whatever AWS said, and by more than 5 minutes fails the route."""
    finding = _kind(reply)(route, reply, signer)
    return _with_clock(finding, reply)


def _kind(reply: ProbeReply) -> Verdict:
    """Which known case the reply is (core.refusals decides, from Lambda's error type and
    message or CloudFront's own reply); each case has its text and fixes here."""
    from_lambda = "x-amzn-RequestId" in reply.headers
    refusal = classify(reply.status, reply.error_type, reply.body, from_lambda=from_lambda)
    match refusal:
        case None:
            return _accepted
        case Refusal.CLOUDFRONT:
            return _cloudfront
        case Refusal.ORIGIN_UNREACHABLE:
            return _origin_unreachable
        case Refusal.SIGNATURE_TIME:
            return _clock
        case Refusal.WRONG_REGION:
            return _region
        case Refusal.WRONG_SERVICE:
            return _service
        case Refusal.SIGNATURE_MISMATCH:
            return _mismatch
        case Refusal.INCOMPLETE_SIGNATURE:
            return _incomplete
        case Refusal.ACCESS_DENIED:
            return _denied
        case Refusal.UNKNOWN_CREDENTIALS:
            return _invalid_token
        case Refusal.EXPIRED_TOKEN:
            return _expired_token
        case Refusal.UNEXPLAINED:
            return _other_refusal
        case _:
            assert_never(refusal)


def _headline(route: Route, reply: ProbeReply, what: str) -> str:
    error = f" {reply.error_type}" if reply.error_type else ""
    return f"route {route.name}: {reply.method} {reply.target} → {reply.status}{error}: {what}"


def _aws_says(reply: ProbeReply) -> str:
    # The first line only: the rest of a mismatch message is shown as a diff, tokens masked.
    return "AWS: " + message_of(reply.body).split("\n", 1)[0].strip()


def _ids(reply: ProbeReply) -> tuple[str, ...]:
    ids = [
        f"{label}: {reply.headers[name]}"
        for name, label in (
            ("x-amzn-RequestId", "Lambda request id"),
            ("X-Amz-Cf-Id", "CloudFront request id"),
        )
        if name in reply.headers
    ]
    return tuple(ids)


def _accepted(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    how = {"iam": "signature accepted", "oac": "CloudFront's OAC signature accepted"}
    done = how.get(route.mode, "unsigned, as configured")
    kind = f" ({reply.error_type})" if reply.error_type else ""
    return Finding(
        Mark.OK, _headline(route, reply, f"{done}; the function answered {reply.status}{kind}")
    )


def _mismatch(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    found = explain_mismatch(route, message_of(reply.body), reply.canonical_request)
    details = (_aws_says(reply), *found.details)
    return Finding(
        Mark.FAIL, _headline(route, reply, "signature mismatch"), details, found.fixes, found.diff
    )


def _incomplete(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    fixes = (
        "the signature did not arrive whole: Authorization, X-Amz-Date, X-Amz-Content-Sha256 "
        "and X-Amz-Security-Token must reach the function URL",
        ORIGIN_REQUEST_POLICY,
    )
    what = "the signature arrived incomplete"
    return Finding(Mark.FAIL, _headline(route, reply, what), (_aws_says(reply),), fixes)


def _region(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    signing = route.signing
    signed = signing.region if signing else "?"
    implied = implied_target(signing.host) if signing else None
    if implied is not None and implied.region != signed:
        fix = (
            f"set sign.region: {implied.region} on route {route.name} (the region of "
            f"{implied.host}), or remove sign.region: function_url implies it"
        )
    elif implied is not None:
        fix = (
            f"the function URL names region {signed}, but AWS expects another: copy function_url "
            "from the function's configuration (aws lambda get-function-url-config)"
        )
    else:
        fix = (
            f"set sign.region on route {route.name} to the function's region (the <region> in "
            "its URL <id>.lambda-url.<region>.on.aws)"
        )
    details = (_aws_says(reply), f"signed for region {signed}")
    what = "wrong region in the signature's scope"
    return Finding(Mark.FAIL, _headline(route, reply, what), details, (fix,))


def _service(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    signed = route.signing.service if route.signing else "?"
    fix = f"set sign.service: lambda on route {route.name}, or remove sign.service (now {signed})"
    what = "wrong service in the signature's scope"
    return Finding(Mark.FAIL, _headline(route, reply, what), (_aws_says(reply),), (fix,))


def _clock(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    details = [_aws_says(reply)]
    measured = "no Date in the reply to measure it by"
    if reply.skew is not None:
        measured = f"measured offset {reply.skew:+.0f}s"
        details.append(_describe_skew(reply.skew))
    fix = f"{CLOCK_FIX} ({measured})"
    what = "this machine's clock is off"
    return Finding(Mark.FAIL, _headline(route, reply, what), tuple(details), (fix,))


def _denied(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    details, fixes = denied_fixes(route, signer)
    what = "access denied"
    return Finding(Mark.FAIL, _headline(route, reply, what), (_aws_says(reply), *details), fixes)


def _invalid_token(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    name = signer.credential_set if signer else route.credentials
    advice = signer.refresh if signer else "check the route's credential set"
    fix = (
        f"credential set {name}: AWS does not know its access key or session token (temporary "
        f"ASIA… keys need their session token); {advice}"
    )
    what = "access key or session token not recognised"
    return Finding(Mark.FAIL, _headline(route, reply, what), (_aws_says(reply),), (fix,))


def _expired_token(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    name = signer.credential_set if signer else route.credentials
    advice = signer.refresh if signer else "refresh them"
    fix = f"credential set {name}: its session token has expired; {advice}"
    what = "session token expired"
    return Finding(Mark.FAIL, _headline(route, reply, what), (_aws_says(reply),), (fix,))


def _other_refusal(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    what = "refused"
    return Finding(Mark.FAIL, _headline(route, reply, what), (_aws_says(reply), *_ids(reply)))


def _cloudfront(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    reason = cloudfront_reason(reply.body)
    details = [f"CloudFront: {reason}" if reason else "CloudFront's page gave no reason"]
    details += _ids(reply)
    path = reply.target.partition("?")[0]
    fixes = refused_by_cloudfront(route, method=reply.method, path=path, reason=reason)
    what = "refused by CloudFront itself (no x-amzn-ErrorType)"
    return Finding(Mark.FAIL, _headline(route, reply, what), tuple(details), fixes)


def _origin_unreachable(route: Route, reply: ProbeReply, signer: Signer | None) -> Finding:
    reason = cloudfront_reason(reply.body)
    details = (f"CloudFront: {reason}" if reason else "no Lambda request id", *_ids(reply))
    what = "CloudFront could not get an answer from the function URL"
    fixes = origin_unreachable(route, reply.status)
    return Finding(Mark.FAIL, _headline(route, reply, what), details, fixes)


def _with_clock(finding: Finding, reply: ProbeReply) -> Finding:
    """A passing finding warns of a clock over a minute off, and fails over 5 minutes."""
    skew = reply.skew
    if skew is None or abs(skew) <= WARN_AFTER or finding.failed:
        return finding
    mark = Mark.FAIL if abs(skew) > MAX_SKEW else Mark.WARN
    return Finding(
        mark,
        finding.headline,
        (*finding.details, _describe_skew(skew)),
        (*finding.fixes, f"{CLOCK_FIX} (measured offset {skew:+.0f}s)"),
        finding.diff,
    )


def _describe_skew(skew: float) -> str:
    direction = "behind" if skew > 0 else "ahead of"
    return f"this machine's clock is {abs(skew):.0f}s {direction} the upstream's (its Date)"
