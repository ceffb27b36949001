"""A stand-in for the services, implementing ``screens.ports.KioskServices``.

The real services (auth, signing, sync) are written elsewhere; the UI shell
is tested against this small fake. It records every call so tests can check
what the UI asked for, and can be told to fail.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from screens.ports import Credentials, DeviceView, KioskStatus, LoginResult, SessionInfo, SyncState

DEVICE = "KX-01"


@dataclass
class FakeUser:
    user_id: str
    password: str
    display_name: str
    role: str
    totp: str | None = None
    badge: str | None = None
    admin: bool = False


DEFAULT_USERS = [
    FakeUser("aortiz", "correct horse", "Ana Ortiz", "Operator", totp="123456", badge="B-1001"),
    FakeUser("admin", "admin secret", "Site Admin", "Administrator", admin=True),
]


@dataclass
class FakeServices:
    users: list[FakeUser] = field(default_factory=lambda: list(DEFAULT_USERS))
    device_id: str = DEVICE
    sync: SyncState = SyncState(queued=3, last_sync=None, offline=False)
    totp: bool = False
    fail_login_with: Exception | None = None
    status_override: KioskStatus | None = None
    login_gate: threading.Event | None = None  # set() it to let a login finish
    device: DeviceView = DeviceView("approved", DEVICE, f"{DEVICE}:1", " ".join(["ab12"] * 16))

    calls: list[tuple] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    session: SessionInfo | None = None

    # -- KioskServices -----------------------------------------------------------

    def login(self, credentials: Credentials) -> LoginResult:
        self.calls.append(("login", credentials.user_id, credentials.badge, credentials.totp))
        if self.login_gate is not None:
            self.login_gate.wait(5)
        if self.fail_login_with is not None:
            raise self.fail_login_with
        for user in self.users:
            same = (credentials.badge and credentials.badge == user.badge) or (
                not credentials.badge and credentials.user_id.casefold() == user.user_id.casefold()
            )
            if same and credentials.password == user.password and (not self.totp or credentials.totp == user.totp):
                self.session = SessionInfo(user.user_id, user.display_name, user.role)
                return LoginResult(ok=True, session=self.session)
        return LoginResult(ok=False, message="User ID, password or code not accepted.")

    def verify_admin_exit(self, user_id: str, password: str) -> bool:
        self.calls.append(("verify_admin_exit", user_id))
        return any(u.admin and u.user_id == user_id and u.password == password for u in self.users)

    def logout(self) -> None:
        self.calls.append(("logout",))
        self.session = None

    def on_idle_lock(self) -> None:
        self.calls.append(("on_idle_lock",))
        self.session = None

    def on_manual_lock(self) -> None:
        self.calls.append(("on_manual_lock",))
        self.session = None

    def on_device_lock(self) -> None:
        self.calls.append(("on_device_lock",))
        self.session = None

    def status(self) -> KioskStatus:
        if self.status_override is not None:
            return self.status_override
        s = self.session
        return KioskStatus(
            device_id=self.device_id,
            user_id=s.user_id if s else None,
            display_name=s.display_name if s else None,
            role=s.role if s else None,
            sync=self.sync,
        )

    def totp_at_login(self) -> bool:
        return self.totp

    def report_error(self, exc: BaseException) -> None:
        self.errors.append(exc)

    def device_view(self) -> DeviceView:
        return self.device

    # -- helpers -----------------------------------------------------------------

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]
