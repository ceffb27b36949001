"""Ingest overlaps each batch's commit with the next batch's checks (storage/ingest.py ``_Tail``).

What must still hold: every record once, in order, under each chain's own lock; a
report counts only what committed; a batch that fails after its checks leaves its
rows for the next pass; a device decision about a chain is applied even when that
chain is checked next in the same pass. PostgreSQL (where the overlap runs) and
SQLite (where each batch commits in turn).
"""

from __future__ import annotations

import threading

import pytest

from kiosk.services.sync import SyncService
from kiosk.domain.keys import PublicKey, unb64url
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore
from tests.storage.conftest import enroll
from tests.storage.test_central_trust import admin_terminal, cycle, second_terminal
from tests.storage.test_outage import _drain, assert_ledger_is_the_local_chain


def kiosks(tmp_path, central, clock, n_kiosks=3, before=5):
    out = []
    for k in range(n_kiosks):
        name = f"line-{k}"
        local = LocalStore.open(tmp_path / name, load_or_create_identity(tmp_path / name, name), clock)
        local.append_many([("note.added", {"k": k, "i": i}) for i in range(before)])
        SyncService(local, lambda: central, clock).sync_once()
        enroll(central, local)
        out.append(local)
    return out


def push_more(central, clock, stores, n):
    for s in stores:
        s.append_many([("note.added", {"more": i}) for i in range(n)])
        sync(central, clock, s)


def sync(central, clock, local):
    """Push what is new and take the receipts for what was ingested."""
    SyncService(local, lambda: central, clock).sync_once()


def assert_each_ledger_is_its_chain(central, clock, stores):
    _drain(central, [SyncService(s, lambda: central, clock) for s in stores])  # the last receipts reach the kiosks
    for s in stores:
        assert_ledger_is_the_local_chain(central, s)  # once, in order, verified; the receipt names the head
        s.close()


@pytest.mark.req("A11-16")
@pytest.mark.req("DI-ALCOA")
def test_many_small_batches_of_many_chains_are_each_ingested_once_in_order(central, tmp_path, clock):
    stores = kiosks(tmp_path, central, clock)
    push_more(central, clock, stores, 40)
    waiting = central.inbox_count()
    assert waiting >= 3 * 40
    report = central.ingest_all(batch=7)  # 6+ batches per chain, each chain's commit behind the next one's checks
    assert report.ingested == waiting and report.replays == report.quarantined == 0
    assert central.inbox_count() == 0 and central.quarantine() == []
    assert_each_ledger_is_its_chain(central, clock, stores)


@pytest.mark.req("A11-16")
def test_a_batch_that_fails_after_its_checks_commits_nothing_and_is_ingested_by_the_next_pass(
        central, tmp_path, clock, monkeypatch):
    stores = kiosks(tmp_path, central, clock)
    push_more(central, clock, stores, 20)
    waiting, ledger = central.inbox_count(), {s.chain: central.ledger_count(s.chain) for s in stores}
    real_receipt, calls = central._sign_receipt, []

    def receipt_fails_once(conn, chain, upto, hash_hex):
        calls.append(chain)
        if len(calls) == 2:  # the second batch's last statement: the database refuses it
            raise RuntimeError("the receipt could not be written (disk full)")
        real_receipt(conn, chain, upto, hash_hex)

    monkeypatch.setattr(central, "_sign_receipt", receipt_fails_once)
    with pytest.raises(RuntimeError, match="disk full"):
        central.ingest_all(batch=8)
    failed = calls[1]
    # Only the first batch committed: the failed one left no ledger rows, no head move, no inbox deletion.
    assert sum(central.ledger_count(s.chain) for s in stores) == sum(ledger.values()) + 8
    assert central.ledger_count(failed) == ledger[failed]
    assert int(central.head(failed)["seq"]) == ledger[failed]
    assert central.inbox_count() == waiting - 8
    monkeypatch.setattr(central, "_sign_receipt", real_receipt)
    report = central.ingest_all(batch=8)
    assert report.ingested == waiting - 8 and report.quarantined == 0 and central.quarantine() == []
    assert_each_ledger_is_its_chain(central, clock, stores)


