"""Central outage on real PostgreSQL (A11-16): kiosks keep signing thousands of records while the
central store is unreachable, then it comes back and every record arrives exactly once, in order,
verified.

Two kinds of outage, neither of which stops the shared PostgreSQL server:
- the kiosks' sync points at a closed port (the server is simply gone);
- a real TCP link is cut in the middle of pushes and ingest transactions (the network fails mid-way).
"""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from kiosk.domain.chain import ChainVerifier
from kiosk.domain.keys import PublicKey, unb64url
from kiosk.services.sync import SyncService
from storage.central import CentralStore, IngestReport
from tests.signing_helpers import Operator
from tests.storage.conftest import ADMIN, central_key
from tests.storage.netfault import CuttableLink
from tests.storage.pg_helpers import fresh_database

CLOSED_PORT = "postgresql+psycopg://postgres@127.0.0.1:1/kiosk"


@pytest.fixture
def pg_url():
    """A fresh database per test on the shared server (dropped afterwards)."""
    with fresh_database("kiosk_outage") as url:
        yield url



def _enroll(central, syncs):
    for sync in syncs:
        sync.sync_once()
    central.ingest_all()
    for sync in syncs:
        central.decide_device(sync.outbox.chain, "approved", ADMIN, "fingerprint compared on site")


def _drain(central, syncs, rounds=20) -> IngestReport:
    """Sync and ingest until every kiosk holds a receipt for its whole chain."""
    total = IngestReport()
    for _ in range(rounds):
        for sync in syncs:
            sync.clock.advance(sync.interval_s)  # the next attempt is due
            sync.sync_once()
        total += central.ingest_all()
        if all(s.status().queued == 0 for s in syncs) and central.inbox_count() == 0:
            return total
    raise AssertionError([s.status() for s in syncs])


def assert_ledger_is_the_local_chain(central: CentralStore, local) -> None:
    """Exactly once, in order, verified: the ledger holds the local chain byte for byte, and the
    chain verifies from its first record with the key the central store enrolled."""
    chain = local.chain
    with central.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, hash, raw, sig FROM ledger WHERE chain = :c ORDER BY seq"),
                            {"c": chain}).all()
        key = conn.execute(text("SELECT public_key FROM chain_heads WHERE chain = :c"), {"c": chain}).scalar_one()
    local_rows = list(local.iter_rows())
    assert [r[0] for r in rows] == list(range(1, len(local_rows) + 1))
    assert [(bytes(r[1]), bytes(r[2]), bytes(r[3])) for r in rows] == [(x.hash, x.raw, x.sig) for x in local_rows]
    verifier = ChainVerifier(chain, PublicKey(unb64url(key)))
    for seq, _, raw, sig in rows:
        verifier.feed(bytes(raw), bytes(sig), seq)
    head = local.head()
    receipt, _ = central.receipt(chain)
    assert (receipt.upto, receipt.hash) == (head.seq, head.hash_hex)
    assert head.synced_upto == head.seq
    with local.read_engine().connect() as conn:
        receipts = conn.exec_driver_sql("SELECT max(seq) FROM anchors WHERE chain = ? AND source = 'receipt'",
                                        (chain,)).scalar_one()
    assert receipts == head.seq


