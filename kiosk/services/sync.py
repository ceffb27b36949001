"""Push the local chain to the central inbox and mark it synced only on a matching receipt.

The local chain is the outbox: nothing is deleted, only the ``synced_upto``
marker moves, and only when the central store's receipt names the same hash
as the local record at that seq (a mismatch is an alarm, never a sync).
Failures back off exponentially; the queue is simply the unsynced tail, so it
survives restarts and power loss.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Protocol

from kiosk.domain.clock import Clock


class CentralInbox(Protocol):
    def push(self, rows: list[tuple[str, int, bytes, bytes, bytes]]) -> int: ...

    def receipt(self, chain: str) -> tuple[int, str] | None: ...

    def device_status(self, chain: str) -> tuple[str, str | None] | None: ...


class Outbox(Protocol):
    @property
    def chain(self) -> str: ...

    def head(self): ...

    def iter_rows(self, chain: str | None = None, after_seq: int = 0, upto: int | None = None,
                  batch: int = 1000) -> Iterator: ...

    def mark_synced(self, upto: int, receipt_hash_hex: str) -> None: ...

    def append(self, type: str, body: dict): ...


@dataclass(frozen=True)
class SyncStatus:
    queued: int = 0
    last_sync: dt.datetime | None = None
    last_error: str | None = None
    offline_since: dt.datetime | None = None
    failures: int = 0
    next_attempt: dt.datetime | None = None


class SyncService:
    def __init__(self, outbox: Outbox, connect: Callable[[], CentralInbox], clock: Clock, *,
                 batch_size: int = 500, interval_s: int = 30, max_backoff_s: int = 600) -> None:
        self.outbox = outbox
        self.connect = connect
        self.clock = clock
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self._status = SyncStatus()
        self._last_device_status: str | None = getattr(outbox, "device_status", lambda: None)()

    def status(self) -> SyncStatus:
        head = self.outbox.head()
        queued = 0 if head is None else head.seq - head.synced_upto
        return replace(self._status, queued=queued)

    def due(self) -> bool:
        nxt = self._status.next_attempt
        return nxt is None or self.clock.now() >= nxt

    def sync_once(self) -> SyncStatus:
        """Push every unsynced record (in batches, in order), then apply the receipt."""
        now = self.clock.now()
        try:
            central = self.connect()
            self._observe_device(central)  # first, so the observation travels in this push
            # The receipt first: a local store older than the central head (an old backup restored) is
            # an alarm before anything is pushed. Then send everything the central store has not
            # receipted: a link that drops mid-push still makes progress, and after the central store
            # was restored from an older dump the local chain (never pruned) sends what it lost again.
            after = self._apply_receipt(central)
            batch: list[tuple[str, int, bytes, bytes, bytes]] = []
            for row in self.outbox.iter_rows(after_seq=after):
                batch.append((row.chain, row.seq, row.hash, row.raw, row.sig))
                if len(batch) >= self.batch_size:
                    central.push(batch)
                    batch = []
            if batch:
                central.push(batch)
            self._apply_receipt(central)
        except ReceiptMismatch:
            raise
        except Exception as exc:  # noqa: BLE001 - any transport failure means "offline, try later"
            failures = self._status.failures + 1
            wait = min(self.interval_s * 2 ** (failures - 1), self.max_backoff_s)
            self._status = replace(self._status, last_error=_clean(exc), failures=failures,
                                   offline_since=self._status.offline_since or now,
                                   next_attempt=now + dt.timedelta(seconds=wait))
            return self.status()
        self._status = replace(self._status, last_sync=now, last_error=None, offline_since=None, failures=0,
                               next_attempt=now + dt.timedelta(seconds=self.interval_s))
        return self.status()

    def _apply_receipt(self, central: CentralInbox) -> int:
        """Check the central receipt against the local chain and move the marker; returns the seq it names."""
        receipt = central.receipt(self.outbox.chain)
        if receipt is None:
            return 0
        upto, hash_hex = receipt
        head = self.outbox.head()
        if head is None or upto > head.seq:
            self._alarm(f"the central store holds #{upto} of this chain but the local store ends at "
                        f"#{head.seq if head else 0}: was an old backup restored?")
        local = next(iter(self.outbox.iter_rows(after_seq=upto - 1, upto=upto)), None)
        if local is None or local.hash.hex() != hash_hex:
            self._alarm(f"the central receipt for #{upto} names a different record than the local store")
        if upto > head.synced_upto:
            self.outbox.mark_synced(upto, hash_hex)
        return upto

    def _observe_device(self, central: CentralInbox) -> None:
        """Record a change of this terminal's registration status (revocation takes effect here)."""
        seen = central.device_status(self.outbox.chain)
        if seen is None:
            return
        status, reason = seen
        if status != self._last_device_status:
            self.outbox.append("device.status_observed", {"status": status, "reason": reason or "",
                                                          "target": {"kind": "device", "id": self.outbox.chain}})
            self._last_device_status = status

    def _alarm(self, message: str) -> None:
        self.outbox.append("alert.raised", {"alert_id": f"sync-{self.clock.now().timestamp():.0f}",
                                            "kind": "sync.receipt_mismatch", "severity": "critical",
                                            "message": message, "target": {"kind": "device", "id": self.outbox.chain}})
        raise ReceiptMismatch(message)


class ReceiptMismatch(Exception):
    """The central store disagrees with the local chain; sync stops and supervisors are alerted."""


def _clean(exc: BaseException) -> str:
    """A short, secret-free error text (no URLs, no passwords)."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    for marker in ("postgresql://", "postgresql+psycopg://", "password="):
        if marker in text:
            text = text.split(marker)[0] + "<hidden>"
    return f"{name}: {text[:200]}".strip()
