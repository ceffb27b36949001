"""`kiosk central ingest` as a running worker: woken by LISTEN/NOTIFY on PostgreSQL, polling on SQLite.

The fallback poll is set far longer than the wait in the PostgreSQL test, so
a record ingested in time can only have been woken by the notification. The
waits poll for the result with a generous timeout; nothing here times
performance.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from kiosk.domain.clock import FakeClock
from storage.central import CentralStore
from storage.ingest_loop import run_ingest_loop
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore
from tests.storage.conftest import ADMIN, central_key
from tests.storage.pg_helpers import fresh_database, libpq

ROOT = Path(__file__).resolve().parents[2]


def approved_kiosk(tmp_path, central, clock, name="line-1"):
    local = LocalStore.open(tmp_path / name, load_or_create_identity(tmp_path / name, name), clock)
    central.push([(r.chain, r.seq, r.hash, r.raw, r.sig) for r in local.iter_rows()])
    central.ingest_all()
    central.decide_device(local.chain, "approved", ADMIN, "fingerprint compared")
    central.ingest_all()
    return local


def start_worker(url: str, key: Path, poll_s: str) -> subprocess.Popen:
    worker = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "central", "ingest", "--url", url,
                               "--key-file", str(key), "--poll-s", poll_s], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "ingest worker running" in worker.stdout.readline()
    assert worker.stdout.readline().startswith("ingested 0")  # the first pass is done: it is listening now
    return worker


def wait_for(predicate, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def push_new(local, central, n: int) -> None:
    head = local.head().seq
    for i in range(n):
        local.append("step.signed", {"i": i})
    central.push([(r.chain, r.seq, r.hash, r.raw, r.sig) for r in local.iter_rows(after_seq=head)])


@pytest.mark.pg
@pytest.mark.req("A11-16")
def test_a_push_by_a_kiosk_login_wakes_the_postgresql_worker_at_once(tmp_path):
    clock = FakeClock()
    with fresh_database("kiosk_loop") as url:
        central = CentralStore.open(url, clock, central_key(tmp_path))
        local = approved_kiosk(tmp_path, central, clock)
        login = f"kiosk_t_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE kiosk_device")
        worker = start_worker(url, tmp_path / "central.key", poll_s="600")
        try:
            as_kiosk = CentralStore(url.replace("postgres@", f"{login}@"), clock)  # least privilege: INSERT only
            push_new(local, as_kiosk, 3)
            assert wait_for(lambda: central.ledger_count(local.chain) == local.head().seq), \
                "the pushed records were not ingested: the notification did not wake the worker"
            push_new(local, as_kiosk, 2)  # and again: the worker went back to listening
            assert wait_for(lambda: central.ledger_count(local.chain) == local.head().seq)
            as_kiosk.close()
        finally:
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
            with psycopg.connect(libpq(url), autocommit=True) as conn:
                conn.execute(f"DROP ROLE {login}")
        assert worker.returncode == 0, err
        assert "ingested 3" in out and "ingested 2" in out and out.rstrip().endswith("stopped")
        central.close()
        local.close()


@pytest.mark.req("A11-16")
def test_the_sqlite_worker_polls(tmp_path):
    clock = FakeClock()
    url = f"sqlite:///{tmp_path / 'central.db'}"
    central = CentralStore.open(url, clock, central_key(tmp_path))
    local = approved_kiosk(tmp_path, central, clock)
    worker = start_worker(url, tmp_path / "central.key", poll_s="0.2")
    try:
        push_new(local, central, 4)
        assert wait_for(lambda: central.ledger_count(local.chain) == local.head().seq)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "ingested 4" in out
    central.close()
    local.close()


def test_a_failed_pass_is_reported_and_retried_not_fatal():
    store = CentralStore("postgresql+psycopg://kiosk:secret-pw@127.0.0.1:1/none", FakeClock())
    events, stop = [], threading.Event()

    def seen(event):
        events.append(event)
        if len(events) >= 3:
            stop.set()

    runner = threading.Thread(target=run_ingest_loop, args=(store,), kwargs={"poll_s": 0.05, "stop": stop,
                                                                             "on_event": seen})
    runner.start()
    runner.join(30)
    assert not runner.is_alive() and len(events) >= 3
    assert all(e.error and e.error.startswith("OperationalError") for e in events)
    assert not any("secret-pw" in e.error for e in events)
    store.close()
