"""Backup and restore against the central store (A11-7, A11-16), on real PostgreSQL.

- A local backup older than what the central store received, restored anyway, is caught at the next
  sync as truncation, before anything is pushed (no silent re-sync, no forked chain at the centre).
- `kiosk admin restore --url` refuses such a backup up front.
- The central store restored from an older pg_dump: kiosks send again what it lost, and the ledger
  ends up equal to every local chain.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from kiosk.app import build_kiosk
from kiosk.demo import demo_config
from kiosk.domain.passwords import PasswordHasher
from kiosk.domain.records import parse_raw
from kiosk.services.sync import ReceiptMismatch, SyncService
from kiosk.sync_worker import SyncWorker
from storage.backup import backup
from storage.central import CentralStore
from storage.verify_local import verify_local_store
from tests.signing_helpers import CHEAP, Operator
from tests.storage.conftest import central_key
from tests.storage.pg_helpers import fresh_database
from tests.storage.test_outage import _drain, _enroll, assert_ledger_is_the_local_chain

@pytest.fixture
def databases():
    """Makes fresh databases on the test server (their URLs); all are dropped afterwards."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(fresh_database("kiosk_restore"))


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _reopen(data_dir, clock, device):
    return build_kiosk(demo_config(), data_dir, clock, device_id=device, hasher=PasswordHasher(**CHEAP))


def _synced_kiosk_with_old_backup(tmp_path, clock, central):
    """A terminal that made a backup at #n, then went on signing and synced well past it."""
    op = Operator(tmp_path / "k", clock, "line-5")
    sync = SyncService(op.kiosk.store, lambda: central, clock)
    _enroll(central, [sync])
    _drain(central, [sync])
    for _ in range(3):
        op.sign_next()
    old = backup(op.kiosk.data_dir, tmp_path / "old.bak")
    for _ in range(3):
        op.sign_next()
    op.kiosk.store.append_many([("note.added", {"n": n}) for n in range(50)])
    _drain(central, [sync])
    receipt, _ = central.receipt(op.kiosk.store.chain)
    central_head = (receipt.upto, receipt.hash)
    assert central_head[0] == op.kiosk.store.head().seq > old.report.records
    data_dir = op.kiosk.data_dir
    op.close()
    return data_dir, old, central_head


@pytest.mark.pg
@pytest.mark.req("A11-7")
@pytest.mark.req("A11-16")
@pytest.mark.parametrize("signs_after_restore", [0, 80])
def test_old_local_backup_is_caught_at_the_next_sync_before_any_push(databases, tmp_path, clock,
                                                                     signs_after_restore):
    central = CentralStore.open(databases(), clock, central_key(tmp_path), central_time=clock)
    data_dir, old, central_head = _synced_kiosk_with_old_backup(tmp_path, clock, central)

    restored = _cli("admin", "restore", "--from", str(old.path), "--data-dir", str(data_dir))
    assert restored.returncode == 0, restored.stderr   # without --url the restore cannot know; the sync will
    kiosk = _reopen(data_dir, clock, "line-5")
    assert kiosk.store.head().seq < central_head[0]
    # The restored terminal goes on working offline; with 80 new records it even passes the central
    # head, so only the hash of the record the receipt names can tell the chains apart.
    kiosk.store.append_many([("note.added", {"after_restore": n}) for n in range(signs_after_restore)])
    ledger_before = central.ledger_count(kiosk.store.chain)
    sync = SyncService(kiosk.store, lambda: central, clock)
    with pytest.raises(ReceiptMismatch, match="old backup restored|names a different record"):
        sync.sync_once()
    # Nothing was pushed: no forked records in the inbox, no frozen chain, no quarantine.
    assert central.inbox_count() == 0 and central.quarantine() == []
    assert central.ledger_count(kiosk.store.chain) == ledger_before
    assert central.head(kiosk.store.chain)["status"] == "approved"
    # The terminal alerted its supervisors, in its own chain, and the background worker stops syncing.
    last = parse_raw(list(kiosk.store.iter_rows())[-1].raw)[0]
    assert last.type == "alert.raised" and last.body["kind"] == "sync.receipt_mismatch"
    assert last.body["severity"] == "critical"
    assert any(a["kind"] == "sync.receipt_mismatch" for a in kiosk.auth.alerts())
    worker = SyncWorker(sync, tick_s=0.01)
    clock.advance(3600)
    worker.start()
    worker.join(0.5)
    worker.stop()
    worker.join(5)
    assert worker.halted and "central" in worker.halted
    assert central.inbox_count() == 0
    assert verify_local_store(data_dir).ok  # the restored store itself is intact
    kiosk.close()
    central.close()


