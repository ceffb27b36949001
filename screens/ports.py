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
* ``status``, ``totp_at_login``, ``on_idle_lock``, ``on_manual_lock``, ``on_device_lock``,
  ``logout``, ``report_error`` and ``device_view`` are called on the UI thread and must return
  quickly (in-memory state; queue any I/O). ``status`` is polled once a second.
* ``report_error`` must never raise (the UI guards it anyway).

Messages
--------
Any ``message`` text a service returns is shown to the operator as plain
text, never as markup, so a service may include user-supplied strings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
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
    """Who is logged in, as far as the screens need to know.

    ``areas`` are the screens this session may open (worklist, supervisor,
    audit, users, devices, recipes); the services decide, by role.
    """

    user_id: str
    display_name: str
    role: str
    areas: tuple[str, ...] = ("worklist",)


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
    standalone: bool = False  # no central store configured: nothing to be offline from
    # Online, but the directory is not updated (versions differ, or the central store was restored from a
    # backup): a suspension made at another terminal does not reach this one.
    not_pulling: bool = False


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

    def on_device_lock(self) -> None:
        """The session ended because this terminal is no longer approved (revoked, rejected)."""
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

    def device_view(self) -> "DeviceView":
        """This terminal's registration (UI thread, polled; a cheap local read).

        Anything but "approved" makes the device status screen the only screen.
        """
        ...


# -- batch work: worklist, step detail, signing ------------------------------------


@dataclass(frozen=True)
class BatchRow:
    batch_id: str
    title: str
    recipe: str
    status: str  # not_started | in_progress | needs_resign | complete | released | cancelled
    done_steps: int
    total_steps: int


@dataclass(frozen=True)
class RecipeChoice:
    """A registered recipe version a batch can be started from."""

    key: str  # id@version
    title: str
    started_by: str  # "any role", "supervisor or qa"
    startable: bool  # by the role signed in now


@dataclass(frozen=True)
class SignatureView:
    meaning: str
    name: str
    user_id: str
    role: str
    signed_at: str  # UTC and site time, already formatted
    valid: bool
    taken_back: str = ""  # why it no longer stands (a correction, or withdrawn as signed in error)


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
    signatures: tuple[SignatureView, ...]
    corrections: tuple[str, ...] = ()
    cancelled: str = ""  # why nothing more is recorded on this batch ('' while it is open)
    review: tuple[str, ...] | None = None  # the batch's exceptions, where an approval or release is open
    next: "NextSignatureView | None" = None  # the signature the step takes next (None: none, or no session)
    editable: bool = False  # the person logged in may type the values (enter or correct them)
    entry_note: str = ""  # who enters the values, where the person logged in may not ('' otherwise)
    withdraw: str = ""  # the meaning of the person's own signature they may withdraw as given in error ('' none)


@dataclass(frozen=True)
class NextSignatureView:
    """The step's next signature: a signature is offered only when the person logged in can give it
    (or have a second person give it); otherwise ``note`` says who signs it."""

    meaning: str
    note: str
    offered: bool


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
    clear: bool = False  # what was typed must leave the screen (it held a password)


