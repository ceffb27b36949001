import multiprocessing
import os
import sqlite3

import pytest
from sqlalchemy import create_engine, text

from kiosk.domain.clock import FakeClock
from storage.keyfile import KeyFileError, load_identity, load_or_create_identity
from storage.local_store import LocalStore
from storage.migrate import SchemaTooNew
from storage.verify_local import verify_local_store


@pytest.mark.req("P11-10c")
def test_chain_starts_with_its_key_and_is_gapless(store, data_dir, clock):
    for i in range(10):
        store.append("step.signed", {"i": i})
    rows = list(store.iter_rows())
    assert [r.seq for r in rows] == list(range(1, 12))
    assert rows[0].type == "device.chain_opened"
    report = verify_local_store(data_dir)
    assert report.ok and report.records == 11


@pytest.mark.req("P11-10e")
@pytest.mark.parametrize("sql", [
    "UPDATE records SET ts = 'x' WHERE seq = 2",
    "DELETE FROM records WHERE seq = 2",
    "UPDATE anchors SET hash_hex = 'x'",
    "DELETE FROM anchors",
    "DELETE FROM chain_state",
    "UPDATE chain_state SET head_seq = 1",
    "UPDATE chain_state SET synced_upto = 0",
])
def test_tables_are_append_only(store, data_dir, clock, sql):
    for i in range(300):
        store.append("step.signed", {"i": i})
    store.mark_synced(5, "00" * 32)
    conn = sqlite3.connect(data_dir / "kiosk.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only|only moves forward"):
        conn.execute(sql)
    conn.close()


@pytest.mark.req("P11-10c")
def test_checkpoints_every_256_records_and_every_5_minutes(store, data_dir, clock):
    for i in range(600):
        store.append("step.signed", {"i": i})
    types = [r.type for r in store.iter_rows()]
    assert [i + 1 for i, t in enumerate(types) if t == "checkpoint"] == [257, 514]
    clock.advance(301)
    store.append("step.signed", {"i": "late"})
    assert list(store.iter_rows())[-1].type == "checkpoint"
    assert verify_local_store(data_dir).chains[0].checkpoints == 3


def _racer(data_dir, n):
    identity = load_identity(data_dir)
    s = LocalStore.open(data_dir, identity, FakeClock())
    for i in range(n):
        s.append("step.signed", {"pid": os.getpid(), "i": i})
    s.close()


@pytest.mark.req("P11-10c")
def test_two_processes_appending_never_fork_the_chain(store, data_dir):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_racer, args=(data_dir, 150)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    report = verify_local_store(data_dir)
    assert report.ok, report.error
    data = [r for r in store.iter_rows() if r.type == "step.signed"]
    assert len(data) == 300
    assert store.head().seq == 1 + 300 + 1  # genesis, records, one checkpoint at 256


@pytest.mark.req("A11-12")
def test_key_file_is_0600_and_a_readable_one_is_refused(data_dir):
    identity = load_or_create_identity(data_dir, "dev-1")
    key_path = data_dir / "device.key"
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    assert load_identity(data_dir).key.kid == identity.key.kid
    os.chmod(key_path, 0o644)
    with pytest.raises(KeyFileError, match=r"chmod 600"):
        load_identity(data_dir)


def test_a_corrupt_key_file_stops_with_a_clear_message(data_dir):
    load_or_create_identity(data_dir, "dev-1")
    key_path = data_dir / "device.key"
    os.chmod(key_path, 0o600)
    key_path.write_bytes(b"not a key")
    with pytest.raises(KeyFileError, match="PEM private key"):
        load_identity(data_dir)


def test_store_from_a_newer_schema_is_refused(store, data_dir, clock):
    store.close()
    engine = create_engine(f"sqlite:///{data_dir / 'kiosk.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'l9999'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="newer than this kiosk knows"):
        LocalStore.open(data_dir, load_identity(data_dir), clock)


@pytest.mark.req("DI-ALCOA")
def test_clock_going_backwards_is_recorded_before_the_next_record(store, data_dir, clock):
    import datetime as dt

    store.append("step.signed", {"i": 1})
    assert not store.clock_suspect()
    clock.set(clock.now() - dt.timedelta(minutes=10))
    assert store.clock_suspect()
    store.append("step.signed", {"i": 2})
    rows = list(store.iter_rows())
    assert [r.type for r in rows[-3:]] == ["step.signed", "clock.observed", "step.signed"]
    from kiosk.domain.records import parse_raw
    body = parse_raw(rows[-2].raw)[0].body
    assert body["kind"] == "backwards" and body["offset_s"].startswith("-600")
    assert rows[-1].ts < rows[-3].ts  # the record keeps the kiosk's own (wrong) time: evidence, not correction
    clock.advance(601)
    assert not store.clock_suspect()
    assert verify_local_store(data_dir).ok
