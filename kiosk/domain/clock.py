"""Time as an injected dependency.

Records, timeouts, lockout windows and TOTP steps all depend on time; reading
the wall clock inside the rules would make them untestable and would hide
clock faults. The one real clock lives in ``kiosk.system_clock``.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.timezone.utc


class InvalidTimeZone(ValueError):
    """The configured site time zone is not an IANA zone name."""


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimeZone(
            f"{name!r} is not an IANA time zone name (e.g. 'Europe/Dublin', 'UTC')"
        ) from exc
    return name


class Clock(Protocol):
    """UTC time with microseconds, plus the site's IANA zone name."""

    @property
    def zone(self) -> str: ...

    def now(self) -> dt.datetime:
        """An aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for idle timers)."""
        ...


def format_ts(moment: dt.datetime) -> str:
    """The record timestamp form: UTC, microseconds, trailing Z."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    # isoformat, not strftime: a third faster on the signing path, and it pads a year below 1000 to 4 digits.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_ts(text: str) -> dt.datetime:
    if not isinstance(text, str) or not text.endswith("Z") or len(text) != 27:
        raise ValueError(f"timestamp {text!r} is not of the form YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not a valid date and time") from None
    if text[10] != "T" or text[19] != ".":
        raise ValueError(f"timestamp {text!r} is not of the form YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return moment


def utc_text(ts: str, *, seconds: bool = False) -> str:
    """A record's UTC timestamp as lists and messages show it, "2026-12-07 19:34" (with ``seconds``,
    "2026-12-07 19:34:06"); the caller says "UTC" where the context does not."""
    return ts[:19 if seconds else 16].replace("T", " ")


def local_time(moment: dt.datetime, zone: str) -> dt.datetime:
    return moment.astimezone(ZoneInfo(zone))


def site_time(moment: dt.datetime | str, zone: str) -> str:
    """A record's time as people on site read it (dialogs, lists, printouts): "2026-12-07 04:12:16 GMT"."""
    if isinstance(moment, str):
        moment = parse_ts(moment)
    return local_time(moment, zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def utc_time(ts: str) -> str:
    """A record's UTC time as people read it beside the site's (dialogs, printouts): "2026-12-07 04:12:16 UTC"."""
    return f"{utc_text(ts, seconds=True)} UTC"


class FakeClock:
    """A clock that moves only when told: the one fake used in every test."""

    def __init__(
        self,
        start: dt.datetime | None = None,
        zone: str = "Europe/Dublin",
    ) -> None:
        self._now = (start or dt.datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)).astimezone(UTC)
        self._mono = 1000.0
        self._zone = check_zone(zone)

    @property
    def zone(self) -> str:
        return self._zone

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        """Move wall and monotonic time forward together."""
        step = dt.timedelta(seconds=seconds, **delta)
        if step < dt.timedelta(0):
            raise ValueError("advance() only moves forward; use set() to jump the wall clock")
        self._now += step
        self._mono += step.total_seconds()

    def set(self, moment: dt.datetime) -> None:
        """Jump the wall clock (e.g. to simulate an NTP step or a rollback)."""
        self._now = moment.astimezone(UTC)
