"""The one session on this terminal: login, locks, timeouts, drafts — each transition a record.

The session state lives in memory (a restart ends continuity by design);
the records say what happened. Drafts live in the store, keyed by user, so a
lock keeps them and only the same user gets them back.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from kiosk.domain.audit import actor as actor_body, target
from kiosk.domain.clock import Clock
from kiosk.domain.session import LockReason, Session, SessionPolicy
from kiosk.services.auth import Actor, AuthResult, AuthService, UserView
from kiosk.services.ports import DirectoryReader, RecordWriter


class DraftStore(Protocol):
    def save_draft(self, user_id: str, batch_id: str, step_id: str, fields: Mapping[str, str]) -> None: ...

    def load_draft(self, user_id: str, batch_id: str, step_id: str,
                   newer_than: str | None = None) -> dict[str, str] | None:
        """The draft, unless it was last saved at or before ``newer_than`` (a record timestamp)."""
        ...

    def clear_draft(self, user_id: str, batch_id: str, step_id: str) -> None: ...

    def purge_draft(self, user_id: str, batch_id: str, step_id: str) -> None:
        """clear_draft, and no earlier version of it left on disk (it held a secret)."""
        ...


class SessionError(Exception):
    """A session action was refused; the message says why."""


ROLE_ORDER = ("admin", "qa", "supervisor", "operator")


@dataclass(frozen=True)
class LoginOutcome:
    ok: bool
    message: str
    user: UserView | None = None
    must_change_password: bool = False
    needs_first_use: bool = False


class SessionService:
    def __init__(self, store: RecordWriter, auth: AuthService, drafts: DraftStore, clock: Clock,
                 policy: SessionPolicy) -> None:
        self.store = store
        self.auth = auth
        self.drafts = drafts
        self.clock = clock
        self.policy = policy
        self.session = Session()
        self._lock = threading.RLock()

    # -- transitions -------------------------------------------------------
    def login(self, user_text: str, password: str, totp_code: str | None) -> LoginOutcome:
        with self._lock:
            if self.session.active:
                self._end(LockReason.USER_SWITCH)
            result = self.auth.authenticate(user_text, password, totp_code)
            if not result.ok:
                return LoginOutcome(False, result.message)
            user = result.user
            assert user is not None
            role = next((r for r in ROLE_ORDER if r in user.roles), user.roles[0])
            sid = str(uuid.uuid4())
            try:
                self.store.append("session.login", {
                    "actor": actor_body(user.user_id, user.printed_name, role), "target": target("user", user.user_id),
                    "session_id": sid, "roles": list(user.roles), "auth": result.auth_body(),
                })
            except Exception as exc:  # a replayed one-time code is refused inside the append
                from kiosk.services.auth import InvalidInput
                from kiosk.domain.directory import DirectoryConflict

                if isinstance(exc, (DirectoryConflict, InvalidInput)):
                    return LoginOutcome(False, "That one-time code was already used; wait for the next one.")
                raise
            self.session = self.session.login(user.user_id, user.printed_name, role, user.roles, sid,
                                              self.clock.monotonic())
            expired = self.auth.password_expired(user)
            return LoginOutcome(True, "ok", user, user.must_change_password or expired, not user.first_use_accepted)

    def activity(self) -> None:
        with self._lock:
            if self.session.active:
                self.session = self.session.activity(self.clock.monotonic())

    def tick(self) -> LockReason | None:
        """Apply the idle and absolute limits (the UI also measures idle from real input)."""
        with self._lock:
            before = self.session
            self.session, reason = self.session.tick(self.clock.monotonic(), self.policy)
            if reason is not None:
                self._record_end(before, reason)
            return reason

    def lock(self, reason: LockReason = LockReason.MANUAL) -> None:
        with self._lock:
            if self.session.active:
                self._end(reason)

    def logout(self) -> None:
        self.lock(LockReason.LOGOUT)

    def _end(self, reason: LockReason) -> None:
        before = self.session
        self.session = self.session.lock(reason)
        self._record_end(before, reason)

    def _record_end(self, before: Session, reason: LockReason) -> None:
        rtype = {LockReason.LOGOUT: "session.logout", LockReason.IDLE: "session.timeout",
                 LockReason.ABSOLUTE: "session.timeout"}.get(reason, "session.locked")
        self.store.append(rtype, {
            "actor": actor_body(before.owner or "", before.name or "", before.role or ""),
            "target": target("user", before.owner or ""), "session_id": before.session_id, "reason": reason.value,
            "signatures": before.signatures,
        })

    def restart(self) -> None:
        """At start-up: a session still open when the kiosk stopped (crash, power cut) ended with the restart.

        Continuity never survives a restart; the record says so, naming who was logged in.
        """
        from kiosk.domain.directory import SESSION

        with self._lock:
            self.session = Session(last_reason=LockReason.RESTART)
            doc = self.auth.directory.get(SESSION, self.store.chain)
            if doc and doc.get("open"):
                actor = doc.get("actor") or {}
                self.session = Session(last_owner=actor.get("user_id"), last_reason=LockReason.RESTART)
                self.store.append("session.locked", {
                    "actor": dict(actor), "target": target("user", actor.get("user_id", "")),
                    "session_id": doc.get("session_id"), "reason": LockReason.RESTART.value,
                })

    def signed(self) -> None:
        with self._lock:
            self.session = self.session.signed()

    # -- the session owner ------------------------------------------------
    def owner_id(self) -> str:
        """Who is logged in, without reading their account (the caller checks it where it matters)."""
        session = self.session
        if not session.active or session.owner is None:
            raise SessionError("nobody is logged in; log in first")
        return session.owner

    def owner(self, reader: DirectoryReader | None = None) -> UserView:
        """The person logged in, as ``reader`` sees them (default: the directory cache).

        Signing passes the reader of its append transaction, so the owner's
        account is checked against the state the signature is written onto.
        No lock is taken: transitions hold the session lock while they append,
        so a check inside an append must never wait for it (the two would
        deadlock). One read of ``self.session`` is one immutable snapshot.
        """
        user = self.auth.user(self.owner_id(), reader)
        if user is None or user.status != "active":
            raise SessionError("your account is no longer active; ask a supervisor")
        return user

    def actor(self) -> Actor:
        """The person logged in, acting in the role of this session (what supervisor and admin actions need)."""
        owner = self.owner()
        return Actor(owner.user_id, owner.printed_name, self.session.role or "")

    # -- drafts -------------------------------------------------------------
    def save_draft(self, batch_id: str, step_id: str, fields: Mapping[str, str]) -> None:
        self.drafts.save_draft(self.owner().user_id, batch_id, step_id, fields)

    def load_draft(self, batch_id: str, step_id: str, newer_than: str | None = None) -> dict[str, str] | None:
        return self.drafts.load_draft(self.owner().user_id, batch_id, step_id, newer_than)


def auth_summary(result: AuthResult) -> dict[str, Any]:
    return result.auth_body()
