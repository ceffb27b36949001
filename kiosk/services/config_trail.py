"""The kiosk's configuration in the audit trail (Annex 11 §10 change control, 21 CFR 11.10(e)).

Idle timeouts, lockout thresholds and the signing policy are set in a file
that users cannot change, but IT can. A change made there is a change to how
the system controls signatures, so an inspector must be able to see when it
took effect and what it was before. The kiosk cannot know who edited the
file; it records what it found, when, and where it read it: at each start, if
the settings differ from the ones this chain last recorded, one
``config.changed`` record with every setting in effect and the changed ones
old and new. The software's version is one of them (``kiosk.version``): an
upgrade changes the system as much as a setting does. A change after the
first record also raises an alert, so supervisors and QA see it on the
alert list (a warning when a setting changed, info for an upgrade alone) and
can hold it against the site's change control, instead of finding it only
when someone searches the trail.
"""

from __future__ import annotations

from typing import Any, Mapping

from kiosk import __version__
from kiosk.domain.audit import CONFIG_CHANGED, alert_raised, target
from kiosk.domain.records import SignedRecord
from kiosk.services.ports import RecordWriter

SHOWN = 6  # changes named in the alert's message; the record holds them all


def record_settings(store: RecordWriter, settings: Mapping[str, Any], source: str,
                    device_id: str) -> SignedRecord | None:
    """Append a ``config.changed`` record if ``settings`` (with this software's version) differ from the
    chain's last recorded ones (or none are recorded yet); returns it, or None when nothing changed."""
    settings = {"kiosk.version": __version__, **settings}
    last = store.newest(CONFIG_CHANGED)
    before: Mapping[str, Any] = (last.body.get("settings") or {}) if last is not None else {}
    if last is not None and dict(before) == dict(settings):
        return None
    keys = sorted(set(before) | set(settings))
    changed = [k for k in keys if before.get(k) != settings.get(k)]
    body: dict[str, Any] = {
        "target": target("device", device_id),
        "source": source,
        "settings": dict(settings),
        "old": {k: before[k] for k in changed if k in before},
        "new": {k: settings[k] for k in changed if k in settings},
        "reason": (f"found at start-up: kiosk {__version__}, settings from {source}" + (
            "" if last is not None else "; the first recorded on this chain")),
    }
    items: list[tuple[str, Mapping[str, Any]]] = [(CONFIG_CHANGED, body)]
    if last is not None:
        shown = [f"{k} {before.get(k, '(none)')} → {settings.get(k, '(none)')}" for k in changed[:SHOWN]]
        more = f", and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
        severity = "info" if changed == ["kiosk.version"] else "warning"
        items.append(alert_raised(CONFIG_CHANGED, severity, f"configuration changed on {device_id} (found at "
                                  f"start-up, from {source}): {'; '.join(shown)}{more}", target("device", device_id)))
    return store.append_many(items)[0]
