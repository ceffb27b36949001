"""Ten kiosks push at once into one PostgreSQL while two ingest worker processes run.

Every record must end up in the ledger exactly once, in order, with no
quarantine and no frozen chain; each kiosk's receipt must name its local head;
and the whole ledger must pass `central verify`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from kiosk.domain.clock import UTC, FakeClock
from kiosk.services.sync import SyncService
from storage.central import CentralStore
from tests.storage.conftest import ADMIN, central_key
from storage.keyfile import load_or_create_identity
from storage.local_store import CheckpointPolicy, LocalStore
from storage.verify_central import verify_central
from tests.storage.pg_helpers import fresh_database

ROOT = Path(__file__).resolve().parents[2]
KIOSKS = 10
BURSTS = 40          # per kiosk: append a burst, then sync
BURST = 10


def start_ingest_worker(url: str, stop_file: Path, batch: int = 200) -> subprocess.Popen:
    key = stop_file.parent / "central.key"  # the key central_key(tmp_path) made for the store
    child = subprocess.Popen([sys.executable, "-m", "tests.storage.ingest_child", url, str(stop_file), str(batch)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "KIOSK_CENTRAL_KEY": str(key)})
    assert child.stdout.readline().strip() == "ready"
    return child


def kiosk_fleet(base: Path, central_url: str, n: int):
    """n kiosks with their own store, clock and connection, registered and approved centrally."""
    fleet = []
    for k in range(n):
        clock = FakeClock(dt.datetime(2026, 11, 24, 10, 0, tzinfo=UTC), zone="Europe/Dublin")
        data = base / f"line-{k}"
        store = LocalStore.open(data, load_or_create_identity(data, f"line-{k}"), clock,
                                checkpoints=CheckpointPolicy(every_records=32))
        central = CentralStore(central_url, clock)
        fleet.append((store, SyncService(store, lambda c=central: c, clock, batch_size=25), central, clock))
    return fleet


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.pg
@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_ten_kiosks_and_two_ingest_workers_ingest_every_record_exactly_once(tmp_path):
    with fresh_database("kiosk_conc") as url:
        admin = CentralStore.open(url, FakeClock(), central_key(tmp_path))
        fleet = kiosk_fleet(tmp_path, url, KIOSKS)
        for store, sync, _, _ in fleet:
            sync.sync_once()
        admin.ingest_all()
        for store, *_ in fleet:
            admin.decide_device(store.chain, "approved", ADMIN, "fingerprint compared")
        stop = tmp_path / "stop"
        workers = [start_ingest_worker(url, stop) for _ in range(2)]
        errors: list[BaseException] = []

        def kiosk_life(store, sync, clock) -> None:
            try:
                for b in range(BURSTS):
                    clock.advance(2)
                    store.append_many([("step.signed", {"burst": b, "i": i, "value": "12.503"})
                                       for i in range(BURST)])
                    status = sync.sync_once()
                    assert status.last_error is None, status.last_error
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=kiosk_life, args=(s, y, c)) for s, y, _, c in fleet]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors

        def all_receipted() -> bool:
            for _, sync, _, _ in fleet:
                sync.sync_once()
            return all(s.head().synced_upto == s.head().seq for s, *_ in fleet)

        try:
            wait_until(all_receipted, 60, "every kiosk's receipt to reach its local head")
        finally:
            stop.touch()
        assert admin.quarantine() == []
        totals = [json.loads(w.communicate(timeout=60)[0].splitlines()[-1]) for w in workers]
        assert all(w.returncode == 0 for w in workers)

        with admin.engine.connect() as conn:
            ledger = {}
            for chain, seq, digest in conn.execute(text("SELECT chain, seq, hash FROM ledger ORDER BY chain, seq")):
                ledger.setdefault(chain, []).append((seq, bytes(digest)))
            receipts = dict(conn.execute(text(
                "SELECT chain, max(upto) FROM receipts GROUP BY chain")).all())
        expected = 0
        for store, *_ in fleet:
            local = [(r.seq, r.hash) for r in store.iter_rows()]
            assert ledger[store.chain] == local          # every record, once, in order
            head = store.head()
            assert receipts[store.chain] == head.seq == head.synced_upto
            receipt, sig = admin.receipt(store.chain)
            assert (receipt.upto, receipt.hash) == (head.seq, head.hash_hex)
            receipt.check(admin.key.public, sig)  # signed by the central key
            expected += len(local)
        assert sum(t["ingested"] for t in totals) == expected   # the workers ingested it all, genesis included
        assert all(t["ingested"] > 0 for t in totals)   # both workers did real work
        assert admin.quarantine() == [] and admin.inbox_count() == 0
        assert {d["status"] for d in admin.devices()} == {"approved"}
        assert not [a for a in admin.alerts() if a["kind"] == "chain.frozen"]
        report = verify_central(url, workers=2)
        central_records = next(c.records for c in report.chains if c.chain == "central:1")
        assert report.ok and report.records == expected + central_records  # + approvals and publications
        for store, _, central, _ in fleet:
            store.close()
            central.close()
        admin.close()
