"""The only place in kiosk/ that reads the wall clock."""

from __future__ import annotations

import datetime as dt
import time

from kiosk.domain.clock import UTC, check_zone


class SystemClock:
    def __init__(self, zone: str = "UTC") -> None:
        self._zone = check_zone(zone)

    @property
    def zone(self) -> str:
        return self._zone

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
