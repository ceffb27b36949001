"""kill -9 of the kiosk's sync worker and of a central ingest worker, mid-batch, on real PostgreSQL.

Sync: nothing is lost or duplicated after a restart, and the kiosk's synced
marker is never ahead of a central receipt that names the same record.
Ingest: the killed worker's transaction rolls back as a whole (the ledger
only ever holds whole batches, contiguous from #1), and a second worker
finishes the job with every record ingested exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from kiosk.domain.clock import FakeClock
from storage.central import CentralStore
from storage.ingest_loop import run_ingest_loop
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore
from storage.verify_central import verify_central
from storage.verify_local import verify_local_store
from tests.storage.conftest import ADMIN, central_key
from tests.storage.pg_helpers import fresh_database

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def child_env(tmp_path: Path) -> dict[str, str]:
    return {**ENV, "KIOSK_CENTRAL_KEY": str(tmp_path / "central.key")}  # the key central_key(tmp_path) made

SYNC_CHILD = textwrap.dedent("""
    import sys
    from kiosk.services.sync import SyncService
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore
    from storage.keyfile import load_identity
    from storage.local_store import LocalStore
    data, url, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    clock = SystemClock()
    store = LocalStore.open(data, load_identity(data), clock)
    central = CentralStore(url, clock)
    sync = SyncService(store, lambda: central, clock, batch_size=40)
    print("ready", flush=True)
    i = 0
    while True:
        if mode == "work":
            store.append_many([("step.signed", {"i": i + k, "value": "7.01"}) for k in range(25)])
            i += 25
        status = sync.sync_once()
        if status.last_error:
            print("error", status.last_error, flush=True)
        head = store.head()
        if mode == "finish" and head.synced_upto == head.seq:
            break
