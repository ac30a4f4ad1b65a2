"""How an exchange with an upstream server fails: ``ClientError`` and its kinds.

``nothing_sent`` says the request surely never reached the server (no connection was made):
only then is it safe to send it again. HEAD_LIMIT and FIELD_LIMIT are in ``reply``.
"""

from __future__ import annotations


class ClientError(Exception):
    """The exchange failed; ``nothing_sent`` when the request surely never reached the server."""

    nothing_sent = False


class ConnectFailed(ClientError):
    """No connection could be made (refused, unreachable, name not found, TLS failure)."""

    nothing_sent = True

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectTimeout(ClientError):
    """No connection within the connect deadline; ``pool_full`` when waiting for a free one."""

    nothing_sent = True

    def __init__(self, *, pool_full: bool) -> None:
        super().__init__("connect timeout")
        self.pool_full = pool_full


class CertificateRejected(ConnectFailed):
    """The server's TLS certificate did not verify."""


class Disconnected(ClientError):
    """The server closed the connection before the reply reached its end."""


class MalformedReply(ClientError):
    """The server's reply is not valid HTTP/1.1."""


class HeadTooLarge(MalformedReply):
    """The server's reply head grew past HEAD_LIMIT bytes (interim replies included) or
    FIELD_LIMIT header fields (or its trailers past FIELD_LIMIT fields): refused as soon as it
    did, and the connection closed, instead of holding the rest in memory."""