@pytest.mark.pg
@pytest.mark.req("A11-7")
def test_restore_with_url_refuses_a_backup_older_than_the_central_head(databases, tmp_path, clock):
    url = databases()
    central = CentralStore.open(url, clock, central_key(tmp_path), central_time=clock)
    data_dir, old, central_head = _synced_kiosk_with_old_backup(tmp_path, clock, central)
    before = verify_local_store(data_dir).records
    refused = _cli("admin", "restore", "--from", str(old.path), "--data-dir", str(data_dir), "--url", url)
    assert refused.returncode == 1 and "would fork the chain" in refused.stderr
    assert f"holds seq {central_head[0]}" in refused.stderr
    assert verify_local_store(data_dir).records == before          # nothing replaced
    unreachable = _cli("admin", "restore", "--from", str(old.path), "--data-dir", str(data_dir),
                       "--url", "postgresql+psycopg://kiosk:secret@127.0.0.1:1/x")
    assert unreachable.returncode == 1 and "nothing was restored" in unreachable.stderr
    assert "secret" not in unreachable.stderr + unreachable.stdout
    current = backup(data_dir, tmp_path / "current.bak")            # a current backup is fine
    ok = _cli("admin", "restore", "--from", str(current.path), "--data-dir", str(data_dir), "--url", url)
    assert ok.returncode == 0, ok.stderr
    central.close()


@pytest.mark.pg
@pytest.mark.req("A11-7")
@pytest.mark.req("A11-16")
def test_central_restored_from_an_older_pg_dump_gets_the_lost_records_again(databases, tmp_path, clock):
    live = databases()
    central = CentralStore.open(live, clock, central_key(tmp_path), central_time=clock)
    ops = [Operator(tmp_path / f"k{i}", clock, f"line-{i}") for i in range(2)]
    syncs = [SyncService(op.kiosk.store, lambda: central, clock) for op in ops]
    _enroll(central, syncs)
    _drain(central, syncs)
    for op in ops:
        op.sign_next()
    _drain(central, syncs)
    dump = tmp_path / "central.dump"
    done = subprocess.run(["pg_dump", "-Fc", "-f", str(dump), live.replace("postgresql+psycopg", "postgresql")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for op in ops:                               # work the dump does not have, received and receipted
        for _ in range(4):
            op.sign_next()
        op.kiosk.store.append_many([("note.added", {"n": n}) for n in range(300)])
    _drain(central, syncs)
    assert all(op.kiosk.store.head().synced_upto == op.kiosk.store.head().seq for op in ops)
    central.close()

    # The central database is lost; the admin restores the last dump into a new database.
    restored = databases()
    done = subprocess.run(["pg_restore", "--no-owner", "-d", restored.replace("postgresql+psycopg", "postgresql"),
                           str(dump)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    central = CentralStore.open(restored, clock, central_key(tmp_path), central_time=clock)
    for sync in syncs:
        sync.connect = lambda c=central: c
    report = _drain(central, syncs)
    assert report.quarantined == 0 and central.quarantine() == []
    for op in ops:
        assert central.head(op.kiosk.store.chain)["status"] == "approved"
        assert_ledger_is_the_local_chain(central, op.kiosk.store)
        op.close()
    central.close()
