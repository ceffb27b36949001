"""Admin, recipe and audit-viewer services as the screens see them (``screens.ports``).

Composition, like ``kiosk.ui_adapter``: it names the acting person from the
open session, calls the services, and turns their answers and refusals into
the plain dataclasses the screens render. Every rule (who may, what is
valid) stays in the services; a refusal's message is shown as text.
"""

from __future__ import annotations

import json
from typing import Any

from kiosk.domain import batches as bx
from kiosk.domain.clock import site_time
from kiosk.domain.identity import Role
from kiosk.domain.recipes import describe_rule, describe_starters
from kiosk.services.audit_export import ExportError
from kiosk.services.audit_view import AuditBrowser, AuditQuery, AuditQueryError, to_filter
from kiosk.services.auth import Actor, AuthError
from kiosk.services.devices import DeviceAdmin
from kiosk.services.session import SessionError
from screens.ports import (
    ActionResult,
    AuditFilters,
    AuditLine,
    AuditPageView,
    AuditRecordView,
    Credentials,
    DeviceList,
    DeviceRegistration,
    IssuedView,
    IssueResult,
    NewUser,
    RecipeDetail,
    RecipeRow,
    RecipeStepView,
    UserRow,
)

NO_CENTRAL = "no central store configured: this terminal runs standalone, so there are no registrations to decide"
SECRET_KEYS = ("credential", "totp", "history")
HIDDEN = "<encrypted secret: not shown>"
ERRORS = (AuthError, SessionError)


