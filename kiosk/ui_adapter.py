"""The services as the screens see them (``screens.ports.KioskServices``).

This is composition, not logic: it translates between the service objects
and the plain dataclasses the screens render, so screens never import
services and services never import the UI.
"""

from __future__ import annotations

import traceback

from kiosk.domain.records import split_chain
from kiosk.domain.session import LockReason
from screens.ports import Credentials, DeviceView, KioskStatus, LoginResult, SessionInfo, SyncState

ROLE_LABELS = {"operator": "Operator", "supervisor": "Supervisor", "qa": "QA", "admin": "Administrator"}
# Which screens a session opens, by the role it acts in (the services check the role again on every call).
AREAS_BY_ROLE = {
    "operator": ("worklist",),
    "qa": ("worklist", "audit"),
    "supervisor": ("worklist", "supervisor", "audit"),
    "admin": ("worklist", "supervisor", "audit", "users", "devices", "recipes"),
}


STANDALONE = "standalone: no central store is configured, so there is no registration to wait for"


class UiServices:
    def __init__(self, kiosk, sync_status=None, *, central_configured: bool = False) -> None:
        self.kiosk = kiosk
        self._sync_status = sync_status  # callable -> SyncState, when a sync worker runs
        self._central_configured = central_configured

    # -- login / session ---------------------------------------------------
    def login(self, credentials: Credentials) -> LoginResult:
        user_text = credentials.user_id
        if credentials.badge:
            holder = self.kiosk.auth.badge_holder(credentials.badge, credentials.password)
            if holder is None:
                from kiosk.services.auth import INVALID

                return LoginResult(False, INVALID)
            user_text = holder
        from storage.sqlite import StoreUnavailable

        try:
            outcome = self.kiosk.session.login(user_text, credentials.password, credentials.totp)
        except StoreUnavailable as exc:  # honest: not "invalid credentials" when the store is the problem
            return LoginResult(False, f"This terminal cannot record right now, so nobody can log in: {exc}")
        if not outcome.ok:
            return LoginResult(False, outcome.message)
        s = self.kiosk.session.session
        return LoginResult(True, "", SessionInfo(s.owner, s.name, ROLE_LABELS.get(s.role, s.role),
                                                 AREAS_BY_ROLE.get(s.role, ("worklist",))))

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

    def on_device_lock(self) -> None:
        self.kiosk.session.lock(LockReason.DEVICE)

    def status(self) -> KioskStatus:
        s = self.kiosk.session.session
        if self._sync_status is not None:
            st = self._sync_status()
            offline = st.last_sync is None or st.offline_since is not None
            sync = SyncState(queued=st.queued, last_sync=st.last_sync, offline=offline,
                             not_pulling=not offline and st.last_error is not None)  # online: a pull error
        elif not self._central_configured:
            sync = SyncState(standalone=True)
        else:
            sync = SyncState(queued=self._queued(), last_sync=None, offline=True)
        device = split_chain(self.kiosk.store.chain)[0]
        if not s.active:
            return KioskStatus(device, sync=sync)
        return KioskStatus(device, s.owner, s.name, ROLE_LABELS.get(s.role, s.role), sync)

    def _queued(self) -> int:
        head = self.kiosk.store.head()
        return 0 if head is None else head.seq - head.synced_upto

    def device_view(self) -> DeviceView:
        """This terminal's registration, from the last ``device.status_observed`` record in its own chain.

        A standalone kiosk (no central store) has nobody to approve it and counts
        as approved; one with a central store that has not yet seen any answer is
        unregistered until its first sync brings "pending".
        """
        store = self.kiosk.store
        device_id, _ = split_chain(store.chain)
        fingerprint = self.kiosk.identity.key.public.fingerprint
        if not self._central_configured:
            return DeviceView("approved", device_id, store.chain, fingerprint, STANDALONE)
        status = store.device_status()
        if status is None:
            return DeviceView("unregistered", device_id, store.chain, fingerprint, "no answer from the central store yet")
        doc = self.kiosk.directory.get("device", store.chain) or {}
        return DeviceView(status, device_id, store.chain, fingerprint, str(doc.get("reason") or ""))

    def totp_at_login(self) -> bool:
        return self.kiosk.config.auth.totp_at_login

    def report_error(self, exc: BaseException) -> None:
        """Record where the error happened, never its message (it might hold a typed secret)."""
        frames = [f"{f.filename.rsplit('/', 1)[-1]}:{f.name}" for f in traceback.extract_tb(exc.__traceback__)][-5:]
        try:
            self.kiosk.store.append("app.error", {"error": type(exc).__name__, "where": frames})
        except Exception:  # noqa: BLE001 - the UI already showed a notice; never raise from here
            pass


