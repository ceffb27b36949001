"""Device registrations as a site admin sees them, and the admin's decision about one.

A decision (approve, reject, revoke) is not applied here: it is a signed
record appended to *this* kiosk's own chain, carrying the admin's identity,
the device's chain, the full key fingerprint the admin compared, and a
reason. The central store applies it when it ingests this chain, so the
decision is attributable and cannot be made by writing to the central
database alone. A terminal never decides about its own chain: approving
yourself would defeat the point of registration (11.10(h)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from kiosk.domain.audit import actor as actor_body, target
from kiosk.domain.directory import DirectoryConflict
from kiosk.domain.identity import InvalidText, check_text
from kiosk.domain.keys import fingerprint_of, unb64url
from kiosk.services.auth import AuthError, AuthService, InvalidInput, NotPermitted
from kiosk.services.ports import RecordWriter

DECISIONS = {"approve": "device.approved", "reject": "device.rejected", "revoke": "device.revoked"}

# Which registration states each decision may follow. Revocation is final
# (a re-registered terminal comes back as a new chain epoch); a rejected
# request is answered and stays answered.
_ALLOWED_FROM = {
    "approve": ("pending",),
    "reject": ("pending",),
    "revoke": ("pending", "approved", "frozen"),
}

SELF_DECISION = "a terminal cannot approve itself: decide about this terminal from another admin terminal or the CLI"


class DeviceDecisionError(AuthError):
    """The decision was refused; the message says why and what to do instead."""


@dataclass(frozen=True)
class DeviceRow:
    chain: str
    device_id: str
    epoch: int
    status: str
    kid: str
    fingerprint: str
    reason: str
    head_seq: int
    # When the central store last took in its records (central time, UTC); "" never; None: a central store of
    # a version before 0.7.0 does not say.
    last_heard: str | None = ""

    @classmethod
    def from_registry(cls, row: Mapping[str, Any]) -> "DeviceRow":
        """A row of the central device registry (its public key is base64url of the raw 32 bytes)."""
        try:
            fingerprint = fingerprint_of(unb64url(row["public_key"]))
        except (ValueError, TypeError):
            fingerprint = "(unreadable public key)"
        return cls(chain=str(row["chain"]), device_id=str(row.get("device_id") or ""), epoch=int(row.get("epoch") or 0),
                   status=str(row.get("status") or ""), kid=str(row.get("kid") or ""), fingerprint=fingerprint,
                   reason=str(row.get("reason") or ""), head_seq=int(row.get("seq") or 0),
                   last_heard=str(row["taken_in"] or "") if "taken_in" in row else None)


class DeviceSource(Protocol):
    """Where the registrations come from (the central store; nothing when none is configured)."""

    def devices(self) -> list[DeviceRow]: ...


class DeviceAdmin:
    def __init__(self, store: RecordWriter, auth: AuthService, source: DeviceSource | None) -> None:
        self.store = store
        self.auth = auth
        self.source = source

    @property
    def configured(self) -> bool:
        return self.source is not None

    def devices(self) -> list[DeviceRow]:
        return [] if self.source is None else list(self.source.devices())

    def decide(self, admin_id: str, password: str, totp_code: str | None, chain: str, decision: str,
               reason: str) -> dict[str, Any]:
        """Record an admin's decision about a device chain; returns the record's body.

        The admin re-enters full credentials now (as for a supervisor unlock):
        being logged in is not enough to change who may use the site's terminals.
        """
        if decision not in DECISIONS:
            raise InvalidInput(f"decision must be one of {', '.join(DECISIONS)}")
        try:
            reason = check_text("reason", reason, 500)
        except InvalidText as exc:
            raise InvalidInput(str(exc)) from None
        if len(reason) < 4:
            raise InvalidInput("give a reason of at least 4 characters")
        if chain == self.store.chain:
            raise DeviceDecisionError(SELF_DECISION)
        result = self.auth.authorise(admin_id, password, totp_code, reason, purpose="device_decision",
                                     where="the reason for the decision")
        admin = result.user
        assert admin is not None
        if not admin.has_role("admin"):
            raise NotPermitted("only a site admin can approve, reject or revoke terminals")
        row = next((d for d in self.devices() if d.chain == chain), None)
        if row is None:
            raise DeviceDecisionError(f"no registration for {chain}; refresh the list (it appears after the "
                                      "terminal's first sync)")
        if row.status not in _ALLOWED_FROM[decision]:
            raise DeviceDecisionError(f"{chain} is {row.status}; it cannot be {DECISIONS[decision].split('.')[1]} now")
        body = {
            "actor": actor_body(admin.user_id, admin.printed_name, "admin"),
            "target": target("device", chain),
            "fingerprint": row.fingerprint,
            "reason": reason,
            # How the admin authenticated; consumes the one-time code so it cannot be replayed.
            "auth": result.auth_body(),
        }
        try:
            self.store.append(DECISIONS[decision], body)
        except DirectoryConflict as exc:  # e.g. the one-time code was used meanwhile
            raise InvalidInput(str(exc)) from None
        return body
