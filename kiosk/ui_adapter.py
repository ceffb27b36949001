"""The services as the screens see them (``screens.ports.KioskServices``).

This is composition, not logic: it translates between the service objects
and the plain dataclasses the screens render, so screens never import
services and services never import the UI.
"""

from __future__ import annotations

import traceback

from kiosk.domain.records import split_chain
from kiosk.domain.session import LockReason
from screens.ports import Credentials, KioskStatus, LoginResult, SessionInfo, SyncState

ROLE_LABELS = {"operator": "Operator", "supervisor": "Supervisor", "qa": "QA", "admin": "Administrator"}


class UiServices:
    def __init__(self, kiosk, sync_status=None) -> None:
        self.kiosk = kiosk
        self._sync_status = sync_status  # callable -> SyncState, when a sync worker runs

    # -- login / session ---------------------------------------------------
    def login(self, credentials: Credentials) -> LoginResult:
        user_text = credentials.user_id
        if credentials.badge:
            holder = self.kiosk.auth.badge_holder(credentials.badge, credentials.password)
            if holder is None:
                from kiosk.services.auth import INVALID

                return LoginResult(False, INVALID)
            user_text = holder
        outcome = self.kiosk.session.login(user_text, credentials.password, credentials.totp)
        if not outcome.ok:
            return LoginResult(False, outcome.message)
        s = self.kiosk.session.session
        return LoginResult(True, "", SessionInfo(s.owner, s.name, ROLE_LABELS.get(s.role, s.role)))

    def verify_admin_exit(self, user_id: str, password: str) -> bool:
        result = self.kiosk.auth.authenticate(user_id, password, None, require_totp=False, purpose="admin_exit")
        return bool(result.ok and result.user and result.user.has_role("admin"))

    def record_exit(self, admin_user_id: str) -> None:
        user = self.kiosk.auth.user(admin_user_id)
        self.kiosk.session.lock(LockReason.RESTART)
        self.kiosk.store.append("kiosk.exited", {
            "actor": {"user_id": admin_user_id, "name": user.printed_name if user else "", "role": "admin"},
            "reason": "admin exit from the lock screen",
        })

    def logout(self) -> None:
        self.kiosk.session.logout()

    def on_idle_lock(self) -> None:
        self.kiosk.session.lock(LockReason.IDLE)

    def on_manual_lock(self) -> None:
        self.kiosk.session.lock(LockReason.MANUAL)

    def status(self) -> KioskStatus:
        s = self.kiosk.session.session
        sync = self._sync_status() if self._sync_status else SyncState(queued=self._queued(), last_sync=None,
                                                                        offline=True)
        device = split_chain(self.kiosk.store.chain)[0]
        if not s.active:
            return KioskStatus(device, sync=sync)
        return KioskStatus(device, s.owner, s.name, ROLE_LABELS.get(s.role, s.role), sync)

    def _queued(self) -> int:
        head = self.kiosk.store.head()
        return 0 if head is None else head.seq - head.synced_upto

    def totp_at_login(self) -> bool:
        return self.kiosk.config.auth.totp_at_login

    def report_error(self, exc: BaseException) -> None:
        """Record where the error happened, never its message (it might hold a typed secret)."""
        frames = [f"{f.filename.rsplit('/', 1)[-1]}:{f.name}" for f in traceback.extract_tb(exc.__traceback__)][-5:]
        try:
            self.kiosk.store.append("app.error", {"error": type(exc).__name__, "where": frames})
        except Exception:  # noqa: BLE001 - the UI already showed a notice; never raise from here
            pass
