"""Push the local chain to the central inbox, mark it synced only on a verified receipt, pull the directory.

The local chain is the outbox: nothing is deleted, only the ``synced_upto``
marker moves, and only when a receipt signed by the pinned central key names
the same hash as the local record at that seq (a mismatch is an alarm, never
a sync). The central key is pinned on first contact (a ``central.pinned``
record; the admin compares its fingerprint on site); a different key later
halts sync. The directory is pulled only by an approved terminal and applied
only when each publication's signature and digest check. Every sync also
compares the kiosk clock with the central clock. Failures back off
exponentially; the queue is simply the unsynced tail, so it survives restarts
and power loss.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Protocol

from kiosk.domain import directory
from kiosk.domain.audit import alert_raised, target
from kiosk.domain.central import (
    DIRECTORY_FORMAT, DIRECTORY_PUBLISHED, CentralTrustError, DirectoryDigest, DirectoryEntry, Receipt,
    is_central_chain,
)
from kiosk.domain.clock import Clock, format_ts, site_time
from kiosk.domain.clock_trust import skewed
from kiosk.domain.display import recordable
from kiosk.domain.keys import PublicKey, b64url, unb64url
from kiosk.domain.records import RecordError, open_signed


class CentralInbox(Protocol):
    def push(self, rows: list[tuple[str, int, bytes, bytes, bytes]]) -> int: ...

    def receipt(self, chain: str) -> tuple[Receipt, bytes | None] | None: ...

    def device_status(self, chain: str) -> tuple[str, str | None] | None: ...

    def central_key(self) -> PublicKey | None: ...

    def now(self) -> dt.datetime: ...

    def publications(self, after_seq: int = 0) -> list: ...

    def directory_entries(self, after_version: int, upto_version: int) -> Iterator[DirectoryEntry]: ...

    def latest_rebase(self): ...


class Puller(Protocol):
    """The kiosk side of a directory pull (storage.directory_pull over the local store)."""

    def state(self): ...

    def apply(self, entries: Iterable[DirectoryEntry], *, publication_seq: int, version: int, own_upto: int,
              publication_hash: str = "", publication_ts: str = "", rebase: bool = False):
        """Apply ``entries`` in one transaction; what iterating them raises aborts it, with nothing applied.
        ``rebase``: they replace the whole central base."""
        ...


class Outbox(Protocol):
    @property
    def chain(self) -> str: ...

    def head(self): ...

    def iter_rows(self, chain: str | None = None, after_seq: int = 0, upto: int | None = None,
                  batch: int = 1000) -> Iterator: ...

    def mark_synced(self, upto: int, receipt_hash_hex: str) -> None: ...

    def append(self, type: str, body: dict): ...

    def checkpoint_if_idle(self):
        """A checkpoint if nothing was written for the site's idle interval, so an idle terminal is heard."""
        ...


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
                 batch_size: int = 500, interval_s: int = 30, max_backoff_s: int = 600,
                 directory_reader=None, puller: Puller | None = None, max_skew_s: int = 120,
                 state=None, alert_offline_after_s: int = 3600) -> None:
        self.outbox = outbox
        self.connect = connect
        self.clock = clock
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.directory = directory_reader
        self.puller = puller
        self.max_skew_s = max_skew_s
        self.alert_offline_after_s = alert_offline_after_s
        self.state = state  # where the last outcome is kept across processes (storage.sync_state)
        self._status = SyncStatus(**state.load()) if state is not None else SyncStatus()
        self._last_device_status: str | None = getattr(outbox, "device_status", lambda: None)()

    def status(self) -> SyncStatus:
        head = self.outbox.head()
        queued = 0 if head is None else head.seq - head.synced_upto
        return replace(self._status, queued=queued)

    def due(self) -> bool:
        nxt = self._status.next_attempt
        return nxt is None or self.clock.now() >= nxt

    def sync_once(self) -> SyncStatus:
        """Push every unsynced record (in batches, in order), apply the receipt, pull; keep the outcome."""
        try:
            return self._sync_once()
        finally:
            if self.state is not None:
                try:
                    self.state.save(self._status)
                except Exception:  # noqa: BLE001 - the outcome is a convenience; the store may be full
                    pass

    def _sync_once(self) -> SyncStatus:
        now = self.clock.now()
        try:
            central = self.connect()
            key = self._pin(central)
            self._observe_device(central)  # first, so the observation travels in this push
            self._observe_clock(central)
            if self._last_device_status == "approved":
                self.outbox.checkpoint_if_idle()  # an idle terminal is heard all the same; it travels in this push
            # The receipt first: a local store older than the central head (an old backup restored) is
            # an alarm before anything is pushed. Then send everything the central store has not
            # receipted: a link that drops mid-push still makes progress, and after the central store
            # was restored from an older dump the local chain (never pruned) sends what it lost again.
            after = self._apply_receipt(central, key)
            batch: list[tuple[str, int, bytes, bytes, bytes]] = []
            for row in self.outbox.iter_rows(after_seq=after):
                batch.append((row.chain, row.seq, row.hash, row.raw, row.sig))
                if len(batch) >= self.batch_size:
                    central.push(batch)
                    batch = []
            if batch:
                central.push(batch)
            self._apply_receipt(central, key)
            pull_error = None
            if self._last_device_status == "approved" and self.puller is not None:
                try:
                    self._pull(central, key)
                except (DirectoryFormatMismatch, CentralBehind) as exc:
                    pull_error = str(exc)  # records went out and were receipted: online, but not pulling
        except SyncHalted:
            raise
        except Exception as exc:  # noqa: BLE001 - any transport failure means "offline, try later"
            failures = self._status.failures + 1
            wait = min(self.interval_s * 2 ** (failures - 1), self.max_backoff_s)
            self._status = replace(self._status, last_error=_clean(exc), failures=failures,
                                   offline_since=self._status.offline_since or now,
                                   next_attempt=now + dt.timedelta(seconds=wait))
            self._offline_too_long(now, self._status.last_error)
            return self.status()
        self._status = replace(self._status, last_sync=now, last_error=pull_error, offline_since=None, failures=0,
                               next_attempt=now + dt.timedelta(seconds=self.interval_s))
        return self.status()

    def pinned_key(self) -> PublicKey | None:
        doc = self.directory.get(directory.CENTRAL_PIN, self.outbox.chain) if self.directory else None
        return None if doc is None else PublicKey(unb64url(doc["public_key"]))

    def _pin(self, central: CentralInbox) -> PublicKey | None:
        """Trust the central key seen on first contact (recorded, shown to the admin); refuse any other later."""
        seen = central.central_key()
        pinned = self.pinned_key()
        if seen is None:
            if pinned is not None:
                self._alarm("the central store no longer shows its signing key; sync halted",
                            kind="sync.central_untrusted", error=CentralUntrusted)
            return None
        if pinned is None:
            if self.directory is None:
                return seen  # a bare outbox (tests, tools) keeps no pin; it still checks signatures
            self.outbox.append("central.pinned", {"public_key": b64url(seen.raw), "kid": seen.kid,
                                                  "fingerprint": seen.fingerprint,
                                                  "target": {"kind": "device", "id": self.outbox.chain}})
            return seen
        if pinned != seen:
            self._alarm(f"the central store now signs with key {seen.kid}, not the pinned {pinned.kid}: "
                        "sync halted until an admin checks the central store", kind="sync.central_untrusted",
                        error=CentralUntrusted)
        return pinned

    def _observe_clock(self, central: CentralInbox) -> None:
        """Clock trust: a skew beyond the bound (or its end) becomes a clock.observed record."""
        if self.directory is None:
            return  # a bare outbox (tools, tests) cannot tell one skew episode from the next
        kiosk_now, central_now = self.clock.now(), central.now()
        anomaly = skewed(kiosk_now, central_now, self.max_skew_s, format_ts(kiosk_now), format_ts(central_now))
        doc = self.directory.get(directory.CLOCK, self.outbox.chain) if self.directory else None
        was_skewed = bool(doc and doc.get("skewed"))
        if anomaly is not None and not was_skewed:
            self.outbox.append("clock.observed", anomaly.body())
        elif anomaly is None and was_skewed:
            self.outbox.append("clock.observed", {"kind": "skew_resolved", "kiosk_ts": format_ts(kiosk_now),
                                                  "reference_ts": format_ts(central_now),
                                                  "offset_s": f"{(kiosk_now - central_now).total_seconds():.6f}"})

    def _pull(self, central: CentralInbox, key: PublicKey | None) -> None:
        """Apply every new directory publication whose signature and digest check; all or nothing.

        The terminal follows the central chain by the publication it applied last, not by its number alone: a
        central store restored from an older backup no longer holds it, or holds another record under its
        number, and a delta from it would apply onto a directory that store no longer has. Then the terminal
        keeps what it holds and stops pulling (pushing goes on: that store needs the records again), until the
        central-key holder publishes a rebase (``kiosk central rebase``) signed after what it applied.
        """
        if key is None:
            return
        state = self.puller.state()
        anchored = state.publication_seq > 0 and bool(state.publication_hash)
        pubs = self._verified(central.publications(after_seq=state.publication_seq - anchored), key)
        if anchored:
            if not pubs or pubs[0].record.seq != state.publication_seq or pubs[0].hash_hex != state.publication_hash:
                pubs = self._rebase_after(central, key, state)
            else:
                pubs = pubs[1:]
        if not pubs:
            return
        served = pubs[-1].record.body.get("directory_format", 1)
        if served != DIRECTORY_FORMAT:
            # Not a trust problem: the two sides run different versions. Nothing is applied, and the terminal
            # keeps working on the directory it has; pushing is unaffected.
            side = "the central store" if served < DIRECTORY_FORMAT else "this terminal"
            raise DirectoryFormatMismatch(
                f"the central store publishes directory format {served}, this terminal applies format "
                f"{DIRECTORY_FORMAT}: upgrade {side} (nothing was pulled)")
        version = state.version
        rebases = [i for i, p in enumerate(pubs) if p.record.body.get("rebase")]
        if rebases:
            pubs = pubs[rebases[-1]:]  # the whole directory again, in place of what this terminal holds
        elif version == 0:
            snapshots = [i for i, p in enumerate(pubs) if p.record.body["kind"] == "snapshot"]
            if not snapshots:
                return  # nothing this terminal can start from yet
            pubs = pubs[snapshots[-1]:]
        records = [p.record for p in pubs]
        for record in records:
            body = record.body
            if body["kind"] == "delta" and body["from_version"] != version:
                self._alarm(f"directory publication #{record.seq} starts at version {body['from_version']}, "
                            f"this terminal holds {version}", kind="sync.central_untrusted", error=CentralUntrusted)
            version = body["to_version"]
        last = pubs[-1]
        try:
            self.puller.apply(_checked_entries(central, records), publication_seq=last.record.seq, version=version,
                              own_upto=int(last.record.body["heads"].get(self.outbox.chain, 0)),
                              publication_hash=last.hash_hex, publication_ts=last.record.ts, rebase=bool(rebases))
        except _NotAsPublished as exc:  # raised inside the pull's transaction: nothing was applied
            self._alarm(f"directory publication #{exc.seq} does not match the documents served; nothing applied",
                        kind="sync.central_untrusted", error=CentralUntrusted)

    def _verified(self, pubs: Iterable, key: PublicKey) -> list:
        """The publications, each signed by the pinned key and a directory publication of the central chain."""
        out = []
        for pub in pubs:
            try:
                signed = open_signed(pub.raw, pub.sig, key)
            except RecordError as exc:
                self._alarm(f"a directory publication does not verify ({exc}); nothing applied",
                            kind="sync.central_untrusted", error=CentralUntrusted)
            if signed.record.type != DIRECTORY_PUBLISHED or not is_central_chain(signed.record.chain):
                self._alarm("the directory publications include a record that is not one",
                            kind="sync.central_untrusted", error=CentralUntrusted)
            out.append(signed)
        return out

    def _rebase_after(self, central: CentralInbox, key: PublicKey, state) -> list:
        """The central store went back (restored from an older backup): its rebase and what followed, if one was
        signed after the publication this terminal applied last; otherwise pulls stop here, with one alert."""
        latest = central.latest_rebase()
        rebase = self._verified([latest], key)[0] if latest is not None else None
        if rebase is not None and rebase.record.body.get("kind") == "snapshot" and \
                rebase.record.ts > state.publication_ts:
            return [rebase, *self._verified(central.publications(after_seq=rebase.record.seq), key)]
        message = (f"the central store no longer holds directory publication #{state.publication_seq}, which this "
                   "terminal applied: was it restored from an older backup? This terminal keeps its directory and "
                   "stops pulling until an admin runs `kiosk central rebase`; its records are still sent.")
        alert_id = f"sync.central_behind/{self.outbox.chain}/{state.publication_seq}/{state.publication_hash[:16]}"
        if self.directory is not None and self.directory.get(directory.ALERT, alert_id) is None:
            self.outbox.append(*alert_raised("sync.central_behind", "critical", message,
                                             target("device", self.outbox.chain), alert_id))
        raise CentralBehind(message)

    def _apply_receipt(self, central: CentralInbox, key: PublicKey | None = None) -> int:
        """Check the signed receipt against the local chain and move the marker; returns the seq it names."""
        got = central.receipt(self.outbox.chain)
        if got is None:
            return 0
        receipt, sig = got
        if key is None:
            self._alarm("a receipt arrived but the central store shows no signing key", kind="sync.central_untrusted",
                        error=CentralUntrusted)
        try:
            receipt.check(key, sig)
        except CentralTrustError as exc:
            self._alarm(str(exc))
        upto, hash_hex = receipt.upto, receipt.hash
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

    def _alarm(self, message: str, *, kind: str = "sync.receipt_mismatch",
               error: type["SyncHalted"] | None = None) -> None:
        self.outbox.append(*alert_raised(kind, "critical", message, target("device", self.outbox.chain)))
        raise (error or ReceiptMismatch)(message)

    def _offline_too_long(self, now: dt.datetime, error: str) -> None:
        """One warning per outage once this terminal has not synced for ``alert_offline_after_s``.

        Until it reconnects, what is signed here exists only on this terminal's disk, and a suspension
        made elsewhere does not reach it: the status bar says OFFLINE, but nobody may be looking at it. The
        alert is a record of this chain, so the supervisor screen here shows it at once, and the central
        store receives it as evidence of the outage when the terminal is back. Its id names the outage
        (this chain, and since when), so a restart while still offline does not raise it again; an alert
        that cannot be written now (a full disk) is tried again at the next failed attempt.
        """
        since = self._status.offline_since
        if since is None or self.directory is None or (now - since).total_seconds() < self.alert_offline_after_s:
            return
        alert_id = f"sync.offline/{self.outbox.chain}/{format_ts(since)}"
        if self.directory.get(directory.ALERT, alert_id) is not None:
            return
        queued = self.status().queued
        hours = (now - since).total_seconds() / 3600
        records = f"{queued} record{' exists' if queued == 1 else 's exist'}"
        # Short enough for the acknowledgement dialog to quote whole; `kiosk sync status` shows the whole error.
        message = recordable(f"{self.outbox.chain} has not synced with the central store since "
                             f"{site_time(since, self.clock.zone)} ({hours:.1f} h): {records} only on this "
                             "terminal, and changes made elsewhere (a suspension) do not reach it. Last error: "
                             f"{error[:90]}")
        try:
            self.outbox.append(*alert_raised("sync.offline", "warning", message,
                                             target("device", self.outbox.chain), alert_id))
        except Exception:  # noqa: BLE001 - the store refused (full disk): the next failed attempt tries again
            pass