@pytest.mark.pg
@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_kiosks_sign_thousands_of_records_while_central_is_unreachable(pg_url, tmp_path, clock):
    central = CentralStore.open(pg_url, clock, central_key(tmp_path), central_time=clock)
    down = {"now": False}

    def connect_to(central_store):
        def connect():
            return CentralStore(CLOSED_PORT, clock) if down["now"] else central_store
        return connect

    operators = [Operator(tmp_path / f"k{i}", clock, f"line-{i}") for i in range(3)]
    syncs = [SyncService(op.kiosk.store, connect_to(central), clock, batch_size=250, interval_s=30)
             for op in operators]
    _enroll(central, syncs)
    before = _drain(central, syncs)
    assert before.quarantined == 0

    down["now"] = True
    reported = {op.kiosk.store.chain: [] for op in operators}
    for round_ in range(20):
        for op, sync in zip(operators, syncs):
            signature = op.sign_next()                      # a real step signature, reported done
            reported[op.kiosk.store.chain].append(signature["content_hash"])
            op.kiosk.store.append_many([("note.added", {"round": round_, "n": n, "text": "x" * 200})
                                        for n in range(100)])  # cheap records: volume
            clock.advance(5)
            status = sync.sync_once()
            assert status.last_error.startswith("OperationalError") and status.offline_since is not None
        assert central.ingest_all() == IngestReport()        # the ingest worker runs on, with nothing to do
    queued = {s.outbox.chain: s.status().queued for s in syncs}
    assert all(q > 2000 for q in queued.values()) and sum(queued.values()) > 6000
    assert all(s.status().failures == 20 for s in syncs)
    assert central.inbox_count() == 0

    down["now"] = False
    after = _drain(central, syncs)
    assert after.quarantined == 0 and after.held == 0
    assert after.ingested == sum(queued.values())            # each record ingested once
    for op, sync in zip(operators, syncs):
        assert_ledger_is_the_local_chain(central, op.kiosk.store)
        status = sync.status()
        assert status.queued == 0 and status.last_error is None and status.offline_since is None
        signed = [r for r in op.kiosk.store.iter_rows() if r.type == "step.signed"]
        assert len(signed) == op.signed == 20
    assert central.quarantine() == [] and central.inbox_count() == 0
    for op in operators:
        op.close()
    central.close()


@pytest.mark.pg
@pytest.mark.req("A11-16")
def test_network_cut_in_the_middle_of_pushes_and_ingest(pg_url, tmp_path, clock):
    key = central_key(tmp_path)
    CentralStore.open(pg_url, clock, key, central_time=clock).close()      # schema and the central chain
    link = CuttableLink(("127.0.0.1", 5432))
    via_link = link.url(pg_url)
    central = CentralStore(via_link, clock, key, central_time=clock)  # kiosks and the ingest worker: via the link
    op = Operator(tmp_path / "k", clock, "line-7")
    sync = SyncService(op.kiosk.store, lambda: central, clock, batch_size=100, interval_s=30)
    direct = CentralStore(pg_url, clock, key, central_time=clock)  # the admin's connection, approval, checks
    sync.sync_once()
    direct.ingest_all()
    direct.decide_device(op.kiosk.store.chain, "approved", ADMIN, "fingerprint compared")
    for i in range(10):
        op.sign_next()
    op.kiosk.store.append_many([("note.added", {"n": n, "text": "y" * 300}) for n in range(2000)])

    total = IngestReport()
    cuts = failures = 0
    converged = False
    rnd = random.Random(5)
    for _ in range(200):
        # Each step runs over a link that dies somewhere inside it (after 20 kB-1 MB towards the server).
        link.cut_after(rnd.randint(20_000, 1_000_000))
        clock.advance(sync.max_backoff_s)
        failures += sync.sync_once().last_error is not None
        cuts += link.down
        link.restore()
        link.cut_after(rnd.randint(20_000, 1_000_000))
        try:
            total += central.ingest_once(batch=200)
        except Exception:  # noqa: BLE001 - the ingest transaction died with the link: rolled back, retried
            failures += 1
        cuts += link.down
        link.restore()
        if sync.status().queued == 0 and direct.inbox_count() == 0:
            converged = True  # progress under a failing link: each sync starts from the central receipt
            break
    link.cut_after(10**12)
    assert converged, sync.status()
    total += _drain(direct, [sync])
    assert cuts >= 5 and failures >= 5, (cuts, failures)
    assert total.quarantined == 0
    assert direct.quarantine() == []
    assert_ledger_is_the_local_chain(direct, op.kiosk.store)
    assert direct.ledger_count(op.kiosk.store.chain) == op.kiosk.store.head().seq
    op.close()
    central.close()
    direct.close()
    link.close()
