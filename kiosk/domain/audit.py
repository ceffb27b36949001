"""What an audit trail row says about a record: who, what, when, where, why.

Every record body caused by a person carries the same attribution fields, so
the audit trail (11.10(e), Annex 11 §9) is derived generically from any record
type, including ones added later:

- ``actor``: ``{"user_id", "name", "role"}`` — who did it (absent for system
  events such as checkpoints);
- ``target``: ``{"kind", "id"}`` — what it is about (user, batch, step, device, alert…);
- ``old`` / ``new``: the value before and after a change;
- ``reason``: why (required for GMP-relevant changes);
- ``batch_id`` / ``step_id`` where a batch record is concerned.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from kiosk.domain.canonical import encode
from kiosk.domain.clock import local_time
from kiosk.domain.records import Record

# The settings a terminal started with, when they differ from the last recorded (kiosk.services.config_trail).
CONFIG_CHANGED = "config.changed"


def actor(user_id: str, name: str, role: str) -> dict[str, str]:
    return {"user_id": user_id, "name": name, "role": role}


def target(kind: str, id: str) -> dict[str, str]:
    return {"kind": kind, "id": id}


def alert_raised(kind: str, severity: str, message: str, about: Mapping[str, str],
                 alert_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """An ``alert.raised`` record to append. Its id keys the alert in every directory it reaches, the central
    one included, where the alerts of all terminals meet: a random UUID unless the caller names one that is
    unique to its terminal (e.g. to raise an alert once per episode); an id two terminals could both make
    (a time in seconds) would let one terminal's alert replace the other's."""
    return ("alert.raised", {"alert_id": alert_id or str(uuid.uuid4()), "kind": kind, "severity": severity,
                             "message": message, "target": dict(about)})


@dataclass(frozen=True)
class AuditRow:
    ts_utc: str
    ts_site: str
    zone: str
    device: str
    seq: int
    type: str
    user_id: str
    name: str
    role: str
    target: str
    batch_id: str
    step_id: str
    old: str
    new: str
    reason: str
    record_id: str
    hash: str

    FIELDS = (
        "ts_utc", "ts_site", "zone", "device", "seq", "type", "user_id", "name", "role", "target",
        "batch_id", "step_id", "old", "new", "reason", "record_id", "hash",
    )

    def values(self) -> list[Any]:
        return [getattr(self, f) for f in self.FIELDS]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return encode(value).decode("utf-8")


def audit_row(record: Record, hash_hex: str) -> AuditRow:
    body: Mapping[str, Any] = record.body
    who = body.get("actor") if isinstance(body.get("actor"), dict) else {}
    what = body.get("target") if isinstance(body.get("target"), dict) else {}
    site = local_time(record.time, record.tz) if record.tz else record.time
    return AuditRow(
        ts_utc=record.ts,
        ts_site=site.isoformat(timespec="seconds"),
        zone=record.tz,
        device=record.chain,
        seq=record.seq,
        type=record.type,
        user_id=_text(who.get("user_id")),
        name=_text(who.get("name")),
        role=_text(who.get("role")),
        target=f"{what.get('kind')}:{what.get('id')}" if what else "",
        batch_id=_text(body.get("batch_id")),
        step_id=_text(body.get("step_id")),
        old=_text(body.get("old")),
        new=_text(body.get("new")),
        reason=_text(body.get("reason")),
        record_id=record.id,
        hash=hash_hex,
    )
