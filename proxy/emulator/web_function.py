"""Lambda Web Function endpoints: which hosts are ones, and how they differ from function URLs.

A regional endpoint ``<id>.<shard>.lambda-web.<region>.on.aws`` takes SigV4 for its region (and
SigV4a whose region set covers it); the multi-region ``<id>.lambda-web.global.on.aws`` takes
SigV4a only. Both want ``x-amz-content-sha256`` on every request, also one without a body, and
authorise with ``lambda:InvokeWebFunctionEndpoint``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CONTENT_SHA256_REQUIRED_MESSAGE",
    "DEFAULT_GLOBAL_WEB_FUNCTION_HOST",
    "DEFAULT_SERVING_REGION",
    "DEFAULT_WEB_FUNCTION_HOST",
    "WebFunctionEndpoint",
    "denied_message",
    "web_function_endpoint",
]

DEFAULT_WEB_FUNCTION_HOST = "abc123xyz.a1.lambda-web.eu-central-1.on.aws"
DEFAULT_GLOBAL_WEB_FUNCTION_HOST = "abc123xyz.lambda-web.global.on.aws"
# The region an emulated multi-region endpoint says it served a request in, unless told.
DEFAULT_SERVING_REGION = "us-east-1"

CONTENT_SHA256_REQUIRED_MESSAGE = (
    "Lambda Web Function endpoints require the x-amz-content-sha256 header on every request, "
    "also without a body. Add it with the hex SHA-256 of the body (of no bytes: "
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)."
)

_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_REGIONAL_HOST_RE = re.compile(rf"[a-z0-9]+\.[a-z0-9]+\.lambda-web\.({_REGION})\.on\.aws")
_GLOBAL_HOST_RE = re.compile(r"[a-z0-9]+\.lambda-web\.global\.on\.aws")


@dataclass(frozen=True, slots=True)
class WebFunctionEndpoint:
    """One Web Function endpoint host; ``region`` is None for the multi-region one."""

    host: str
    region: str | None

    @property
    def is_global(self) -> bool:
        """Multi-region: only SigV4a, with a region set, reaches it."""
        return self.region is None


def web_function_endpoint(host: str) -> WebFunctionEndpoint | None:
    """The Web Function endpoint ``host`` names, or None when it is no such host."""
    lowered = host.lower()
    if _GLOBAL_HOST_RE.fullmatch(lowered):
        return WebFunctionEndpoint(lowered, None)
    match = _REGIONAL_HOST_RE.fullmatch(lowered)
    return None if match is None else WebFunctionEndpoint(lowered, match.group(1))


def denied_message(identity: str, host: str) -> str:
    """What a Web Function endpoint answers a valid signature its policies do not allow."""
    return (
        f"User: {identity} is not authorized to perform: lambda:InvokeWebFunctionEndpoint "
        f"on resource: {host} because no identity-based or resource-based policy allows "
        "the lambda:InvokeWebFunctionEndpoint action"
    )