@pytest.mark.req("P11-10h")
@pytest.mark.parametrize("chain_before", [False, True], ids=["decision-first", "target-opened-ahead"])
def test_a_revocation_is_applied_when_its_target_is_checked_next_in_the_same_pass(
        central, tmp_path, clock, chain_before):
    """A decision locks its target's head. Had its batch committed on the side while this worker held the
    target for its own next batch, each would wait for the other (a wait PostgreSQL cannot see).
    ``target-opened-ahead``: a chain checked before the decision's lets its commit thread open the target
    ahead (lock held, rows read); that must be let go before the decision runs, or it waits on itself."""
    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = second_terminal(tmp_path, clock, central, a, sync_a)
    central.decide_device(b.store.chain, "approved", {"user_id": "qa.lead", "name": "QA", "role": "admin"},
                          "fingerprint compared on site")
    cycle(central, sync_a, sync_b)
    assert central.head(b.store.chain)["status"] == "approved"
    before = kiosks(tmp_path, central, clock, n_kiosks=1)[0] if chain_before else None  # line-0 sorts first
    fingerprint = PublicKey(unb64url(central.head(b.store.chain)["public_key"])).fingerprint
    admin = {"user_id": "site.admin", "name": "Site Admin", "role": "admin"}
    # Records ahead of the decision in the same batch keep its transaction busy (ledger rows, inbox rows)
    # while this worker moves on and locks line-b for its own next batch: the order that used to hang.
    a.store.append_many([("note.added", {"i": i, "text": "x" * 200}) for i in range(1500)])
    a.store.append("device.revoked", {"actor": admin, "target": {"kind": "device", "id": b.store.chain},
                                      "fingerprint": fingerprint, "reason": "terminal stolen"})
    synced_b = b.store.head().seq
    b.store.append_many([("note.added", {"i": i}) for i in range(5)])
    if before is not None:
        push_more(central, clock, [before], 300)
    sync_a.sync_once()
    sync_b.sync_once()
    central._the_ingestor()._after = ""  # this pass checks [line-0,] line-a (the decision), then line-b
    done = threading.Event()
    worker = threading.Thread(target=lambda: (central.ingest_all(batch=2000), done.set()), daemon=True)
    worker.start()
    worker.join(30)
    assert done.is_set(), "ingest hung: the decision's transaction and the target's batch waited for each other"
    head = central.head(b.store.chain)
    assert head["status"] == "revoked" and int(head["revoked_after_seq"]) == synced_b
    after = [q for q in central.quarantine() if q["chain"] == b.store.chain]
    assert len(after) == 5 and all(q["reason"] == "after revocation" for q in after)  # kept, never dropped
    if before is not None:
        assert_each_ledger_is_its_chain(central, clock, [before])
    a.close(), b.close()


@pytest.mark.req("A11-16")
def test_a_chain_whose_head_is_locked_elsewhere_is_ingested_once_the_lock_goes(pg_database, tmp_path, clock):
    """An admin's decision holds a chain's head for a moment: the commit thread does not wait to open that
    chain ahead (it never waits for a lock); the worker opens it itself, waits its turn, and ingests it."""
    from sqlalchemy import text

    from storage.central import CentralStore
    from tests.storage.conftest import central_key

    central = CentralStore.open(pg_database, clock, central_key(tmp_path), central_time=clock)
    stores = kiosks(tmp_path, central, clock)  # line-0, line-1, line-2: line-2 is opened ahead
    push_more(central, clock, stores, 30)
    waiting = central.inbox_count()
    held = central.engine.connect()
    tx = held.begin()
    held.execute(text("SELECT * FROM chain_heads WHERE chain = 'line-2:1' FOR UPDATE"))
    timer = threading.Timer(1.0, tx.commit)
    timer.start()
    central._the_ingestor()._after = ""
    report = central.ingest_all(batch=10)
    timer.join()
    held.close()
    assert report.ingested == waiting and central.inbox_count() == 0 and central.quarantine() == []
    assert_each_ledger_is_its_chain(central, clock, stores)
    central.close()
