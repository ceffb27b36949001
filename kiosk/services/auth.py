"""Who a person is and whether they may act: users, passwords, TOTP, lockout, unlock, alerts.

Every decision is a record: failures, suspensions, unlocks and user changes
are appended to the local chain, and the directory cache is derived from
those records in the same transaction. Failure answers are the same for an
unknown user, a wrong password and a wrong code, and cost the same work (one
argon2 verify), so the kiosk never reveals which user ids exist.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from kiosk.domain import directory as dirx
from kiosk.domain.audit import actor as actor_body, alert_raised, target
from kiosk.domain.clock import Clock, format_ts, parse_ts, utc_time
from kiosk.domain.identity import InvalidText, InvalidUserId, Role, check_text, normalize_user_id
from kiosk.domain.lockout import FailureState, LockoutPolicy, decide
from kiosk.domain.passwords import Blocklist, PasswordHasher, PasswordPolicy, PasswordRejected, check_new_password
from kiosk.domain.totp import SecretBox, SecretBoxError, new_secret, provisioning_uri, verify_totp
from kiosk.services.ports import DirectoryReader, ListingDirectory, RecordWriter

INVALID = "Invalid user id, password or one-time code."
DEVICE_REVOKED = ("This terminal's registration was {status} by the site; nobody can sign in here. "
                  "Ask a site admin. Records already made are kept and still sent.")
DEVICE_NOT_APPROVED = ("This terminal is not approved by the site (status: {status}); nobody can sign in here "
                       "until a site admin approves it.")
SUSPENDED = "Your account is suspended. Ask a supervisor to unlock it."
# Whose failures: the terminal's or the typed id's, not said (that would tell whether an id has failures);
# both named, so the supervisor who comes to unlock someone knows the wait may not be about them.
THROTTLED = "Too many failed sign-ins on this terminal or user id. Try again in {wait} s."
DEACTIVATED = "This account is deactivated. Ask a site admin."
FIRST_USE_STATEMENT = (
    "I certify that my electronic signature on this system is the legally binding equivalent "
    "of my traditional handwritten signature (21 CFR 11.100(c))."
)
TEMP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
# Alert ids per alerts.acknowledged record: ~20 KB, well under the record limit, whatever the backlog.
ACKNOWLEDGED_PER_RECORD = 500
ACKNOWLEDGED_PER_TRANSACTION = 5000


class AuthError(Exception):
    """An action was refused; the message is safe to show and says what to do."""


class NotPermitted(AuthError):
    pass


class InvalidInput(AuthError):
    pass


class PasswordTyped(AuthError):
    """The person's own password is in a text that would have been recorded (typed in the wrong field)."""


def typed_in(password: str, texts: Iterable[str | None]) -> bool:
    """Whether the password was typed into one of these texts, which are shown, saved and recorded."""
    return bool(password) and any(password in text for text in texts if text)


@dataclass(frozen=True)
class Actor:
    """A person acting now, in one of their roles (the caller authenticated them)."""

    user_id: str
    name: str
    role: str

    def body(self) -> dict[str, str]:
        return actor_body(self.user_id, self.name, self.role)


@dataclass(frozen=True)
class UserView:
    user_id: str
    printed_name: str
    roles: tuple[str, ...]
    status: str
    badge_id: str | None
    totp_enrolled: bool
    first_use_accepted: bool
    must_change_password: bool
    last_login: str | None
    qualifications: tuple[str, ...] = ()
    password_changed_at: str | None = None
    password_exposed: bool = False  # typed where it was shown and saved: it must be changed

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)


@dataclass(frozen=True)
class Unlocked:
    """An unlock as recorded: the account now, and how many of its suspension alerts the unlock closed."""

    user: UserView
    alerts_closed: int

    def closing(self) -> str:
        """What the unlock did beside the account, as the supervisor's message ends."""
        if not self.alerts_closed:
            return ""
        return " and closes its suspension alert" + ("s" if self.alerts_closed > 1 else "")