@runtime_checkable
class WorkServices(Protocol):
    """Batch work for the worklist and step screens. ``sign`` is slow (argon2): call it in a worker."""

    def batch_page(self, offset: int, limit: int) -> tuple[list[BatchRow], int]:
        """Batches ``offset`` .. ``offset + limit`` (newest first) and how many there are in all."""
        ...

    def find_batch(self, text: str) -> "tuple[str, int] | ActionResult":
        """The batch a scanned or typed id (or part of one) names, and its place in ``batch_page``'s order;
        a refusal that says why (none, or several: which)."""
        ...

    def steps(self, batch_id: str) -> list[StepRow]: ...

    def recipes(self) -> list[RecipeChoice]:
        """The registered recipe versions, to start a batch from."""
        ...

    def start_batch(self, batch_id: str, recipe_key: str) -> ActionResult:
        """Start a batch as an instance of a recipe version (a signed record); refused with a reason."""
        ...

    def cancel_batch(self, batch_id: str, reason: str, credentials: Credentials) -> ActionResult:
        """A supervisor or QA cancels a batch started in error. Slow (argon2): call it in a worker."""
        ...

    def step_detail(self, batch_id: str, step_id: str) -> StepDetail: ...

    def save_draft(self, batch_id: str, step_id: str, values: dict) -> None: ...

    def prepare_signature(self, batch_id: str, step_id: str, meaning: str, values: dict, comment: str,
                          deviation_ref: str) -> "SignPreview | ActionResult": ...

    def sign(self, preview: SignPreview, credentials: Credentials) -> ActionResult: ...

    def correct(self, batch_id: str, step_id: str, values: dict, reason: str) -> ActionResult: ...

    def withdraw(self, batch_id: str, step_id: str, meaning: str, reason: str) -> ActionResult:
        """Take back the person's own signature given in error (``StepDetail.withdraw``)."""
        ...


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
    device: str = ""  # the chain it was raised on (a terminal's, or the central store's)


@dataclass(frozen=True)
class AlikeAlerts:
    """The open alerts acknowledged together with one (same kind), as counted when the dialog opens."""

    kind: str
    count: int
    through: str         # raised at or before this moment (UTC): the count's cut-off, kept for the acknowledgement
    refusal: str = ""    # why they are not acknowledged together (a warning or critical alert), if they are not


@dataclass(frozen=True)
class SuspendedUser:
    user_id: str
    name: str


@runtime_checkable
class SupervisorServices(Protocol):
    def open_alerts(self, limit: int) -> tuple[list[AlertView], int]:
        """The newest ``limit`` open alerts, newest first, and how many are open in all."""
        ...

    def suspended(self) -> list[SuspendedUser]: ...

    def acknowledge(self, alert_id: str, note: str) -> ActionResult: ...

    def alike(self, alert: AlertView) -> AlikeAlerts:
        """The open alerts like ``alert`` (same kind, info only), counted up to now."""
        ...

    def acknowledge_alike(self, alike: AlikeAlerts, note: str) -> ActionResult:
        """Acknowledge them under one note (required). Can take seconds for thousands: call it in a worker."""
        ...

    def unlock(self, user_id: str, reason: str, credentials: Credentials) -> ActionResult:
        """Slow (argon2): call it in a worker."""
        ...


# -- this terminal's registration ------------------------------------------------

USABLE_DEVICE_STATUS = "approved"


@dataclass(frozen=True)
class DeviceView:
    """This terminal's registration as the kiosk last observed it.

    ``status`` is unregistered | pending | approved | rejected | revoked (or
    another central status such as frozen); only "approved" lets anyone log in.
    ``fingerprint`` is the full SHA-256 of the device key in groups of four.
    """

    status: str
    device_id: str
    chain: str
    fingerprint: str
    reason: str = ""

    @property
    def usable(self) -> bool:
        return self.status == USABLE_DEVICE_STATUS


# -- admin: users ----------------------------------------------------------------


@dataclass(frozen=True)
class UserRow:
    user_id: str
    name: str
    roles: tuple[str, ...]
    status: str
    badge: str | None
    last_login: str | None = None
    totp: bool = False


@dataclass(frozen=True)
class NewUser:
    """What the admin typed in the create-user dialog."""

    user_id: str
    name: str
    roles: tuple[str, ...]
    reason: str
    identity_verified: bool
    verification_method: str
    badge: str = ""
    with_totp: bool = True


@dataclass(frozen=True)
class IssuedView:
    """Credentials shown once to the admin; never stored, never logged (repr hides them)."""

    user_id: str
    password: str = field(repr=False)
    totp_secret: str | None = field(default=None, repr=False)
    totp_uri: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class IssueResult:
    ok: bool
    message: str = ""
    issued: IssuedView | None = None


