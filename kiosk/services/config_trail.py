"""The kiosk's configuration in the audit trail (Annex 11 §10 change control, 21 CFR 11.10(e)).

Idle timeouts, lockout thresholds and the signing policy are set in a file
that users cannot change, but IT can. A change made there is a change to how
the system controls signatures, so an inspector must be able to see when it
took effect and what it was before. The kiosk cannot know who edited the
file; it records what it found, when, and where it read it: at each start, if
the settings differ from the ones this chain last recorded, one
``config.changed`` record with every setting in effect and the changed ones
old and new. The software's version is one of them (``kiosk.version``): an
upgrade changes the system as much as a setting does.
"""

from __future__ import annotations

from typing import Any, Mapping

from kiosk import __version__
from kiosk.domain.records import SignedRecord
from kiosk.services.ports import RecordWriter

CONFIG_CHANGED = "config.changed"


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
        "target": {"kind": "device", "id": device_id},
        "source": source,
        "settings": dict(settings),
        "old": {k: before[k] for k in changed if k in before},
        "new": {k: settings[k] for k in changed if k in settings},
        "reason": (f"found at start-up: kiosk {__version__}, settings from {source}" + (
            "" if last is not None else "; the first recorded on this chain")),
    }
    return store.append(CONFIG_CHANGED, body)
