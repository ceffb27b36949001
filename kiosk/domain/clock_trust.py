"""Clock trust: a record's time is only as good as the kiosk clock that stamped it.

Records always carry the kiosk's own UTC time (never corrected after the
fact: that would falsify what was observed). What we add is evidence about
the clock: a ``clock.observed`` record when time goes backwards on the kiosk
or when a sync finds it far from the central clock, so an inspector sees the
anomaly next to the records it affects, and signing can be refused while the
clock is known to be wrong.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

BACKWARDS_TOLERANCE = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class ClockAnomaly:
    kind: str  # "backwards" | "skew"
    kiosk_ts: str
    reference_ts: str
    offset_s: str  # decimal seconds as a string (records hold no floats)

    def body(self) -> dict[str, str]:
        return {"kind": self.kind, "kiosk_ts": self.kiosk_ts, "reference_ts": self.reference_ts,
                "offset_s": self.offset_s}


def _offset(a: dt.datetime, b: dt.datetime) -> str:
    return f"{(a - b).total_seconds():.6f}"


def went_backwards(previous: dt.datetime | None, now: dt.datetime, previous_ts: str, now_ts: str) -> ClockAnomaly | None:
    """The kiosk clock is earlier than a record it already wrote."""
    if previous is None or now >= previous - BACKWARDS_TOLERANCE:
        return None
    return ClockAnomaly("backwards", now_ts, previous_ts, _offset(now, previous))


def skewed(kiosk: dt.datetime, central: dt.datetime, max_skew_s: int, kiosk_ts: str, central_ts: str) -> ClockAnomaly | None:
    """The kiosk clock differs from the central clock by more than the configured bound."""
    if abs((kiosk - central).total_seconds()) <= max_skew_s:
        return None
    return ClockAnomaly("skew", kiosk_ts, central_ts, _offset(kiosk, central))