class UiWork:
    """Batch work (worklist, step, sign dialog) as the screens see it."""

    def __init__(self, kiosk) -> None:
        self.kiosk = kiosk

    def _errors(self):
        from kiosk.services.auth import AuthError
        from kiosk.services.session import SessionError
        from kiosk.services.signing import SigningError
        from storage.sqlite import StoreUnavailable

        # StoreUnavailable (disk full, read-only data directory): the action was refused and
        # nothing was saved; its message says what to do, so it is shown like any refusal.
        return (SigningError, SessionError, AuthError, StoreUnavailable)

    def find_batch(self, text: str):
        from screens.ports import ActionResult

        try:
            batch_id = self.kiosk.signing.find_batch(text)
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        return batch_id, self.kiosk.signing.batch_position(batch_id)

    def batch_page(self, offset: int, limit: int):
        """One page of batches, newest first; only that page is read, and its steps counted."""
        from screens.ports import BatchRow

        signing = self.kiosk.signing
        rows = []
        for b in signing.newest_batches(offset, limit):
            summary = signing.summary(b["batch_id"])
            rows.append(BatchRow(b["batch_id"], b["title"], b["recipe_key"], summary.status,
                                 summary.done_steps, summary.total_steps))
        return rows, signing.batch_count()

    def recipes(self):
        from kiosk.domain import batches as bx
        from kiosk.domain.recipes import describe_starters
        from screens.ports import RecipeChoice

        role = self.kiosk.session.session.role or ""
        choices = []
        signing = self.kiosk.signing
        closed = {**signing.superseded(), **signing.pending()}
        for doc in signing.recipes():
            if doc["key"] in closed:
                continue  # new batches start from the version in effect only
            recipe = bx.recipe_from_doc(doc)
            choices.append(RecipeChoice(doc["key"], doc["title"], describe_starters(recipe), recipe.may_start(role)))
        return sorted(choices, key=lambda r: (r.title, r.key))

    def start_batch(self, batch_id: str, recipe_key: str):
        from screens.ports import ActionResult

        try:
            batch = self.kiosk.signing.create_batch(batch_id, recipe_key)
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        return ActionResult(True, f"Batch {batch['batch_id']} started from {batch['recipe_key']}; the start is recorded.")

    def cancel_batch(self, batch_id, reason, credentials):
        from screens.ports import ActionResult

        try:
            self.kiosk.signing.cancel_batch(batch_id, reason, credentials.user_id, credentials.password,
                                            credentials.totp)
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        return ActionResult(True, f"Batch {batch_id} is cancelled; the cancellation is recorded.")

    def _sig_views(self, signatures):
        from kiosk.domain.clock import site_time, utc_time
        from screens.ports import SignatureView

        out = []
        for s in signatures:
            site = site_time(s["signed_at"], s["tz"])
            out.append(SignatureView(s["meaning"], s["name"], s["user_id"], s["role"],
                                     f"{site} ({utc_time(s['signed_at'])})", bool(s["valid"]),
                                     "" if s["valid"] else s.get("invalidated_reason", "by a correction")))
        return tuple(out)

    def steps(self, batch_id: str):
        from screens.ports import StepRow

        return [StepRow(s.step_id, s.title, s.status, self._sig_views(s.signatures))
                for s in self.kiosk.signing.steps(batch_id)]

    def step_detail(self, batch_id: str, step_id: str):
        from kiosk.domain import batches as bx
        from kiosk.domain.clock import utc_time
        from kiosk.domain.recipes import DECIDING, describe_changes
        from screens.ports import FieldView, StepDetail

        signing = self.kiosk.signing
        batch = signing.batch(batch_id)
        recipe = signing.recipe(batch["recipe_key"])
        step = recipe.step(step_id)
        state = batch["steps"].get(step_id) or {}
        values = dict(state.get("values", {}))
        # A draft typed before the step was last recorded (signed, corrected, here or on another terminal)
        # is stale: the screen shows the recorded values, never old typing as if it were the record.
        recorded_at = max([s["signed_at"] for s in state.get("signatures", [])]
                          + [c["at"] for c in state.get("corrections", [])], default=None)
        cancelled = bx.cancelled_note(batch)
        try:
            draft = None if cancelled else self.kiosk.session.load_draft(batch_id, step_id, recorded_at)
        except Exception:  # noqa: BLE001 - no session: no draft
            draft = None
        values.update(draft or {})
        fields = tuple(FieldView(f.name, f.label, f.type, f.unit,
                                 f"{f.min} .. {f.max}" if f.min is not None or f.max is not None else "",
                                 f.choices if f.type == "choice" else (("yes", "no") if f.type == "bool" else ()))
                       for f in step.fields)
        signed = {s["meaning"] for s in bx.valid_signatures(batch, step_id)}
        open_meanings = () if cancelled else tuple(r.meaning.value for r in step.signatures
                                                   if r.meaning.value not in signed)
        try:
            following = signing.next_signature(batch_id, step_id)
        except self._errors():  # no session: nothing to sign
            following = None
        try:
            editable = signing.may_enter_values(batch_id, step_id)
            withdraw = signing.withdrawable(batch_id, step_id) or ""
        except self._errors():  # no session: nothing to type or withdraw
            editable, withdraw = False, ""
        entry_note = "" if editable or cancelled or not step.fields else (
            f"Values are entered and corrected by {' or '.join(step.recording.roles)}.")
        corrections = tuple(f"{utc_time(c['at'])} by {c['by']}: "
                            f"{describe_changes(step, c['old'], c['new'])} ({c['reason']})"
                            for c in state.get("corrections", []))
        deciding = {m.value for m in DECIDING} & set(open_meanings)
        review = tuple(bx.exceptions(recipe, batch)) if deciding else None
        return StepDetail(batch_id, step_id, step.title, step.instructions, bx.step_status(recipe, batch, step),
                          fields, values, self._sig_views(state.get("signatures", [])), corrections,
                          cancelled, review, following and self._next_view(following), editable, entry_note,
                          withdraw)

    @staticmethod
    def _next_view(following):
        from screens.ports import NextSignatureView

        if following.refusal:  # a service refusal, as a sentence
            why = following.refusal[:1].upper() + following.refusal[1:]
            return NextSignatureView(following.meaning, why if why.endswith(".") else why + ".", False)
        note = f"Next signature: {following.rule}."
        if following.second_person:
            note += " A second person signs it, with their own user id, password and code."
        return NextSignatureView(following.meaning, note, True)

    def save_draft(self, batch_id: str, step_id: str, values: dict) -> None:
        """A draft that cannot be stored (disk full, read-only) stays on screen; signing then says why."""
        from storage.sqlite import StoreUnavailable

        try:
            self.kiosk.session.save_draft(batch_id, step_id, values)
        except StoreUnavailable:
            pass

    def prepare_signature(self, batch_id, step_id, meaning, values, comment, deviation_ref):
        from kiosk.domain.clock import utc_time
        from screens.ports import ActionResult, SignPreview

        signing = self.kiosk.signing
        try:
            owner = self.kiosk.session.owner()
            following = signing.next_signature(batch_id, step_id)
            witness = bool(following and following.meaning == meaning and following.second_person)
            p = signing.prepare(batch_id, step_id, meaning, values, witness=witness, comment=comment,
                                deviation_ref=deviation_ref)
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        vals = ", ".join(f"{k} = {v}{(' ' + dict(p.units).get(k, '')) if dict(p.units).get(k) else ''}" for k, v in p.values)
        lines = [f"Meaning: {p.meaning}", f"Batch {batch_id}, step {step_id}", f"Values: {vals or '-'}"]
        if p.out_of_range:
            lines.append(f"Out of range: {'; '.join(p.out_of_range)} (comment: {p.comment}; deviation {p.deviation_ref})")
        elif p.comment or p.deviation_ref:  # recorded with the signature, so shown before it is given
            lines.append(f"Comment: {p.comment or '-'}; deviation reference: {p.deviation_ref or '-'}")
        if p.preview:
            m = p.preview
            lines[0:0] = [f"Signed by: {m.printed_name} ({m.user_id}), role {m.role}",
                          f"Date and time: {m.site_time} ({utc_time(m.signed_at)}) on {m.device}"]
            title = f"Sign: {p.meaning}"
        else:
            lines[0:0] = [f"A second person signs as {p.meaning} with their own user id, password and code.",
                          f"They may not be {owner.printed_name} ({owner.user_id})."]
            title = f"Second person: {p.meaning}"
        lines.append(f"Content SHA-256: {p.content_hash[:16]}…  (the signature is bound to exactly these values)")
        signer = owner.user_id if p.components == ("password",) else None
        return SignPreview(p, title, tuple(lines), p.components, signer, p.witness)

    def sign(self, preview, credentials):
        from kiosk.services.signing import PasswordExposed
        from screens.ports import ActionResult

        p = preview.token
        try:
            user_text = credentials.user_id
            if credentials.badge:
                user_text = self.kiosk.auth.badge_holder(credentials.badge, credentials.password)
                if user_text is None:
                    from kiosk.services.auth import INVALID

                    return ActionResult(False, INVALID)
            if p.witness:
                rec = self.kiosk.signing.witness(p, user_text, credentials.password, credentials.totp)
            else:
                rec = self.kiosk.signing.sign(p, credentials.password, user_text or None, credentials.totp)
        except self._errors() as exc:
            return ActionResult(False, str(exc), clear=isinstance(exc, PasswordExposed))
        from kiosk.domain.clock import site_time

        m = rec["manifestation"]
        return ActionResult(True, f"Signed: {m['meaning']} by {m['printed_name']} at {site_time(m['signed_at'], m['tz'])}")

    def correct(self, batch_id, step_id, values, reason):
        from kiosk.services.signing import PasswordExposed
        from screens.ports import ActionResult

        try:
            self.kiosk.signing.correct(batch_id, step_id, values, reason)
        except self._errors() as exc:
            return ActionResult(False, str(exc), clear=isinstance(exc, PasswordExposed))
        return ActionResult(True, "Correction recorded; the step must be signed again.")

    def withdraw(self, batch_id, step_id, meaning, reason):
        from kiosk.services.signing import PasswordExposed
        from screens.ports import ActionResult

        try:
            taken = self.kiosk.signing.withdraw(batch_id, step_id, meaning, reason)
        except self._errors() as exc:
            return ActionResult(False, str(exc), clear=isinstance(exc, PasswordExposed))
        more = len(taken) - 1
        return ActionResult(True, f"{meaning} withdrawn" + (f", and {more} signature{'s' if more > 1 else ''} "
                                                             "that followed it" if more else "")
                            + "; the step must be signed again.")

    # -- onboarding ---------------------------------------------------------
    def onboarding(self):
        from kiosk.services.auth import FIRST_USE_STATEMENT
        from screens.ports import Onboarding

        try:
            user = self.kiosk.session.owner()
        except self._errors():
            return None
        if not user.first_use_accepted:
            return Onboarding("first_use", f"{user.printed_name} ({user.user_id}):\n\n{FIRST_USE_STATEMENT}\n\n"
                                           "Your acceptance is recorded with the date and time.")
        if user.must_change_password or self.kiosk.auth.password_expired(user):
            why = ("Your password was typed into a field of a step, where it was shown; choose a new one"
                   if user.password_exposed
                   else "Your password was issued by an administrator; choose your own" if user.must_change_password
                   else "Your password has expired; choose your own")
            return Onboarding("change_password", f"{why} before you continue.", ask_totp=user.totp_enrolled)
        return None

    def accept_first_use(self):
        from screens.ports import ActionResult

        try:
            self.kiosk.auth.accept_first_use(self.kiosk.session.owner())
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        return ActionResult(True)

    def change_password(self, current, new, repeat, totp):
        from screens.ports import ActionResult

        if new != repeat:
            return ActionResult(False, "The two new passwords differ; type them again.")
        try:
            user = self.kiosk.session.owner()
            result = self.kiosk.auth.change_password(user.user_id, current, new, totp or None)
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        return ActionResult(result.ok, result.message)

    # -- supervisor -----------------------------------------------------------
    def open_alerts(self, limit: int):
        from screens.ports import AlertView

        alerts, total = self.kiosk.auth.open_alerts(limit)
        return [AlertView(a["alert_id"], a["at"], a["severity"], a["kind"], a["message"], a.get("device") or "")
                for a in alerts], total

    def suspended(self):
        from screens.ports import SuspendedUser

        return [SuspendedUser(u.user_id, u.printed_name) for u in self.kiosk.auth.users() if u.status == "suspended"]

    def acknowledge(self, alert_id, note):
        from screens.ports import ActionResult

        try:
            self.kiosk.auth.acknowledge_alert(self.kiosk.session.actor(), alert_id, note)
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        return ActionResult(True, "Alert acknowledged.")

    def alike(self, alert):
        from kiosk.domain.clock import format_ts
        from kiosk.domain.directory import ACKNOWLEDGED_TOGETHER
        from screens.ports import AlikeAlerts

        through = format_ts(self.kiosk.clock.now())
        if alert.severity != ACKNOWLEDGED_TOGETHER:
            return AlikeAlerts(alert.kind, 0, through, f"Only {ACKNOWLEDGED_TOGETHER} alerts are acknowledged "
                               f"together; this {alert.severity} alert is acknowledged on its own (Enter).")
        return AlikeAlerts(alert.kind, self.kiosk.auth.open_alerts_alike(alert.kind, through), through)

    def acknowledge_alike(self, alike, note):
        from screens.ports import ActionResult

        try:
            done = self.kiosk.auth.acknowledge_alike(self.kiosk.session.actor(), alike.kind, alike.through, note)
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        return ActionResult(True, f"{done:,} {alike.kind} alert{'s' if done != 1 else ''} acknowledged.")

    def unlock(self, user_id, reason, credentials):
        from screens.ports import ActionResult

        try:
            done = self.kiosk.auth.unlock(credentials.user_id, credentials.password, credentials.totp, user_id, reason)
        except self._errors() as exc:
            return ActionResult(False, str(exc))
        return ActionResult(True, f"{done.user.user_id} is unlocked; the unlock is recorded{done.closing()}.")
