"""The directory (users, credentials, lockouts, badges, alerts) derived from records.

The same pure projection runs on the kiosk (inside the append transaction, so
a record and its effect commit together) and centrally (over all chains in
ingest order). Replaying the records rebuilds it exactly; nothing in it is
ever the only copy of a fact.

Documents are plain JSON-able dicts keyed by (kind, key).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from kiosk.domain.records import Record

Doc = dict[str, Any]
Getter = Callable[[str, str], "Doc | None"]
Change = tuple[str, str, Doc]

USER = "user"
BADGE = "badge"
FAILURES_ID = "failures.id"        # per attempted user id, known or not (no enumeration)
FAILURES_DEVICE = "failures.device"
ALERT = "alert"
SESSION = "session"                # per chain: the session open on this terminal, if any
DEVICE = "device"                  # per chain: this terminal's registration as last seen centrally
CLOCK = "clock"                    # per chain: whether the last sync found this terminal's clock skewed
CENTRAL_PIN = "central.pin"        # per chain: the central store key this terminal trusts

# The one severity acknowledged together (alerts.acknowledged): single failed sign-ins, by the dozen a day. A
# warning or critical alert (an unknown id, a suspension) is looked at and acknowledged on its own.
ACKNOWLEDGED_TOGETHER = "info"


class DirectoryConflict(Exception):
    """A record cannot apply to the directory as it stands (raised inside the append: nothing is written)."""


def empty_failures() -> Doc:
    return {"count": 0, "first": None, "last": None}


def _target_id(body: Mapping[str, Any]) -> str:
    target = body.get("target") or {}
    return str(target.get("id"))


def project(record: Record, get: Getter) -> list[Change]:
    """The document changes one record causes. Unknown types change nothing.

    Any record whose body carries ``auth.totp_step`` consumes that one-time
    code for its actor: the check and the update happen in the transaction
    that writes the record, so a replayed code can never be accepted twice.
    """
    changes = _consume_totp(record, get)
    if changes:
        overlay = {(k, key): doc for k, key, doc in changes}
        base = get
        get = lambda kind, key: overlay.get((kind, key)) or base(kind, key)  # noqa: E731
    handler = _HANDLERS.get(record.type)
    return changes + (handler(record, get) if handler else [])


def _consume_totp(record: Record, get: Getter) -> list[Change]:
    auth = record.body.get("auth")
    if not isinstance(auth, dict) or auth.get("totp_step") is None:
        return []
    uid = (record.body.get("actor") or {}).get("user_id")
    user = _require_user(get, uid)
    step = auth["totp_step"]
    if step <= user.get("totp_last_step", -1):
        raise DirectoryConflict("that one-time code was already used; wait for the next code")
    user["totp_last_step"] = step
    return [(USER, uid, user)]


def _user_created(record: Record, get: Getter) -> list[Change]:
    body = record.body
    new = body["new"]
    uid = new["user_id"]
    if get(USER, uid) is not None:
        raise DirectoryConflict(f"user id {uid!r} already exists (ids are never reused, even after deactivation)")
    badge = new.get("badge_id")
    changes: list[Change] = []
    if badge:
        if get(BADGE, badge) is not None:
            raise DirectoryConflict("that badge id is already assigned (badge ids are never reused)")
        changes.append((BADGE, badge, {"user_id": uid, "revoked": False}))
    cred = body["credential"]
    user = {
        "user_id": uid,
        "printed_name": new["printed_name"],
        "roles": sorted(new["roles"]),
        "qualifications": sorted(new.get("qualifications", [])),
        "status": "active",
        "badge_id": badge,
        "credential": cred["enc"],
        "temporary": bool(cred.get("temporary", True)),
        "password_changed_at": record.ts,
        "history": [cred["enc"]],
        "totp": (body.get("totp") or {}).get("enc"),
        "totp_last_step": -1,
        "first_use_accepted": False,
        "last_login": None,
        "created_at": record.ts,
    }
    return changes + [(USER, uid, user)]


def _require_user(get: Getter, uid: str) -> Doc:
    user = get(USER, uid)
    if user is None:
        raise DirectoryConflict(f"no user {uid!r}")
    return dict(user)


def _user_updated(record: Record, get: Getter) -> list[Change]:
    uid = _target_id(record.body)
    user = _require_user(get, uid)
    changes: list[Change] = []
    for field, value in record.body["new"].items():
        if field == "badge_id":
            if value:
                holder = get(BADGE, value)
                if holder is not None:
                    raise DirectoryConflict("that badge id is already assigned (badge ids are never reused)")
                changes.append((BADGE, value, {"user_id": uid, "revoked": False}))
            old = user.get("badge_id")
            if old:
                changes.append((BADGE, old, {"user_id": uid, "revoked": True}))
        if field == "roles" or field == "qualifications":
            value = sorted(value)
        user[field] = value
    if record.body["new"].get("status") == "active":
        changes.append((FAILURES_ID, uid, empty_failures()))
    return changes + [(USER, uid, user)]


def _password_changed(record: Record, get: Getter) -> list[Change]:
    uid = _target_id(record.body)
    user = _require_user(get, uid)
    cred = record.body["credential"]
    user["credential"] = cred["enc"]
    user["temporary"] = bool(cred.get("temporary", False))
    user["password_changed_at"] = record.ts
    user.pop("password_exposed", None)  # a new password is no longer the one that was shown
    keep = int(record.body.get("history_size", 5))
    user["history"] = ([cred["enc"]] + list(user.get("history", [])))[: max(keep, 1)]
    return [(USER, uid, user)]


def _totp_enrolled(record: Record, get: Getter) -> list[Change]:
    uid = _target_id(record.body)
    user = _require_user(get, uid)
    user["totp"] = (record.body.get("totp") or {}).get("enc")
    user["totp_last_step"] = -1
    return [(USER, uid, user)]


def _first_use(record: Record, get: Getter) -> list[Change]:
    uid = _target_id(record.body)
    user = _require_user(get, uid)
    user["first_use_accepted"] = True
    return [(USER, uid, user)]


def _login(record: Record, get: Getter) -> list[Change]:
    uid = _target_id(record.body)
    user = _require_user(get, uid)
    user["last_login"] = record.ts
    return _session_open(record, get) + [
        (USER, uid, user),
        (FAILURES_ID, uid, empty_failures()),
        (FAILURES_DEVICE, record.device_id, empty_failures()),
    ]


def _failed(record: Record, get: Getter) -> list[Change]:
    body = record.body
    return [
        (FAILURES_ID, body["attempted_user_id"], dict(body["user_failures"])),
        (FAILURES_DEVICE, record.device_id, dict(body["device_failures"])),
    ]


def _set_status(status: str) -> Callable[[Record, Getter], list[Change]]:
    def handler(record: Record, get: Getter) -> list[Change]:
        uid = _target_id(record.body)
        user = _require_user(get, uid)
        if status == "active" and user["status"] == "deactivated":
            raise DirectoryConflict("a deactivated account cannot be unlocked; an admin must re-activate it")
        user["status"] = status
        changes: list[Change] = [(USER, uid, user)]
        if status == "active":
            changes.append((FAILURES_ID, uid, empty_failures()))
        return changes

    return handler


def documents_named(record: Record) -> list[tuple[str, str]]:
    """The documents ``project`` reads for ``record`` that the record itself names (an alert's id), so that
    central ingest can read a whole batch's in one query instead of one round trip each: alerts are raised
    and acknowledged by the hundred. Anything left out is still read, one at a time."""
    body = record.body
    if record.type in ("alert.raised", "alert.acknowledged"):
        alert_id = body.get("alert_id")
        return [(ALERT, alert_id)] if isinstance(alert_id, str) else []
    if record.type == "alerts.acknowledged":
        ids = body.get("alert_ids")
        return [(ALERT, i) for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
    return []


def _alert_raised(record: Record, get: Getter) -> list[Change]:
    """An alert is raised once. A second record with its id (from another terminal: every terminal's alerts
    meet centrally) would replace its text and reopen it on every supervisor screen; it is refused, and the
    central store keeps it in the ledger and raises a directory conflict."""
    body = record.body
    if get(ALERT, body["alert_id"]) is not None:
        raise DirectoryConflict(f"alert {body['alert_id']} was raised already; an alert id names one alert")
    return [(ALERT, body["alert_id"], {
        "alert_id": body["alert_id"], "kind": body["kind"], "severity": body.get("severity", "warning"),
        "message": body["message"], "target": body.get("target"), "device": record.chain, "at": record.ts,
        "acknowledged_by": None, "acknowledged_at": None,
    })]


def _alert_ack(record: Record, get: Getter) -> list[Change]:
    """The first acknowledgement stands. Two supervisors on two terminals may both acknowledge an alert before
    either terminal syncs: the later record is kept in the ledger and changes nothing (the service refuses
    an alert this terminal already knows to be acknowledged)."""
    alert_id = record.body["alert_id"]
    alert = get(ALERT, alert_id)
    if alert is None:
        raise DirectoryConflict(f"no alert {alert_id}")
    return [] if alert.get("acknowledged_by") else [(ALERT, alert_id, _acknowledged(alert, record))]


def _alerts_ack(record: Record, get: Getter) -> list[Change]:
    """Open info alerts of one kind acknowledged together, under one note.

    As for one alert, the first acknowledgement stands. Anything but an info
    alert of the named kind refuses the whole record: the rule holds
    centrally too, whatever a terminal sends. An alert the directory does
    not hold is passed over, not a refusal: a central store restored from an
    older backup has lost some of the alerts a supervisor acknowledged
    together with others it still holds, and those stay acknowledged (the
    record itself, in the ledger, names them all).
    """
    body = record.body
    kind, changes = body["kind"], []
    for alert_id in body["alert_ids"]:
        alert = get(ALERT, alert_id)
        if alert is None:
            continue
        if alert["kind"] != kind or alert["severity"] != ACKNOWLEDGED_TOGETHER:
            raise DirectoryConflict(f"alert {alert_id} is a {alert['severity']} {alert['kind']} alert: only "
                                    f"{ACKNOWLEDGED_TOGETHER} alerts of kind {kind} are acknowledged together")
        if not alert.get("acknowledged_by"):
            changes.append((ALERT, alert_id, _acknowledged(alert, record)))
    return changes


def _acknowledged(alert: Mapping[str, Any], record: Record) -> Doc:
    return {**alert, "acknowledged_by": record.body["actor"]["user_id"], "acknowledged_at": record.ts}


def _clock_observed(record: Record, get: Getter) -> list[Change]:
    body = record.body
    kind = body.get("kind")
    changes: list[Change] = []
    if kind in ("skew", "skew_resolved"):
        changes.append((CLOCK, record.chain, {"skewed": kind == "skew", "offset_s": body.get("offset_s"),
                                              "since": record.ts}))
    if kind == "skew_resolved":
        return changes
    return changes + [(ALERT, record.id, {
        "alert_id": record.id, "kind": f"clock.{body.get('kind')}", "severity": "critical",
        "message": f"kiosk clock anomaly ({body.get('kind')}): kiosk {body.get('kiosk_ts')} vs "
                   f"{body.get('reference_ts')}, offset {body.get('offset_s')} s",
        "target": {"kind": "device", "id": record.device_id}, "device": record.chain, "at": record.ts,
        "acknowledged_by": None, "acknowledged_at": None,
    })]


def _session_open(record: Record, get: Getter) -> list[Change]:
    actor = record.body.get("actor") or {}
    return [(SESSION, record.chain, {"open": True, "session_id": record.body.get("session_id"),
                                     "actor": dict(actor), "since": record.ts})]


def _session_closed(record: Record, get: Getter) -> list[Change]:
    return [(SESSION, record.chain, {"open": False, "session_id": record.body.get("session_id"), "since": record.ts})]


def _central_pinned(record: Record, get: Getter) -> list[Change]:
    body = record.body
    return [(CENTRAL_PIN, record.chain, {"public_key": body["public_key"], "kid": body["kid"],
                                         "fingerprint": body["fingerprint"], "since": record.ts})]


def _device_status(record: Record, get: Getter) -> list[Change]:
    return [(DEVICE, record.chain, {"status": record.body["status"], "reason": record.body.get("reason", ""),
                                    "since": record.ts})]


_HANDLERS: dict[str, Callable[[Record, Getter], list[Change]]] = {
    "clock.observed": _clock_observed,
    "central.pinned": _central_pinned,
    "device.status_observed": _device_status,
    "session.locked": _session_closed,
    "session.logout": _session_closed,
    "session.timeout": _session_closed,
    "user.created": _user_created,
    "user.updated": _user_updated,
    "user.password_changed": _password_changed,
    "user.totp_enrolled": _totp_enrolled,
    "user.first_use_accepted": _first_use,
    "session.login": _login,
    "auth.failed": _failed,
    "account.suspended": _set_status("suspended"),
    "account.unlocked": _set_status("active"),
    "alert.raised": _alert_raised,
    "alert.acknowledged": _alert_ack,
    "alerts.acknowledged": _alerts_ack,
}