@runtime_checkable
class UserAdminServices(Protocol):
    """Users for the admin screen. ``create_user`` and ``reset_credentials`` hash a password: call them in a worker."""

    def roles(self) -> tuple[str, ...]: ...

    def users(self) -> list[UserRow]: ...

    def create_user(self, new: NewUser) -> IssueResult: ...

    def set_roles(self, user_id: str, roles: tuple[str, ...], reason: str) -> ActionResult: ...

    def set_active(self, user_id: str, active: bool, reason: str) -> ActionResult: ...

    def reset_credentials(self, user_id: str, reason: str, identity_verified: bool) -> IssueResult: ...

    def assign_badge(self, user_id: str, badge: str, reason: str) -> ActionResult: ...

    def revoke_badge(self, user_id: str, reason: str) -> ActionResult: ...


# -- admin: devices --------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRegistration:
    chain: str
    status: str
    fingerprint: str
    reason: str
    head_seq: int = 0
    this_terminal: bool = False  # a terminal never decides about itself
    last_heard: str | None = ""  # when the central store last took in its records (UTC); "" never; None unknown


@dataclass(frozen=True)
class DeviceList:
    rows: tuple[DeviceRegistration, ...]
    message: str = ""  # e.g. "no central store configured"; shown as plain text


@runtime_checkable
class DeviceAdminServices(Protocol):
    def devices(self) -> DeviceList: ...

    def decide_device(self, chain: str, decision: str, reason: str, credentials: Credentials) -> ActionResult:
        """decision: approve | reject | revoke. Slow (argon2): call it in a worker."""
        ...


# -- admin: recipes --------------------------------------------------------------


@dataclass(frozen=True)
class RecipeRow:
    key: str
    title: str
    product: str
    version: int
    steps: int
    registered_at: str
    content_hash: str
    started_by: str  # who may start a batch of it: "any role", "supervisor or qa"
    superseded_by: str  # the current version's key when a higher version replaces this one
    takes_effect: str = ""  # the site-local date a version registered ahead takes effect ('' once it has)


@dataclass(frozen=True)
class RecipeStepView:
    number: int
    step_id: str
    title: str
    after: tuple[str, ...]
    fields: tuple[str, ...]
    signatures: tuple[str, ...]  # "Performed by operator", "Verified by operator or qa, not the Performed signer"
    instructions: str = ""


@dataclass(frozen=True)
class RecipeDetail:
    row: RecipeRow
    steps: tuple[RecipeStepView, ...]


@runtime_checkable
class RecipeServices(Protocol):
    def recipes(self) -> list[RecipeRow]: ...

    def recipe_detail(self, key: str) -> RecipeDetail: ...


# -- audit viewer ------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """The filters as typed; the services validate them."""

    user: str = ""
    batch: str = ""
    types: str = ""
    start: str = ""
    end: str = ""


@dataclass(frozen=True)
class AuditLine:
    chain: str
    seq: int
    ts_utc: str
    type: str
    who: str
    about: str
    reason: str


@dataclass(frozen=True)
class AuditPageView:
    """One page, in time order (oldest first). ``token`` is opaque: hand it back to page older/newer."""

    lines: tuple[AuditLine, ...] = ()
    has_older: bool = False
    has_newer: bool = False
    token: object = None
    message: str = ""  # a refusal (bad filter, no permission) when ``ok`` is False; else a note on the page
    ok: bool = True
    stay: bool = False  # nothing further that way: the screen keeps the page it shows and says so


@dataclass(frozen=True)
class AuditRecordView:
    title: str
    fields: tuple[tuple[str, str], ...]  # every header field, hash, signature and verification
    body: str                            # the body as indented JSON


@runtime_checkable
class AuditServices(Protocol):
    """The audit trail for review roles. Reads can be slow on a large store: call them in a worker."""

    def audit_page(self, filters: AuditFilters, direction: str = "newest", token: object = None) -> AuditPageView:
        """direction: newest | oldest | older | newer (older/newer relative to ``token``'s page)."""
        ...

    def audit_record(self, chain: str, seq: int) -> AuditRecordView | ActionResult: ...

    def export_audit(self, filters: AuditFilters) -> ActionResult: ...
