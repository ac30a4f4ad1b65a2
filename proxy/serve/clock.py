"""The time requests are signed with: this machine's clock, corrected when AWS says it is off.

AWS refuses a signature more than 5 minutes from its own time. Replies carry AWS's time in
``Date``; the first reply, and every 403, is compared with the local clock. A difference over a
minute is logged once; a request AWS refused as expired or not yet valid is signed again with
the measured difference added (once).
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime

from proxy.core.refusals import classify, is_time

log = logging.getLogger("signing_proxy.clock")

# Beyond this, say so: AWS allows 5 minutes, and a clock a minute off is on its way there.
WARN_AFTER = 60.0


class SigningClock:
    """Local time plus a correction learned from replies."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.checked = False  # the first reply's Date has been looked at
        self._warned = False

    def now(self) -> float:
        """Epoch seconds to sign with."""
        return time.time() + self.offset

    def observe(self, date: str | None, *, local: float) -> float | None:
        """The skew a reply's Date shows (remote minus local, seconds), warning once when it is
        over a minute; None when there is no usable Date."""
        self.checked = True
        remote = _epoch(date)
        if remote is None:
            return None
        skew = remote - local
        if abs(skew) > WARN_AFTER and not self._warned:
            self._warned = True
            log.warning(
                "this machine's clock is %.0fs %s the upstream's (its Date: %s); AWS refuses "
                "signatures more than 5 minutes off: synchronise the clock (NTP)",
                abs(skew),
                "behind" if skew > 0 else "ahead of",
                date,
            )
        return skew

    def correct(self, skew: float) -> None:
        """Sign from now on with the upstream's time (the clock is off: AWS said so)."""
        self.offset = skew
        log.warning("signing with the upstream's time from now on: %+.0fs from this clock", skew)


def _epoch(date: str | None) -> float | None:
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None


def refused_for_time(error_type: str | None, message: str) -> bool:
    """Whether AWS refused a signature for its time (expired, or not yet valid)."""
    return is_time(classify(403, error_type, message))
