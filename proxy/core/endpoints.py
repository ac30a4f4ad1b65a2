"""Pure: which Lambda endpoint a host name is: a Web Function endpoint, regional or global, and
the region it names. Config (what a route signs for) and the refusal advice both ask here.
"""

from __future__ import annotations

import re

# A regional endpoint (HomeRegion, PerRegion) ends in .lambda-web.<region>.on.aws, a global one
# (MultiRegion) in .lambda-web.global.on.aws; AWS's pages show one label before lambda-web
# (abcd1234.lambda-web.us-west-2.on.aws) as well as two (<id>.<shard>.lambda-web...): both count.
_WEB_FUNCTION_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.){1,2}lambda-web\.(?P<region>[a-z0-9-]+)\.on\.aws"
)
_GLOBAL = "global"


def is_web_function_host(host: str) -> bool:
    """Whether ``host`` (any case, a port or a final dot allowed) is a Lambda Web Function
    endpoint's, regional or global; a function URL's host is not."""
    return _WEB_FUNCTION_HOST.fullmatch(_bare(host)) is not None


def is_global_web_function_host(host: str) -> bool:
    """Whether ``host`` is a global (MultiRegion) Web Function endpoint's,
    ``<id>.lambda-web.global.on.aws``: it names no region."""
    match = _WEB_FUNCTION_HOST.fullmatch(_bare(host))
    return match is not None and match["region"] == _GLOBAL


def web_function_region(host: str) -> str | None:
    """The region a regional Web Function endpoint's host names; None for a global endpoint
    (its function's home region is not in the host) and for any other host."""
    match = _WEB_FUNCTION_HOST.fullmatch(_bare(host))
    return match["region"] if match is not None and match["region"] != _GLOBAL else None


def _bare(host: str) -> str:
    """A host name as the patterns see it: lower case, without a final dot or a port."""
    host = host.lower()
    name, colon, port = host.rpartition(":")
    return (name if colon and port.isdigit() else host).rstrip(".")
