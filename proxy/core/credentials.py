"""A credentials snapshot, the value every signature is made with, and how to show a key safely.

Pure: the credential sets that produce these (botocore, STS, the refresh schedule) are
``proxy.serve.credentials``; here is only the frozen value, which never shows its secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Credentials this close to expiry are not used, since a request signed with them could arrive
# after they lapse: a tenth of the lifetime, at most 15 s, so well inside the refresh margin.
EXPIRY_SAFETY = 15.0
SAFETY_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class Credentials:
    """One frozen snapshot: key, secret and token always come from the same refresh."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # epoch seconds; None for long-term keys
    fetched_at: float = field(default_factory=time.time)

    def __repr__(self) -> str:
        token = "'***'" if self.token else "None"
        return (
            f"Credentials(access_key={mask(self.access_key)!r}, secret_key='***', "
            f"token={token}, expires_at={self.expires_at})"
        )

    @property
    def lifetime(self) -> float | None:
        """Seconds from fetching to expiry; None for long-term keys."""
        return None if self.expires_at is None else self.expires_at - self.fetched_at

    def usable(self, now: float) -> bool:
        """Whether a request signed now would still arrive before these expire."""
        lifetime = self.lifetime
        if self.expires_at is None or lifetime is None:
            return True
        return self.expires_at - now > min(EXPIRY_SAFETY, lifetime * SAFETY_FRACTION)


def mask(access_key: str) -> str:
    """``ASIA…WXYZ``: enough to tell keys apart, not enough to use one."""
    return f"{access_key[:4]}…{access_key[-4:]}" if len(access_key) > 8 else "…"
