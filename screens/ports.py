"""What the screens need from the services: the one seam between UI and core.

The screens never import ``kiosk.services`` concretely; the composition root
(``kiosk.app``) passes an object that satisfies :class:`KioskServices`.
Everything here is plain data (frozen dataclasses) so a service can build the
values without importing Textual, and a test can build them by hand.

Threading contract
------------------
* ``login`` and ``verify_admin_exit`` may be slow (argon2, ~100 ms or more):
  the UI always calls them in a worker thread, never on the event loop.
  They must be thread-safe with respect to the other methods.
* ``status``, ``totp_at_login``, ``on_idle_lock``, ``on_manual_lock``,
  ``logout`` and ``report_error`` are called on the UI thread and must return
  quickly (in-memory state; queue any I/O). ``status`` is polled once a second.
* ``report_error`` must never raise (the UI guards it anyway).

Messages
--------
Any ``message`` text a service returns is shown to the operator as plain
text, never as markup, so a service may include user-supplied strings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Credentials:
    """What a person typed (or scanned) to identify themselves.

    ``user_id`` is empty when the person identified with a badge instead; the
    service resolves ``badge`` to a user. A badge never replaces the password:
    ``password`` is always required. ``totp`` is None when the field was not
    shown, "" when shown but left empty.
    """

    user_id: str
    password: str
    totp: str | None = None
    badge: str | None = None

    def __repr__(self) -> str:  # never leak a password into a log or traceback
        return (
            f"Credentials(user_id={self.user_id!r}, password=<hidden>, "
            f"totp={'<hidden>' if self.totp else self.totp!r}, badge={'<set>' if self.badge else None})"
        )


@dataclass(frozen=True)
class SessionInfo:
    """Who is logged in, as far as the screens need to know."""

    user_id: str
    display_name: str
    role: str


@dataclass(frozen=True)
class LoginResult:
    """The outcome of ``login``. On failure ``message`` is shown as-is."""

    ok: bool
    message: str = ""
    session: SessionInfo | None = None


@dataclass(frozen=True)
class SyncState:
    queued: int = 0
    last_sync: dt.datetime | None = None  # aware UTC, None = never synced
    offline: bool = False


@dataclass(frozen=True)
class KioskStatus:
    """Everything the status bar shows, in one cheap snapshot."""

    device_id: str
    user_id: str | None = None  # None when nobody is logged in
    display_name: str | None = None
    role: str | None = None
    sync: SyncState = SyncState()


@runtime_checkable
class KioskServices(Protocol):
    """The services the UI shell calls. Real implementation: kiosk.services."""

    def login(self, credentials: Credentials) -> LoginResult:
        """Authenticate and open a session (slow: called in a worker thread)."""
        ...

    def verify_admin_exit(self, user_id: str, password: str) -> bool:
        """True if these are valid credentials of an active admin (worker thread).

        The service records the attempt (success and failure) and counts a
        failure like any other failed login.
        """
        ...

    def logout(self) -> None:
        """The session owner ended the session on purpose."""
        ...

    def on_idle_lock(self) -> None:
        """The session was locked by inactivity (draft kept for the same user)."""
        ...

    def on_manual_lock(self) -> None:
        """The session owner locked the terminal (F12)."""
        ...

    def status(self) -> KioskStatus:
        """A cheap snapshot for the status bar (UI thread, once a second)."""
        ...

    def totp_at_login(self) -> bool:
        """Whether the login screen shows the one-time-code field."""
        ...

    def report_error(self, exc: BaseException) -> None:
        """Record an unexpected error (the UI showed a notice). Must not raise."""
        ...


# -- batch work: worklist, step detail, signing ------------------------------------


@dataclass(frozen=True)
class BatchRow:
    batch_id: str
    title: str
    recipe: str
    done_steps: int
    total_steps: int


@dataclass(frozen=True)
class SignatureView:
    meaning: str
    name: str
    user_id: str
    role: str
    signed_at: str  # UTC and site time, already formatted
    valid: bool


@dataclass(frozen=True)
class StepRow:
    step_id: str
    title: str
    status: str  # locked | open | in_progress | needs_resign | done
    signatures: tuple[SignatureView, ...] = ()


@dataclass(frozen=True)
class FieldView:
    name: str
    label: str
    type: str
    unit: str = ""
    limits: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepDetail:
    batch_id: str
    step_id: str
    title: str
    instructions: str
    status: str
    fields: tuple[FieldView, ...]
    values: dict
    open_meanings: tuple[str, ...]
    signatures: tuple[SignatureView, ...]
    corrections: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignPreview:
    """What the sign dialog shows before any credential is typed.

    ``lines`` is the full manifestation; ``signer`` is the fixed user id when
    only the password is needed, None when the signer types their own id (first
    signature of a session, or a witness).
    """

    token: object
    title: str
    lines: tuple[str, ...]
    components: tuple[str, ...]
    signer: str | None
    witness: bool


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str = ""


@runtime_checkable
class WorkServices(Protocol):
    """Batch work for the worklist and step screens. ``sign`` is slow (argon2): call it in a worker."""

    def batches(self) -> list[BatchRow]: ...

    def steps(self, batch_id: str) -> list[StepRow]: ...

    def step_detail(self, batch_id: str, step_id: str) -> StepDetail: ...

    def save_draft(self, batch_id: str, step_id: str, values: dict) -> None: ...

    def prepare_signature(self, batch_id: str, step_id: str, meaning: str, values: dict, comment: str,
                          deviation_ref: str) -> "SignPreview | ActionResult": ...

    def sign(self, preview: SignPreview, credentials: Credentials) -> ActionResult: ...

    def correct(self, batch_id: str, step_id: str, values: dict, reason: str) -> ActionResult: ...


@dataclass(frozen=True)
class Onboarding:
    """What a user must do before working: accept the e-signature statement, then change a temporary password."""

    kind: str  # "first_use" | "change_password"
    text: str
    ask_totp: bool = False


@runtime_checkable
class OnboardingServices(Protocol):
    def onboarding(self) -> Onboarding | None: ...

    def accept_first_use(self) -> ActionResult: ...

    def change_password(self, current: str, new: str, repeat: str, totp: str | None) -> ActionResult:
        """Slow (argon2): call it in a worker."""
        ...


@dataclass(frozen=True)
class AlertView:
    alert_id: str
    at: str
    severity: str
    kind: str
    message: str


@dataclass(frozen=True)
class SuspendedUser:
    user_id: str
    name: str


@runtime_checkable
class SupervisorServices(Protocol):
    def alerts(self) -> list[AlertView]: ...

    def suspended(self) -> list[SuspendedUser]: ...

    def acknowledge(self, alert_id: str, note: str) -> ActionResult: ...

    def unlock(self, user_id: str, reason: str, credentials: Credentials) -> ActionResult:
        """Slow (argon2): call it in a worker."""
        ...
