"""What one request did, filled in as it goes through the pipeline; the handler logs, counts and
shows it (the inspector) when the request ends, also when it failed or was cut short.
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDict

from proxy.core import sigv4
from proxy.serve.upstream import Relayed


@dataclass(slots=True)
class Outcome:
    """What one request did, filled in as it goes; logged and counted when it ends."""

    request_id: str
    route: str | None = None
    path: str | None = None
    upstream_status: int | None = None
    upstream_seconds: float | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    amzn_request_id: str | None = None
    amzn_error_type: str | None = None
    cut: str | None = None  # why the reply stopped short, when it did
    # What the inspector shows; references to what was built anyway, so cheap to keep.
    upstream_url: str | None = None
    sent_headers: CIMultiDict[str] | None = None
    signature: sigv4.Signature | None = None
    diagnosis: str | None = None
    body: bytes | None = None  # kept only while the inspector is on
    replay_of: int | None = None  # the inspector entry this request replays
    relayed: Relayed | None = None  # the reply to the client, once it is being sent

    def relaying(self, relayed: Relayed) -> None:
        self.relayed = relayed
