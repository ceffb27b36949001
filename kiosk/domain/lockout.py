"""Failed-attempt rules: progressive delay, then suspension; old typos age out.

Counting is a sliding window anchored on the last failure: a failure more
than ``window_h`` after the previous one starts a new count, so occasional
typos over weeks never add up to a lockout, while a burst always does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    delay_from_failure: int = 3
    delay_base_s: int = 2
    delay_max_s: int = 30
    window_h: int = 24

    def __post_init__(self) -> None:
        if not 3 <= self.threshold <= 100:
            raise ValueError("lockout threshold must be 3 .. 100")


@dataclass(frozen=True)
class FailureState:
    count: int = 0
    first_failure_at: dt.datetime | None = None
    last_failure_at: dt.datetime | None = None

    def current(self, now: dt.datetime, policy: LockoutPolicy) -> "FailureState":
        """The state with aged-out failures forgotten."""
        if self.last_failure_at is None or now - self.last_failure_at > dt.timedelta(hours=policy.window_h):
            return FailureState()
        return self

    def after_failure(self, now: dt.datetime, policy: LockoutPolicy) -> "FailureState":
        live = self.current(now, policy)
        return replace(live, count=live.count + 1, first_failure_at=live.first_failure_at or now, last_failure_at=now)

    def after_success(self) -> "FailureState":
        return FailureState()


def delay_for(count: int, policy: LockoutPolicy) -> int:
    if count < policy.delay_from_failure:
        return 0
    return min(policy.delay_base_s * 2 ** (count - policy.delay_from_failure), policy.delay_max_s)


def decide(state: FailureState, now: dt.datetime, policy: LockoutPolicy) -> tuple[float, bool]:
    """(seconds still to wait before the next attempt, whether the threshold is reached)."""
    live = state.current(now, policy)
    if live.count == 0 or live.last_failure_at is None:
        return 0.0, False
    remaining = delay_for(live.count, policy) - (now - live.last_failure_at).total_seconds()
    return max(remaining, 0.0), live.count >= policy.threshold
