"""The session state machine and the continuous-session signing rules (21 CFR 11.200(a)(1)).

A session is ``locked -> active -> (idle_warned) -> locked``. Continuity is
what makes a later signature need only the password: it ends at any lock,
timeout, logout, user switch or restart, because after any of those the
kiosk can no longer be sure the same person is at the keyboard.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class IllegalTransition(Exception):
    """An event that the current session state does not allow."""


class State(str, enum.Enum):
    LOCKED = "locked"
    ACTIVE = "active"
    IDLE_WARNED = "idle_warned"


class LockReason(str, enum.Enum):
    MANUAL = "manual"
    IDLE = "idle"
    ABSOLUTE = "absolute"
    LOGOUT = "logout"
    USER_SWITCH = "user_switch"
    RESTART = "restart"
    DEVICE = "device"  # this terminal's registration was revoked or rejected while someone was logged in


@dataclass(frozen=True)
class SessionPolicy:
    idle_timeout_s: int = 300
    idle_warning_s: int = 60
    absolute_limit_s: int = 43200
    full_auth_every_signature: bool = False
    totp_at_first_signature: bool = True


@dataclass(frozen=True)
class Session:
    state: State = State.LOCKED
    owner: str | None = None
    name: str | None = None
    role: str | None = None
    roles: tuple[str, ...] = ()
    session_id: str | None = None
    started: float = 0.0        # monotonic seconds
    last_activity: float = 0.0
    signatures: int = 0         # signatures in this continuous session
    last_owner: str | None = None   # who was logged in before the last lock (their draft is kept)
    last_reason: LockReason | None = None

    @property
    def active(self) -> bool:
        return self.state in (State.ACTIVE, State.IDLE_WARNED)

    def login(self, owner: str, name: str, role: str, roles: tuple[str, ...], session_id: str, now: float) -> "Session":
        if self.state is not State.LOCKED:
            raise IllegalTransition("log out or lock before another login")
        return Session(State.ACTIVE, owner, name, role, roles, session_id, now, now, 0, owner, None)

    def activity(self, now: float) -> "Session":
        if not self.active:
            raise IllegalTransition("no session is open")
        return replace(self, state=State.ACTIVE, last_activity=now)

    def tick(self, now: float, policy: SessionPolicy) -> tuple["Session", LockReason | None]:
        """Advance time: may warn, may lock (idle or absolute limit)."""
        if not self.active:
            return self, None
        if now - self.started >= policy.absolute_limit_s:
            return self.lock(LockReason.ABSOLUTE), LockReason.ABSOLUTE
        idle = now - self.last_activity
        if idle >= policy.idle_timeout_s:
            return self.lock(LockReason.IDLE), LockReason.IDLE
        if idle >= policy.idle_timeout_s - policy.idle_warning_s and self.state is State.ACTIVE:
            return replace(self, state=State.IDLE_WARNED), None
        return self, None

    def lock(self, reason: LockReason) -> "Session":
        if not self.active:
            raise IllegalTransition("the session is already locked")
        return Session(State.LOCKED, last_owner=self.owner, last_reason=reason)

    def signed(self) -> "Session":
        if not self.active:
            raise IllegalTransition("no session is open")
        # Every field, in order: dataclasses.replace takes twice as long, on every signature's path.
        return Session(self.state, self.owner, self.name, self.role, self.roles, self.session_id, self.started,
                       self.last_activity, self.signatures + 1, self.last_owner, self.last_reason)


ALL = ("user_id", "password", "totp")


def components_required(session: Session, signer: str, policy: SessionPolicy, totp_enrolled: bool) -> tuple[str, ...]:
    """Which credential components a signature needs now.

    First signature of a continuous session, or any signature when policy
    says so: every component (user id + password, + TOTP when enrolled and
    required). Later signatures in the same uninterrupted session: the password.
    """
    if not session.active:
        raise IllegalTransition("signing needs an open session; log in first")
    if signer != session.owner:
        raise IllegalTransition("only the person logged in can sign in this session")
    full = ("user_id", "password") + (("totp",) if totp_enrolled and policy.totp_at_first_signature else ())
    if policy.full_auth_every_signature or session.signatures == 0:
        return full
    return ("password",)