class _NotAsPublished(Exception):
    def __init__(self, seq: int) -> None:
        super().__init__(f"publication #{seq}")
        self.seq = seq


def _checked_entries(central: "CentralInbox", pubs: list) -> Iterator[DirectoryEntry]:
    """The publications' documents, streamed (a first pull at a large site is every document of it), each
    publication's digest checked after its last document and before the next: a mismatch raises, and the pull
    that consumes this inside its transaction applies nothing."""
    for record in pubs:
        body = record.body
        digest = DirectoryDigest()
        for entry in central.directory_entries(body["from_version"], body["to_version"]):
            digest.add(entry)
            yield entry
        if digest.hexdigest() != body["digest"]:
            raise _NotAsPublished(record.seq)


class SyncHalted(Exception):
    """Sync stopped on purpose: the central store said something this terminal cannot trust."""


class ReceiptMismatch(SyncHalted):
    """The central store disagrees with the local chain; sync stops and supervisors are alerted."""


class CentralUntrusted(SyncHalted):
    """The central store's key or signed statements do not check against the pin; nothing was applied."""


class DirectoryFormatMismatch(Exception):
    """The central store and this terminal run versions with different directory formats; the pull waits."""


class CentralBehind(Exception):
    """The central store no longer holds the publication this terminal applied last; the pull waits for a
    rebase."""


def _clean(exc: BaseException) -> str:
    """A short, secret-free error text (no URLs, no passwords)."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    for marker in ("postgresql://", "postgresql+psycopg://", "password="):
        if marker in text:
            text = text.split(marker)[0] + "<hidden>"
    return f"{name}: {text[:200]}".strip()
