"""Ingest rules that the chain-locked ingest (storage/ingest.py) added or tightened, on PostgreSQL and SQLite."""

from __future__ import annotations

import hashlib

import pytest

from kiosk.services.sync import SyncService
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore
from tests.storage.conftest import enroll


def synced_kiosk(tmp_path, central, clock, n=3):
    local = LocalStore.open(tmp_path / "line-1", load_or_create_identity(tmp_path / "line-1", "line-1"), clock)
    for i in range(n):
        local.append("step.signed", {"i": i})
    SyncService(local, lambda: central, clock).sync_once()
    enroll(central, local)
    return local


@pytest.mark.req("P11-10c")
def test_a_replay_whose_bytes_differ_from_the_ledger_is_a_fork_even_with_the_ledger_hash_column(
        central, tmp_path, clock):
    """A row that copies the ledger's hash column but carries other bytes is not a replay: quarantined.

    Its signature does not cover its bytes, so anyone allowed to append to the inbox could have made it:
    it is alerted (record.rejected) but does not freeze the chain (a fork signed with the chain's key
    does: test_a_fork_quarantines_and_freezes_the_chain)."""
    local = synced_kiosk(tmp_path, central, clock)
    row = list(local.iter_rows())[2]
    central.push([(row.chain, row.seq, row.hash, row.raw.replace(b'"i":1', b'"i":7'), row.sig)])
    report = central.ingest_all()
    assert report.quarantined == 1 and report.replays == 0
    assert f"record {row.chain} #{row.seq}" in central.quarantine()[-1]["reason"]
    assert any(a["kind"] == "record.rejected" for a in central.alerts())
    assert central.head(local.chain)["status"] == "approved"
    local.close()


@pytest.mark.req("P11-10c")
def test_an_exact_copy_with_another_signature_is_kept_in_quarantine_not_acknowledged(central, tmp_path, clock):
    local = synced_kiosk(tmp_path, central, clock)
    row = list(local.iter_rows())[1]
    central.push([(row.chain, row.seq, row.hash, row.raw, bytes(64))])
    report = central.ingest_all()
    assert report.quarantined == 1 and report.replays == 0
    assert "different signature" in central.quarantine()[-1]["reason"]
    assert central.head(local.chain)["status"] == "approved"   # the ledger's own record is intact: no freeze
    local.close()


@pytest.mark.req("A11-16")
def test_a_true_replay_is_acknowledged_and_dropped_from_the_inbox(central, tmp_path, clock):
    local = synced_kiosk(tmp_path, central, clock)
    rows = [(r.chain, r.seq, r.hash, r.raw, r.sig) for r in local.iter_rows()]
    central.push(rows)
    report = central.ingest_all()
    assert report.replays == len(rows) and report.quarantined == 0 and central.inbox_count() == 0
    assert hashlib.sha256(rows[-1][3]).hexdigest() == central.head(local.chain)["hash"]
    local.close()
