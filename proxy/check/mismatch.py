"""Pure: explain a signature mismatch from AWS's own canonical request, compared line by line
with the one the proxy signed, and say what to change."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from proxy.core.refusals import ORIGIN_REQUEST_POLICY
from proxy.model import Route

# Lambda's InvalidSignatureException message quotes what it computed.
_CANONICAL = re.compile(
    r"The Canonical String for this request should have been\n'(?P<canonical>.*?)'\n\n"
    r"The String-to-Sign should have been\n'",
    re.DOTALL,
)
# The session token is a credential: it never reaches the output, even inside a diff.
_TOKEN_LINE = re.compile(r"^(x-amz-security-token:).*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """What the comparison showed: lines to print, the diff, and the fixes."""

    details: tuple[str, ...]
    diff: tuple[str, ...]
    fixes: tuple[str, ...]


def explain_mismatch(route: Route, message: str, signed: str | None) -> Mismatch:
    """``message`` is AWS's, ``signed`` the canonical request the proxy signed (if it did)."""
    match = _CANONICAL.search(message)
    if match is None or signed is None:
        return Mismatch((), (), _generic_fixes(route))
    expected = match.group("canonical")
    ours, theirs = _lines(signed), _lines(expected)
    diff = tuple(
        difflib.unified_diff(
            ours, theirs, fromfile="signed by the proxy", tofile="expected by AWS", lineterm=""
        )
    )
    details = ["canonical request, as the proxy signed it (-) and as AWS computed it (+):"]
    fixes = [*_host_fixes(route, ours, theirs, details), *_path_fixes(ours, theirs)]
    fixes += _header_fixes(ours, theirs)
    if not diff:
        details = ["the canonical requests are the same: the secret key does not match the key id"]
        fixes.append("check the secret access key of the route's credential set")
    return Mismatch(tuple(details), diff, (*fixes, *_generic_fixes(route)))


def _lines(canonical: str) -> list[str]:
    return _TOKEN_LINE.sub(r"\1***", canonical).split("\n")


def _header(lines: list[str], name: str) -> str | None:
    prefix = f"{name}:"
    return next((line[len(prefix) :] for line in lines if line.startswith(prefix)), None)


def _host_fixes(route: Route, ours: list[str], theirs: list[str], details: list[str]) -> list[str]:
    signed_host, received = _header(ours, "host"), _header(theirs, "host")
    if received is None or signed_host == received:
        return []
    details.insert(0, f"AWS received Host: {received}; the proxy signed for {signed_host}")
    if received.partition(":")[0] == route.upstream.host:
        return [
            f"CloudFront passed the viewer's Host ({received}) on to the function URL: set the "
            "origin request policy to AllViewerExceptHostHeader"
        ]
    if ".lambda-url." in received:
        return [
            f"sign for the function URL's host: set function_url: https://{received} on route "
            f"{route.name} (and drop sign.host); it signs for {signed_host} now"
        ]
    return [
        f"sign for the host the function receives: set sign.host: {received} on route {route.name}"
    ]


def _path_fixes(ours: list[str], theirs: list[str]) -> list[str]:
    if len(ours) < 2 or len(theirs) < 2 or ours[1] == theirs[1]:
        return []
    return [
        f"the function received the path {theirs[1]} but the proxy signed {ours[1]}: remove the "
        "CloudFront origin path (put a base path in the route's upstream URL instead, where it "
        "is signed)"
    ]


def _header_fixes(ours: list[str], theirs: list[str]) -> list[str]:
    fixes = []
    for line in ours:
        name, colon, value = line.partition(":")
        if not colon or name == "host" or not name.startswith("x-amz-"):
            continue
        received = _header(theirs, name)
        if received is not None and received != value:
            what = "dropped" if not received else "changed"
            fixes.append(f"{name} was {what} on the way: forward it unchanged (see below)")
    return fixes


def _generic_fixes(route: Route) -> tuple[str, ...]:
    signing = route.signing
    if signing is not None and route.upstream.host == signing.host:
        return ()  # sent to the function URL itself: no CloudFront to configure
    return (ORIGIN_REQUEST_POLICY,)