def _redact(value: Any) -> Any:
    """Encrypted credentials are in some records; the viewer shows that they are there, not their bytes."""
    if isinstance(value, dict):
        return {k: (HIDDEN if k in SECRET_KEYS and v else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


class UiAdmin:
    """Users, devices, recipes and the audit trail for the admin / review screens."""

    def __init__(self, kiosk, devices: DeviceAdmin, audit: AuditBrowser) -> None:
        self.kiosk = kiosk
        self.device_admin = devices
        self.audit = audit

    def _actor(self) -> Actor:
        return self.kiosk.session.actor()

    # -- users ---------------------------------------------------------------
    def roles(self) -> tuple[str, ...]:
        return tuple(r.value for r in Role)

    def users(self) -> list[UserRow]:
        return [UserRow(u.user_id, u.printed_name, tuple(u.roles), u.status, u.badge_id, u.last_login, u.totp_enrolled)
                for u in self.kiosk.auth.users()]

    @staticmethod
    def _issued(issued) -> IssuedView:
        return IssuedView(issued.user_id, issued.temporary_password, issued.totp_secret, issued.totp_uri)

    def create_user(self, new: NewUser) -> IssueResult:
        try:
            issued = self.kiosk.auth.create_user(
                self._actor(), new.user_id, new.name, new.roles, reason=new.reason,
                identity_verified=new.identity_verified, verification_method=new.verification_method or "",
                badge_id=new.badge.strip() or None, with_totp=new.with_totp)
        except ERRORS as exc:
            return IssueResult(False, str(exc))
        return IssueResult(True, f"User {issued.user_id} created; the creation is recorded.", self._issued(issued))

    def _update(self, user_id: str, reason: str, done: str, **changes: Any) -> ActionResult:
        try:
            user = self.kiosk.auth.update_user(self._actor(), user_id, reason=reason, **changes)
        except ERRORS as exc:
            return ActionResult(False, str(exc))
        return ActionResult(True, done.format(user=user.user_id))

    def set_roles(self, user_id: str, roles: tuple[str, ...], reason: str) -> ActionResult:
        return self._update(user_id, reason, "Roles of {user} changed; the change is recorded.", roles=list(roles))

    def set_active(self, user_id: str, active: bool, reason: str) -> ActionResult:
        status = "active" if active else "deactivated"
        return self._update(user_id, reason, "{user} is " + status + "; the change is recorded.", status=status)

    def reset_credentials(self, user_id: str, reason: str, identity_verified: bool) -> IssueResult:
        try:
            user = self.kiosk.auth.user(user_id)
            issued = self.kiosk.auth.reset_credentials(self._actor(), user_id, reason=reason,
                                                       identity_verified=identity_verified,
                                                       new_totp=bool(user is None or user.totp_enrolled))
        except ERRORS as exc:
            return IssueResult(False, str(exc))
        return IssueResult(True, f"New credentials issued for {issued.user_id}; the old ones no longer work.",
                           self._issued(issued))

    def assign_badge(self, user_id: str, badge: str, reason: str) -> ActionResult:
        if not badge.strip():
            return ActionResult(False, "Scan or type the badge id.")
        return self._update(user_id, reason, "Badge assigned to {user}; any earlier badge is revoked.",
                            badge_id=badge.strip())

    def revoke_badge(self, user_id: str, reason: str) -> ActionResult:
        return self._update(user_id, reason, "Badge of {user} revoked; it can never be assigned again.",
                            badge_id=None)

    # -- devices ---------------------------------------------------------------
    def devices(self) -> DeviceList:
        if not self.device_admin.configured:
            return DeviceList((), NO_CENTRAL)
        try:
            rows = self.device_admin.devices()
        except Exception as exc:  # noqa: BLE001 - a central store that cannot be read is a message, not a crash
            return DeviceList((), f"the central store cannot be read now ({type(exc).__name__}); try again later")
        own = self.kiosk.store.chain
        return DeviceList(tuple(DeviceRegistration(d.chain, d.status, d.fingerprint, d.reason, d.head_seq,
                                                   d.chain == own, d.last_heard) for d in rows))

    def decide_device(self, chain: str, decision: str, reason: str, credentials: Credentials) -> ActionResult:
        try:
            self.device_admin.decide(credentials.user_id, credentials.password, credentials.totp, chain, decision,
                                     reason)
        except ERRORS as exc:
            return ActionResult(False, str(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. the central list could not be read
            return ActionResult(False, f"not recorded: the device list cannot be read now ({type(exc).__name__})")
        past = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[decision]
        return ActionResult(True, f"{chain} {past}: the decision is recorded and takes effect when the central "
                                  "store receives it.")

    # -- recipes ---------------------------------------------------------------
    def _recipe_row(self, doc: dict, replaced: dict[str, str], waiting: dict[str, str]) -> RecipeRow:
        recipe = bx.recipe_from_doc(doc)
        return RecipeRow(doc["key"], doc["title"], doc.get("product", ""), int(doc["version"]), len(recipe.steps),
                         doc.get("registered_at", ""), doc["content_hash"], describe_starters(recipe),
                         replaced.get(doc["key"], ""), waiting.get(doc["key"], ""))

    def recipes(self) -> list[RecipeRow]:
        signing = self.kiosk.signing
        replaced, waiting = signing.superseded(), signing.pending()
        return [self._recipe_row(d, replaced, waiting) for d in signing.recipes()]

    def recipe_detail(self, key: str) -> RecipeDetail:
        doc = self.kiosk.directory.get(bx.RECIPE, key)
        if doc is None:
            raise KeyError(key)
        recipe = bx.recipe_from_doc(doc)
        steps = []
        for n, step in enumerate(recipe.steps, start=1):
            fields = tuple(f"{f.label}" + (f" [{f.unit}]" if f.unit else "")
                           + (f" {f.min} .. {f.max}" if f.min is not None or f.max is not None else "")
                           + (f" one of {', '.join(f.choices)}" if f.choices else "") for f in step.fields)
            sigs = [describe_rule(step, rule) for rule in step.signatures]
            steps.append(RecipeStepView(n, step.id, step.title, tuple(step.prerequisites), fields, tuple(sigs),
                                        step.instructions))
        return RecipeDetail(self._recipe_row(doc, self.kiosk.signing.superseded(), self.kiosk.signing.pending()),
                            tuple(steps))

    # -- audit viewer ------------------------------------------------------------
    def audit_page(self, filters: AuditFilters, direction: str = "newest", token: object = None) -> AuditPageView:
        try:
            flt = to_filter(AuditQuery(filters.user, filters.batch, filters.types, filters.start, filters.end))
            actor = self._actor()
            first, last = token if isinstance(token, tuple) and len(token) == 2 else (None, None)
            if direction == "older" and first is not None:
                page = self.audit.older(actor, flt, first)
            elif direction == "newer" and last is not None:
                page = self.audit.newer(actor, flt, last)
            elif direction == "oldest":
                page = self.audit.oldest(actor, flt)
            else:
                page = self.audit.newest(actor, flt)
        except (AuditQueryError, ExportError) + ERRORS as exc:
            return AuditPageView(ok=False, message=str(exc))
        lines = tuple(AuditLine(r.device, r.seq, r.ts_utc, r.type,
                                f"{r.name} ({r.user_id})" if r.user_id else "system",
                                r.target or (f"batch:{r.batch_id}" if r.batch_id else ""), r.reason)
                      for r in page.rows)
        if not page.rows and direction in ("older", "newer") and token is not None:
            return AuditPageView((), False, False, token, "No more records that way.", stay=True)
        message = ""
        if not page.rows and (flt.types or flt.batch):
            try:
                message = self.audit.why_nothing(actor, flt)
            except ERRORS as exc:
                message = str(exc)
        return AuditPageView(lines, page.has_older, page.has_newer, (page.first, page.last), message)

    def audit_record(self, chain: str, seq: int) -> AuditRecordView | ActionResult:
        try:
            d = self.audit.detail(self._actor(), chain, seq)
        except (AuditQueryError,) + ERRORS as exc:
            return ActionResult(False, str(exc))
        r = d.record
        site = site_time(r.time, r.tz) if r.tz else ""
        fields = (
            ("type", r.type), ("chain (device:epoch)", r.chain), ("seq", str(r.seq)), ("record id", r.id),
            ("time (UTC)", r.ts), ("site time", f"{site} ({r.tz})"), ("key id", r.kid), ("format version", str(r.v)),
            ("previous hash", r.prev), ("hash (SHA-256)", d.hash_hex), ("signature (Ed25519)", d.signature_b64),
            ("signature check", "valid" if d.verified else f"FAILED: {d.problem}"),
        )
        body = json.dumps(_redact(dict(r.body)), indent=2, ensure_ascii=False, sort_keys=True)
        return AuditRecordView(f"{r.type} — {r.chain} #{r.seq}", fields, body)

    def export_audit(self, filters: AuditFilters) -> ActionResult:
        try:
            flt = to_filter(AuditQuery(filters.user, filters.batch, filters.types, filters.start, filters.end))
            path, count = self.audit.export_csv(self._actor(), flt)
        except (AuditQueryError, ExportError) + ERRORS as exc:
            return ActionResult(False, str(exc))
        return ActionResult(True, f"Exported {count} records to {path}")