""")


def local_rows(data: Path) -> list[tuple[int, bytes]]:
    conn = sqlite3.connect(data / "kiosk.db")
    rows = [(seq, bytes(h)) for seq, h in conn.execute("SELECT seq, hash FROM records ORDER BY seq")]
    conn.close()
    return rows


def local_marker(data: Path) -> int:
    conn = sqlite3.connect(data / "kiosk.db")
    (upto,) = conn.execute("SELECT synced_upto FROM chain_state").fetchone()
    conn.close()
    return upto


def ledger_rows(central: CentralStore, chain: str) -> list[tuple[int, bytes]]:
    with central.engine.connect() as conn:
        return [(s, bytes(h)) for s, h in conn.execute(
            text("SELECT seq, hash FROM ledger WHERE chain = :c ORDER BY seq"), {"c": chain})]


@pytest.mark.pg
@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_kill_9_of_the_sync_worker_mid_batch_loses_and_duplicates_nothing(tmp_path):
    rnd = random.Random(5)
    data = tmp_path / "line-1"
    with fresh_database("kiosk_killsync") as url:
        central = CentralStore.open(url, FakeClock(), central_key(tmp_path))
        local = LocalStore.open(data, load_or_create_identity(data, "line-1"), FakeClock())
        chain = local.chain
        central.push([(r.chain, r.seq, r.hash, r.raw, r.sig) for r in local.iter_rows()])
        central.ingest_all()
        central.decide_device(chain, "approved", ADMIN, "fingerprint compared")
        local.close()
        stop = threading.Event()
        ingest = threading.Thread(target=run_ingest_loop, args=(central,), kwargs={"poll_s": 0.2, "stop": stop})
        ingest.start()
        killed_with_unreceipted_pushes = 0
        try:
            for _ in range(8):
                child = subprocess.Popen([sys.executable, "-c", SYNC_CHILD, str(data), url, "work"],
                                         stdout=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
                assert child.stdout.readline().strip() == "ready"
                time.sleep(rnd.uniform(0.1, 0.6))
                child.send_signal(signal.SIGKILL)
                out, _ = child.communicate()
                assert "error" not in out, out
                marker = local_marker(data)
                receipt, sig = central.receipt(chain)
                receipt.check(central.key.public, sig)
                # The marker never runs ahead of a receipt, and the receipt names the local record.
                assert marker <= receipt.upto
                local = dict(local_rows(data))
                assert local[receipt.upto].hex() == receipt.hash
                with central.engine.connect() as conn:
                    pushed = conn.execute(text("SELECT coalesce(max(seq), 0) FROM inbox WHERE chain = :c"),
                                          {"c": chain}).scalar_one()
                killed_with_unreceipted_pushes += max(pushed, receipt.upto) > marker
                assert verify_local_store(data).ok
            child = subprocess.Popen([sys.executable, "-c", SYNC_CHILD, str(data), url, "finish"],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0 and "error" not in out, out
        finally:
            stop.set()
            ingest.join(30)
        central.ingest_all()
        assert killed_with_unreceipted_pushes >= 1  # at least one kill landed between a push and its receipt
        expected = local_rows(data)
        assert ledger_rows(central, chain) == expected           # every record once, in order, same bytes
        assert local_marker(data) == expected[-1][0] == central.receipt(chain)[0].upto
        assert central.quarantine() == [] and central.inbox_count() == 0
        assert verify_central(url, workers=1).ok
        central.close()


def victim_is_writing(central: CentralStore, app: str) -> bool:
    with central.engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a "
                                      "AND backend_xid IS NOT NULL"), {"a": app}).scalar_one())


def victim_gone(central: CentralStore, app: str) -> bool:
    with central.engine.connect() as conn:
        return not conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                                {"a": app}).scalar_one()


def wait_until(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.pg
@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_kill_9_of_an_ingest_worker_mid_batch_rolls_back_and_another_finishes(tmp_path):
    with fresh_database("kiosk_killingest") as url:
        central = CentralStore.open(url, FakeClock(), central_key(tmp_path))
        pushed: dict[str, list] = {}
        for k in range(3):
            data = tmp_path / f"line-{k}"
            local = LocalStore.open(data, load_or_create_identity(data, f"line-{k}"), FakeClock())
            for i in range(0, 1500, 500):
                local.append_many([("step.signed", {"i": j, "value": "7.01"}) for j in range(i, i + 500)])
            pushed[local.chain] = [(r.chain, r.seq, r.hash, r.raw, r.sig) for r in local.iter_rows()]
            local.close()
            central.push(pushed[local.chain][:1])
        central.ingest_all()
        for chain, rows in pushed.items():
            central.decide_device(chain, "approved", ADMIN, "fingerprint compared")
            central.push(rows)
        total = sum(len(r) for r in pushed.values())
        stop_file = tmp_path / "stop"
        for kill in range(3):
            app = f"victim_{kill}_{uuid.uuid4().hex[:6]}"
            before = {c: central.ledger_count(c) for c in pushed}
            victim = subprocess.Popen([sys.executable, "-m", "tests.storage.ingest_child",
                                       f"{url}?application_name={app}", str(stop_file), "5000"],
                                      stdout=subprocess.PIPE, text=True, cwd=ROOT, env=child_env(tmp_path))
            assert victim.stdout.readline().strip() == "ready"
            wait_until(lambda: victim_is_writing(central, app))   # inside a batch, with rows already written
            victim.send_signal(signal.SIGKILL)
            victim.communicate()
            wait_until(lambda: victim_gone(central, app))
            after = {c: central.ledger_count(c) for c in pushed}
            # A batch (here a whole chain) is in the ledger entirely or not at all; the one being
            # written when the worker died rolled back, so its rows are still waiting in the inbox.
            assert all(after[c] in (before[c], len(pushed[c])) for c in pushed), (before, after)
            assert central.inbox_count() > 0
            assert sum(after.values()) + central.inbox_count() == total   # nothing lost, nothing doubled
            report = verify_central(url, workers=1)               # ledger = heads, contiguous, receipts match
            assert report.ok, [(c.chain, c.error) for c in report.chains if not c.ok]
        stop_file.touch()
        already = sum(central.ledger_count(c) for c in pushed)
        finisher = subprocess.Popen([sys.executable, "-m", "tests.storage.ingest_child", url, str(stop_file), "500"],
                                    stdout=subprocess.PIPE, text=True, cwd=ROOT, env=child_env(tmp_path))
        out, _ = finisher.communicate(timeout=300)
        totals = json.loads(out.splitlines()[-1])
        assert finisher.returncode == 0 and totals["quarantined"] == 0
        for chain, rows in pushed.items():
            assert ledger_rows(central, chain) == [(r[1], r[2]) for r in rows]
            receipt, _ = central.receipt(chain)
            assert (receipt.upto, receipt.hash) == (rows[-1][1], rows[-1][2].hex())
        assert totals["ingested"] == total - already   # each record exactly once across all workers
        assert central.quarantine() == [] and central.inbox_count() == 0
        assert verify_central(url, workers=2).ok
        central.close()
