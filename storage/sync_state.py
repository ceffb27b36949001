"""The sync worker's last outcome, kept in the local store so it outlives the process.

`kiosk sync status` runs in another process than the kiosk, and a kiosk that
restarts while offline should still say since when it has been offline.
This is operational state, not evidence: it lives in a mutable side table.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kiosk.domain.clock import format_ts, parse_ts

_FIELDS = ("last_sync", "last_error", "offline_since", "failures", "next_attempt")
_TIMES = ("last_sync", "offline_since", "next_attempt")


class LocalSyncState:
    def __init__(self, store) -> None:
        self.store = store

    def load(self) -> dict[str, Any]:
        with self.store.read_engine().connect() as conn:
            row = conn.exec_driver_sql(f"SELECT {', '.join(_FIELDS)} FROM sync_status WHERE id = 1").first()
        if row is None:
            return {}
        values = dict(zip(_FIELDS, row))
        return {k: (parse_ts(v) if k in _TIMES and v else v) for k, v in values.items()}

    def save(self, status) -> None:
        values = {k: v for k, v in asdict(status).items() if k in _FIELDS}
        params = [format_ts(values[k]) if k in _TIMES and values[k] else values[k] for k in _FIELDS]
        with self.store.side_transaction() as db:
            db.execute(f"UPDATE sync_status SET {', '.join(f + ' = ?' for f in _FIELDS)} WHERE id = 1",
                                 tuple(params))