@dataclass(frozen=True)
class IssuedCredentials:
    """Shown once to the admin who issued them, never stored in clear, never logged."""

    user_id: str
    temporary_password: str = field(repr=False)
    totp_secret: str | None = field(default=None, repr=False)
    totp_uri: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    message: str
    user: UserView | None = None
    totp_step: int | None = None
    components: tuple[str, ...] = ()
    retry_after_s: int = 0

    @property
    def must_change_password(self) -> bool:
        return bool(self.user and self.user.must_change_password)

    @property
    def needs_first_use(self) -> bool:
        return bool(self.user and not self.user.first_use_accepted)

    def auth_body(self) -> dict[str, Any]:
        """What a record says about how its actor authenticated (consumes the TOTP step)."""
        body: dict[str, Any] = {"components": list(self.components)}
        if self.totp_step is not None:
            body["totp_step"] = self.totp_step
        return body


def view(doc: Mapping[str, Any]) -> UserView:
    return UserView(
        user_id=doc["user_id"],
        printed_name=doc["printed_name"],
        roles=tuple(doc["roles"]),
        status=doc["status"],
        badge_id=doc.get("badge_id"),
        totp_enrolled=bool(doc.get("totp")),
        first_use_accepted=bool(doc.get("first_use_accepted")),
        must_change_password=bool(doc.get("temporary") or doc.get("password_exposed")),
        last_login=doc.get("last_login"),
        qualifications=tuple(doc.get("qualifications", ())),
        password_changed_at=doc.get("password_changed_at"),
        password_exposed=bool(doc.get("password_exposed")),
    )


INVALID_ID = "<invalid id>"


def unknown_identity(box: SecretBox, text: str, *, badge: bool = False) -> str:
    """How records name a user id (or badge) that matches no account: its fingerprint, never the text,
    which may be a password typed in the wrong field. Text that is no valid id at all is only INVALID_ID."""
    if badge:
        return box.fingerprint("badge", text.strip())
    try:
        return box.fingerprint("id", normalize_user_id(text))
    except InvalidUserId:
        return INVALID_ID


def _failures(doc: Mapping[str, Any] | None) -> FailureState:
    doc = doc or dirx.empty_failures()
    return FailureState(
        count=int(doc["count"]),
        first_failure_at=parse_ts(doc["first"]) if doc.get("first") else None,
        last_failure_at=parse_ts(doc["last"]) if doc.get("last") else None,
    )


def _failures_doc(state: FailureState) -> dict[str, Any]:
    return {
        "count": state.count,
        "first": format_ts(state.first_failure_at) if state.first_failure_at else None,
        "last": format_ts(state.last_failure_at) if state.last_failure_at else None,
    }


