"""Sync in the background: the UI never waits for the network (issue 6 point 7)."""

from __future__ import annotations

import threading
from typing import Callable

from kiosk.services.sync import SyncHalted, SyncService


class SyncWorker(threading.Thread):
    """Calls ``sync_once`` whenever it is due; ``after_sync`` runs the embedded ingest in the demo."""

    def __init__(self, service: SyncService, *, tick_s: float = 1.0,
                 after_sync: Callable[[], object] | None = None) -> None:
        super().__init__(name="kiosk-sync", daemon=True)
        self.service = service
        self.tick_s = tick_s
        self.after_sync = after_sync
        self._stop_event = threading.Event()
        self.halted: str | None = None

    def run(self) -> None:
        while not self._stop_event.wait(self.tick_s):
            if self.halted or not self.service.due():
                continue
            try:
                self.service.sync_once()
                if self.after_sync is not None:
                    self.after_sync()
                    self.service.sync_once()  # pick up the receipt the ingest just wrote
            except SyncHalted as exc:
                self.halted = str(exc)  # alerted already; a person must look before sync resumes
            except Exception:  # noqa: BLE001 - sync_once already turned transport errors into status
                continue

    def stop(self) -> None:
        self._stop_event.set()