class AuthService:
    def __init__(
        self,
        store: RecordWriter,
        directory: ListingDirectory,
        clock: Clock,
        *,
        hasher: PasswordHasher,
        box: SecretBox,
        blocklist: Blocklist,
        lockout: LockoutPolicy,
        passwords: PasswordPolicy,
        totp_at_login: bool = True,
        issuer: str = "Signing kiosk",
        registration_required: bool = False,
    ) -> None:
        self.store = store
        self.directory = directory
        self.clock = clock
        self.hasher = hasher
        self.box = box
        self.blocklist = blocklist
        self.lockout = lockout
        self.passwords = passwords
        self.totp_at_login = totp_at_login
        self.issuer = issuer
        # A terminal of a site with a central store works only once the site approved it (the UI shows the
        # device status screen; this is the same rule where it counts).
        self.registration_required = registration_required
        self._credentials: dict[tuple[str, str], str] = {}  # opened credentials, see _stored_hash

    # -- reading -------------------------------------------------------------
    @property
    def device_id(self) -> str:
        return self.store.chain.rpartition(":")[0]

    def user(self, user_id: str, reader: DirectoryReader | None = None) -> UserView | None:
        try:
            uid = normalize_user_id(user_id)
        except InvalidUserId:
            return None
        doc = (reader or self.directory).get(dirx.USER, uid)
        return None if doc is None else view(doc)

    def users(self) -> list[UserView]:
        return [view(d) for d in self.directory.all(dirx.USER)]

    def any_admin(self) -> bool:
        return any(Role.ADMIN.value in d["roles"] and d["status"] != "deactivated" for d in self.directory.all(dirx.USER))

    def user_by_badge(self, badge_id: str) -> UserView | None:
        holder = self.directory.get(dirx.BADGE, badge_id.strip())
        if holder is None or holder.get("revoked"):
            return None
        return self.user(holder["user_id"])

    # -- issuing credentials ------------------------------------------------
    def _temporary_password(self) -> str:
        groups = ["".join(secrets.choice(TEMP_ALPHABET) for _ in range(4)) for _ in range(4)]
        return "-".join(groups)

    def _credential(self, uid: str, password: str, temporary: bool) -> dict[str, Any]:
        return {"enc": self.box.encrypt(f"password:{uid}", self.hasher.hash(password)), "temporary": temporary}

    def _issue(self, uid: str, with_totp: bool) -> tuple[IssuedCredentials, dict[str, Any], dict[str, Any] | None]:
        temp = self._temporary_password()
        secret = new_secret() if with_totp else None
        issued = IssuedCredentials(
            uid, temp, secret, provisioning_uri(secret, uid, self.issuer) if secret else None
        )
        totp = {"enc": self.box.encrypt(f"totp:{uid}", secret)} if secret else None
        return issued, self._credential(uid, temp, True), totp

    def _clean_roles(self, roles: Iterable[str]) -> list[str]:
        allowed = {r.value for r in Role}
        cleaned = sorted({str(r).strip().lower() for r in roles})
        bad = [r for r in cleaned if r not in allowed]
        if bad or not cleaned:
            raise InvalidInput(f"roles must be one or more of {', '.join(sorted(allowed))}")
        return cleaned

    def _text(self, field_name: str, text: str, max_len: int = 120) -> str:
        try:
            return check_text(field_name, text, max_len)
        except InvalidText as exc:
            raise InvalidInput(str(exc)) from None

    def _reason(self, text: str) -> str:
        cleaned = self._text("reason", text, 500)
        if len(cleaned) < 4:
            raise InvalidInput("give a reason of at least 4 characters")
        return cleaned

    def _uid(self, text: str) -> str:
        try:
            return normalize_user_id(text)
        except InvalidUserId as exc:
            raise InvalidInput(str(exc)) from None

    def bootstrap(self, user_id: str, printed_name: str) -> IssuedCredentials:
        """The first admin, once: refused as soon as any admin exists."""
        if self.any_admin():
            raise NotPermitted("an admin already exists; bootstrap runs only once")
        uid = self._uid(user_id)
        name = self._text("printed name", printed_name)
        issued, cred, totp = self._issue(uid, with_totp=True)
        system = {"user_id": "system:bootstrap", "name": "Bootstrap", "role": "system"}
        self._append([("user.created", {
            "actor": system, "target": target("user", uid), "reason": "first admin of the site",
            "new": {"user_id": uid, "printed_name": name, "roles": ["admin"]},
            "identity_verification": {"attested_by": "system:bootstrap", "method": "site bootstrap"},
            "credential": cred, "totp": totp,
        })])
        return issued

    def create_user(
        self, actor: Actor, user_id: str, printed_name: str, roles: Iterable[str], *, reason: str,
        identity_verified: bool, verification_method: str = "photo ID checked in person",
        badge_id: str | None = None, with_totp: bool = True, qualifications: Iterable[str] = (),
    ) -> IssuedCredentials:
        self._require(actor, "admin")
        # Every problem at once, in the order of the form: the admin fixes them in one pass, not one a try.
        problems: list[str] = []

        def checked(check: Callable[[], Any]) -> Any:
            try:
                return check()
            except InvalidInput as exc:
                problems.append(str(exc))
                return None

        uid = checked(lambda: self._uid(user_id))
        if uid is not None and self.directory.get(dirx.USER, uid) is not None:
            problems.append(f"user id {uid!r} is taken (ids are never reused, even after deactivation)")
        name = checked(lambda: self._text("printed name", printed_name))
        badge = checked(lambda: self._text("badge id", badge_id, 64)) if badge_id else None
        if badge and self.directory.get(dirx.BADGE, badge) is not None:
            problems.append("that badge id was already assigned once; badge ids are never reused")
        granted = checked(lambda: self._clean_roles(roles))
        if not identity_verified:
            problems.append("confirm that you verified this person's identity before issuing a signature (11.100(b))")
        method = checked(lambda: self._text("verification method", verification_method, 200))
        why = checked(lambda: self._reason(reason))
        if problems:
            raise InvalidInput("\n".join(problems))
        issued, cred, totp = self._issue(uid, with_totp)
        new: dict[str, Any] = {"user_id": uid, "printed_name": name, "roles": granted,
                               "qualifications": sorted({self._text("qualification", q, 64) for q in qualifications})}
        if badge:
            new["badge_id"] = badge
        self._append([("user.created", {
            "actor": actor.body(), "target": target("user", uid), "reason": why, "new": new,
            "identity_verification": {"attested_by": actor.user_id, "method": method},
            "credential": cred, "totp": totp,
        })])
        return issued

    def update_user(self, actor: Actor, user_id: str, *, reason: str, **changes: Any) -> UserView:
        """Change printed name, roles, qualifications, badge, or deactivate/re-activate (admin only)."""
        self._require(actor, "admin")
        uid = self._uid(user_id)
        doc = self.directory.get(dirx.USER, uid)
        if doc is None:
            raise InvalidInput(f"no user {uid!r}")
        reason = self._reason(reason)
        new: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "printed_name":
                value = self._text("printed name", value)
            elif key == "roles":
                value = self._clean_roles(value)
            elif key == "qualifications":
                value = sorted({self._text("qualification", q, 64) for q in value})
            elif key == "badge_id":
                value = self._text("badge id", value, 64) if value else None
                if value and self.directory.get(dirx.BADGE, value) is not None:
                    raise InvalidInput("that badge id was already assigned once; badge ids are never reused")
            elif key == "status":
                if value not in ("active", "deactivated"):
                    raise InvalidInput("status can be set to active or deactivated (suspension comes from failed attempts)")
                if value == "deactivated" and uid == actor.user_id:
                    raise NotPermitted("you cannot deactivate your own account")
                if value == "active" and doc.get("status") == "suspended":
                    raise NotPermitted("a suspended account is unlocked by a supervisor with their own credentials "
                                       "(supervisor screen), not re-activated")
            else:
                raise InvalidInput(f"{key} cannot be changed")
            if doc.get(key) != value and not (key == "roles" and sorted(doc.get(key, [])) == value):
                new[key] = value
        if not new:
            raise InvalidInput("nothing to change")
        old = {k: doc.get(k) for k in new}
        self._append([("user.updated", {"actor": actor.body(), "target": target("user", uid), "reason": reason,
                                        "old": old, "new": new})])
        return self.user(uid)  # type: ignore[return-value]

    def reset_credentials(self, actor: Actor, user_id: str, *, reason: str, identity_verified: bool,
                          new_totp: bool = True) -> IssuedCredentials:
        """Loss management (11.300(c)): revoke password and TOTP at once and re-issue after an identity check."""
        self._require(actor, "admin")
        if not identity_verified:
            raise InvalidInput("confirm that you verified this person's identity before re-issuing credentials")
        uid = self._uid(user_id)
        if self.directory.get(dirx.USER, uid) is None:
            raise InvalidInput(f"no user {uid!r}")
        reason = self._reason(reason)
        issued, cred, totp = self._issue(uid, new_totp)
        items: list[tuple[str, dict[str, Any]]] = [("user.password_changed", {
            "actor": actor.body(), "target": target("user", uid), "reason": reason, "credential": cred,
            "history_size": self.passwords.history + 1,
        })]
        if totp:
            items.append(("user.totp_enrolled", {"actor": actor.body(), "target": target("user", uid),
                                                 "reason": reason, "totp": totp}))
        self._append(items)
        return issued

    # -- authentication -----------------------------------------------------
    def authenticate(self, user_text: str, password: str, totp_code: str | None = None, *,
                     require_totp: bool | None = None, purpose: str = "login",
                     allow_suspended: bool = False) -> AuthResult:
        """Check credentials; record and alert every failure. Does not open a session.

        ``allow_suspended`` (break-glass only) lets a suspended account that proved every
        component through: the caller decides what such a person may still do.
        """
        try:
            uid = normalize_user_id(user_text)
        except InvalidUserId:
            uid = None
        # One read for the terminal's status, both failure counters and the account.
        device, user_failures, device_failures, doc = self.directory.get_many([
            (dirx.DEVICE, self.store.chain), (dirx.FAILURES_ID, uid or ""), (dirx.FAILURES_DEVICE, self.device_id),
            (dirx.USER, uid or ""),
        ])
        key = uid if doc is not None else self.unknown_identity(user_text)
        if doc is None:  # an unknown id's attempts are counted under its fingerprint
            user_failures = self.directory.get(dirx.FAILURES_ID, key)
        # An admin may still exit the kiosk program on a revoked terminal (nothing is signed by exiting).
        status = device.get("status") if device else None
        if status in ("revoked", "rejected") and purpose != "admin_exit":
            self.hasher.verify_dummy(password)
            return AuthResult(False, DEVICE_REVOKED.format(status=status))
        if self.registration_required and status != "approved" and purpose != "admin_exit":
            self.hasher.verify_dummy(password)
            return AuthResult(False, DEVICE_NOT_APPROVED.format(status=status or "unregistered"))
        now = self.clock.now()
        user_state = _failures(user_failures)
        device_state = _failures(device_failures)
        wait = max(self._wait(user_state, now), self._wait(device_state, now))
        if wait > 0:
            return AuthResult(False, THROTTLED.format(wait=wait), retry_after_s=wait)
        if doc is None:
            self.hasher.verify_dummy(password)
            return self._fail(key, None, "unknown_user", user_state, device_state, now)
        try:
            stored = self._stored_hash(uid, doc["credential"])
        except SecretBoxError:
            self.hasher.verify_dummy(password)
            raise AuthError("this kiosk cannot read the stored credentials (wrong site key); ask a site admin") from None
        if not self.hasher.verify(stored, password):
            return self._fail(uid, doc, "bad_password", user_state, device_state, now)
        components = ["user_id", "password"]
        totp_step = None
        needs_totp = self.totp_at_login if require_totp is None else require_totp
        if needs_totp and doc.get("totp"):
            secret = self.box.decrypt(f"totp:{uid}", doc["totp"])
            totp_step = verify_totp(secret, (totp_code or "").strip(), now, doc.get("totp_last_step", -1))
            if totp_step is None:
                return self._fail(uid, doc, "bad_totp", user_state, device_state, now)
            components.append("totp")
        if doc["status"] == "suspended" and not (allow_suspended and "totp" in components):
            self._record_failure(uid, doc, "suspended", user_state, device_state, now, count=False)
            return AuthResult(False, SUSPENDED)
        if doc["status"] == "deactivated":
            self._record_failure(uid, doc, "deactivated", user_state, device_state, now, count=False)
            return AuthResult(False, DEACTIVATED)
        return AuthResult(True, "ok", view(doc), totp_step, tuple(components))

    def _stored_hash(self, uid: str, credential: str) -> str:
        """The account's argon2 hash, opened from its sealed credential (on the signing path).

        Each opened credential is kept, keyed by the user and the sealed text itself, so a new password
        (a new sealed text) or a credential moved to another account is opened, and checked, afresh.
        Keeping it exposes nothing new: the site key that opens it is in this process's memory anyway.
        """
        stored = self._credentials.get((uid, credential))
        if stored is None:
            stored = self.box.decrypt(f"password:{uid}", credential)
            if len(self._credentials) >= 256:
                self._credentials.clear()
            self._credentials[(uid, credential)] = stored
        return stored

    def badge_holder(self, badge: str, password: str) -> str | None:
        """The user id a badge belongs to. An unknown or revoked badge is a failed attempt
        (recorded and alerted) after the same work as a real check."""
        holder = self.user_by_badge(badge)
        if holder is not None:
            return holder.user_id
        now = self.clock.now()
        key = unknown_identity(self.box, badge, badge=True)
        user_state = _failures(self.directory.get(dirx.FAILURES_ID, key))
        device_state = _failures(self.directory.get(dirx.FAILURES_DEVICE, self.device_id))
        self.hasher.verify_dummy(password)
        self._record_failure(key, None, "unknown_badge", user_state, device_state, now, count=True)
        return None

    def unknown_identity(self, user_text: str) -> str:
        return unknown_identity(self.box, user_text)

    def _wait(self, state: FailureState, now: dt.datetime) -> int:
        delay, _ = decide(state, now, self.lockout)
        return int(delay + 0.999)

    def _fail(self, key: str, doc: Mapping[str, Any] | None, cause: str, user_state: FailureState,
              device_state: FailureState, now: dt.datetime) -> AuthResult:
        self._record_failure(key, doc, cause, user_state, device_state, now, count=True)
        return AuthResult(False, INVALID)

    def _record_failure(self, key: str, doc: Mapping[str, Any] | None, cause: str, user_state: FailureState,
                        device_state: FailureState, now: dt.datetime, *, count: bool) -> None:
        if count:
            user_state = user_state.after_failure(now, self.lockout)
            device_state = device_state.after_failure(now, self.lockout)
        _, suspend = decide(user_state, now, self.lockout)
        body: dict[str, Any] = {
            "attempted_user_id": key,
            "cause": cause,
            "user_failures": _failures_doc(user_state),
            "device_failures": _failures_doc(device_state),
        }
        if doc is not None:
            body["target"] = target("user", doc["user_id"])
        severity = "warning" if cause in ("unknown_user", "unknown_badge", "suspended", "deactivated") else "info"
        items: list[tuple[str, dict[str, Any]]] = [
            ("auth.failed", body),
            alert_raised(f"auth.{cause}", severity,
                         f"failed sign-in ({cause.replace('_', ' ')}) for "
                         f"{'user id ' + repr(key) if doc is not None else key} "
                         f"on {self.device_id}; failures: {user_state.count}", target("user", key)),
        ]
        if count and suspend and doc is not None and doc["status"] == "active":
            items.append(("account.suspended", {
                "target": target("user", doc["user_id"]), "reason": f"{user_state.count} failed attempts",
                "old": {"status": "active"}, "new": {"status": "suspended"},
            }))
            items.append(alert_raised("account.suspended", "critical",
                                      f"account {doc['user_id']!r} suspended after {user_state.count} failed "
                                      f"attempts on {self.device_id}", target("user", doc["user_id"])))
        if count and device_state.count == self.lockout.threshold:
            items.append(alert_raised("device.failures", "critical",
                                      f"{device_state.count} failed sign-ins on {self.device_id} within the window",
                                      target("device", self.device_id)))
        self._append(items)

    def raise_alert(self, kind: str, severity: str, message: str, about: Mapping[str, str]) -> None:
        self._append([alert_raised(kind, severity, message, about)])

    # -- password changes, first use ---------------------------------------
    def change_password(self, user_id: str, current: str, new: str, totp_code: str | None = None) -> AuthResult:
        result = self.authenticate(user_id, current, totp_code, purpose="change_password")
        if not result.ok:
            return result
        user = result.user
        assert user is not None
        doc = self.directory.get(dirx.USER, user.user_id) or {}
        try:
            check_new_password(new, policy=self.passwords, user_id=user.user_id, printed_name=user.printed_name,
                               blocklist=self.blocklist, totp_enrolled=user.totp_enrolled)
        except PasswordRejected as exc:
            raise InvalidInput(str(exc)) from None
        for old in doc.get("history", [])[: max(self.passwords.history, 1)]:
            if self.hasher.verify(self.box.decrypt(f"password:{user.user_id}", old), new):
                raise InvalidInput(f"choose a password you have not used for your last {self.passwords.history} changes")
        self._append([("user.password_changed", {
            "actor": actor_body(user.user_id, user.printed_name, user.roles[0]), "target": target("user", user.user_id),
            "reason": "changed by the user", "credential": self._credential(user.user_id, new, False),
            "history_size": self.passwords.history + 1, "auth": result.auth_body(),
        })])
        return AuthResult(True, "Password changed.", self.user(user.user_id), None, result.components)

    def is_own_password(self, user_id: str, texts: list[str]) -> bool:
        """Whether one of ``texts`` is the user's password (a correction records values without a
        password typed, so only the stored hash can tell). Counts no failure and records nothing; one
        hash check per text long enough to be a password."""
        doc = self.directory.get(dirx.USER, user_id)
        candidates = [t for t in texts if len(t) >= 8]
        if doc is None or not doc.get("credential") or not candidates:
            return False
        try:
            stored = self._stored_hash(user_id, doc["credential"])
        except SecretBoxError:  # unreadable here: signing says so at the next password check
            return False
        return any(self.hasher.verify(stored, t) for t in candidates)

    def password_exposed(self, user: UserView, where: str) -> None:
        """The password was typed where it is shown and saved (a value field): it must be changed before the
        next signature, and supervisors see an alert. Neither record holds the password."""
        self._append([
            ("user.updated", {"actor": actor_body(user.user_id, user.printed_name, user.roles[0]),
                              "target": target("user", user.user_id),
                              "reason": f"password exposed: typed into {where}",
                              "old": {"password_exposed": False}, "new": {"password_exposed": True}}),
            alert_raised("credential.exposed", "warning",
                         f"{user.user_id!r} typed their password into {where} on {self.device_id}; "
                         "it was not recorded and must be changed", target("user", user.user_id)),
        ])

    def authorise(self, user_text: str, password: str, totp_code: str | None, reason: str, *, purpose: str,
                  where: str, allow_suspended: bool = False) -> AuthResult:
        """Full credentials typed now for a decision recorded with a reason (an unlock, a device decision, a
        batch cancellation). Raises AuthError when they fail, and PasswordTyped when the reason holds the
        password just verified (it is not recorded; the exposure is, and the password must be changed)."""
        result = self.authenticate(user_text, password, totp_code, require_totp=True, purpose=purpose,
                                   allow_suspended=allow_suspended)
        if not result.ok:
            raise AuthError(result.message)
        user = result.user
        assert user is not None
        if typed_in(password, [reason]):
            self.password_exposed(user, where)
            raise PasswordTyped(f"Not done: {where} holds {user.printed_name}'s password. It was not recorded; "
                                f"{user.printed_name} must choose a new password at the next login.")
        return result

    def password_expired(self, user: UserView) -> bool:
        if self.passwords.max_age_days <= 0:
            return False
        stamp = user.password_changed_at
        if stamp is None:
            stamp = (self.directory.get(dirx.USER, user.user_id) or {})["password_changed_at"]
        changed = parse_ts(stamp)
        return self.clock.now() - changed >= dt.timedelta(days=self.passwords.max_age_days)

    def accept_first_use(self, user: UserView) -> None:
        self._append([("user.first_use_accepted", {
            "actor": actor_body(user.user_id, user.printed_name, user.roles[0]), "target": target("user", user.user_id),
            "statement": FIRST_USE_STATEMENT,
        })])

    # -- supervisor unlock, alerts -----------------------------------------
    def unlock(self, supervisor_id: str, password: str, totp_code: str | None, user_id: str, reason: str,
               *, break_glass: bool = False) -> Unlocked:
        """Unlock a suspended account: a different supervisor (or admin), full credentials now, a reason.

        Break-glass (``kiosk admin unlock``, at the terminal's console) also accepts an admin whose
        own account is suspended, with password and one-time code: otherwise failed attempts typed
        against every supervisor and admin id would leave nobody able to unlock anyone. Such an
        admin may unlock others, never themself (a supervisor they unlocked can do that).
        """
        reason = self._reason(reason)
        uid = self._uid(user_id)
        result = self.authorise(supervisor_id, password, totp_code, reason, purpose="unlock",
                                where="the reason for the unlock", allow_suspended=break_glass)
        sup = result.user
        assert sup is not None
        needed = ("admin",) if break_glass else ("supervisor", "admin")
        if not sup.has_role(*needed):
            if sup.status == "suspended":
                raise AuthError(SUSPENDED)  # a suspended non-admin learns no more than at login
            raise NotPermitted("only a supervisor or admin can unlock accounts" if not break_glass
                               else "break-glass unlock needs an admin")
        if sup.user_id == uid:
            raise NotPermitted("you cannot unlock your own account; ask another supervisor")
        doc = self.directory.get(dirx.USER, uid)
        if doc is None:
            raise InvalidInput(f"no user {uid!r}")
        if doc["status"] == "deactivated":
            raise NotPermitted("a deactivated account cannot be unlocked; an admin must re-activate it with a reason")
        if doc["status"] != "suspended":
            raise InvalidInput(f"{uid!r} is not suspended")
        role = "admin" if break_glass or "supervisor" not in sup.roles else "supervisor"
        who = actor_body(sup.user_id, sup.printed_name, role)
        items: list[tuple[str, dict[str, Any]]] = [("account.unlocked", {
            "actor": who, "target": target("user", uid), "reason": reason, "old": {"status": "suspended"},
            "new": {"status": "active"}, "auth": result.auth_body(), "break_glass": break_glass,
        })]
        # The unlock answers the suspension's alert: it closes with it, under the unlock's reason, so a
        # supervisor has no second step and a monitoring job no critical alert left open for a solved case.
        why = f"closed by the unlock of {uid}: {reason}"[:500]
        closed = self.directory.open_alert_ids_about("account.suspended", target("user", uid))
        items += [("alert.acknowledged", {"actor": who, "alert_id": alert_id, "target": target("alert", alert_id),
                                          "reason": why}) for alert_id in closed]
        if break_glass:
            note = " (whose own account is suspended)" if sup.status == "suspended" else ""
            items.append(alert_raised("account.break_glass_unlock", "critical",
                                      f"break-glass unlock of {uid!r} by admin {sup.user_id!r}{note}: {reason}",
                                      target("user", uid)))
        self._append(items)
        return Unlocked(self.user(uid), len(closed))  # type: ignore[arg-type]

    def alerts(self, open_only: bool = True) -> list[dict[str, Any]]:
        """Every alert (or every open one), newest first: for audits and tests. A screen lists open_alerts, as
        the directory holds every terminal's alerts for years."""
        items = [a for a in self.directory.all(dirx.ALERT) if not (open_only and a.get("acknowledged_by"))]
        return sorted(items, key=lambda a: a["at"], reverse=True)

    def open_alerts(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The newest ``limit`` open alerts, newest first, and how many are open in all."""
        return self.directory.open_alerts(limit)

    def acknowledge_alert(self, actor: Actor, alert_id: str, note: str = "") -> None:
        self._require(actor, "supervisor", "admin")
        alert = self.directory.get(dirx.ALERT, alert_id)
        if alert is not None and alert.get("acknowledged_by"):
            raise InvalidInput(f"that alert was already acknowledged by {alert['acknowledged_by']} at "
                               f"{utc_time(alert['acknowledged_at'])}")
        body: dict[str, Any] = {"actor": actor.body(), "alert_id": alert_id, "target": target("alert", alert_id)}
        if note:
            body["reason"] = self._text("note", note, 500)
        self._append([("alert.acknowledged", body)])

    def open_alerts_alike(self, kind: str, through: str) -> int:
        """How many open info alerts of ``kind`` were raised at or before ``through``."""
        return self.directory.open_alert_ids(kind, dirx.ACKNOWLEDGED_TOGETHER, through, 0)[1]

    def acknowledge_alike(self, actor: Actor, kind: str, through: str, note: str) -> int:
        """Acknowledge every open info alert of ``kind`` raised at or before ``through``, under one note.

        A site collects single failed sign-ins by the dozen a day; one by one
        they bury the alerts that matter. Only info alerts go together
        (``dirx.ACKNOWLEDGED_TOGETHER``), and the note is required: it stands
        for each of them in the audit trail. Returns how many.

        A transaction takes the newest ACKNOWLEDGED_PER_TRANSACTION still open,
        so a backlog of 100,000 never sits in memory or holds the write lock
        for long; an interruption leaves the rest open and listed, and the
        same action takes them.
        """
        self._require(actor, "supervisor", "admin")
        reason = self._reason(note)
        try:
            parse_ts(through)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        base = {"actor": actor.body(), "kind": kind, "severity": dirx.ACKNOWLEDGED_TOGETHER,
                "raised_through": through, "reason": reason, "target": target("alert_kind", kind)}
        done, last = 0, set[str]()
        while True:
            ids, _ = self.directory.open_alert_ids(kind, dirx.ACKNOWLEDGED_TOGETHER, through,
                                                   ACKNOWLEDGED_PER_TRANSACTION)
            if not ids:
                break
            if last.intersection(ids):  # cannot happen: each transaction closes what it names
                raise AuthError(f"alerts of kind {kind} stayed open after their acknowledgement was recorded")
            self._append([("alerts.acknowledged", {**base, "alert_ids": ids[i:i + ACKNOWLEDGED_PER_RECORD]})
                          for i in range(0, len(ids), ACKNOWLEDGED_PER_RECORD)])
            done, last = done + len(ids), set(ids)
        if not done:
            raise InvalidInput(f"no open {dirx.ACKNOWLEDGED_TOGETHER} alerts of kind {kind} to acknowledge")
        return done

    # -- helpers -----------------------------------------------------------
    def require_role(self, actor: Actor, *roles: str) -> None:
        """Refuse unless ``actor`` is an active user acting in one of ``roles`` they hold now."""
        self._require(actor, *roles)

    def _require(self, actor: Actor, *roles: str) -> None:
        doc = self.directory.get(dirx.USER, actor.user_id)
        if doc is None or doc["status"] != "active" or actor.role not in roles or actor.role not in doc["roles"]:
            raise NotPermitted(f"this needs the {' or '.join(roles)} role")

    def _append(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            self.store.append_many(items)
        except dirx.DirectoryConflict as exc:
            raise InvalidInput(str(exc)) from None
