"""Any single change to a stored chain — a byte, a deletion, a swap, an insertion — is caught."""

import shutil
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kiosk.domain.clock import FakeClock
from storage.keyfile import load_or_create_identity
from storage.local_store import CheckpointPolicy, LocalStore
from storage.verify_local import verify_local_store

N = 40  # records incl. genesis and the checkpoints every 16


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    data = tmp_path_factory.mktemp("tpl") / "data"
    clock = FakeClock()
    store = LocalStore.open(data, load_or_create_identity(data, "dev-1"), clock,
                            checkpoints=CheckpointPolicy(every_records=16, every_s=3600))
    while store.head().seq < N:
        clock.advance(1)
        store.append("step.signed", {"value": "7.01", "unit": "pH", "n": store.head().seq})
    store.close()
    assert verify_local_store(data).ok
    return data


def _copy(template, tmp_path):
    target = tmp_path / "data"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(template, target)
    conn = sqlite3.connect(target / "kiosk.db")
    for trigger in ("records_no_update", "records_no_delete"):
        conn.execute(f"DROP TRIGGER {trigger}")
    return target, conn


mutations = st.one_of(
    st.tuples(st.just("byte"), st.integers(1, N), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("sig"), st.integers(1, N), st.integers(0, 63), st.integers(1, 255)),
    st.tuples(st.just("delete"), st.integers(1, N)),
    st.tuples(st.just("swap"), st.integers(1, N), st.integers(1, N)).filter(lambda m: m[1] != m[2]),
    st.tuples(st.just("insert"), st.integers(1, N), st.integers(1, N + 1)),
)


def apply(conn, mutation):
    kind = mutation[0]
    if kind in ("byte", "sig"):
        _, seq, pos, delta = mutation
        col = "raw" if kind == "byte" else "sig"
        (blob,) = conn.execute(f"SELECT {col} FROM records WHERE seq = ?", (seq,)).fetchone()
        blob = bytearray(blob)
        pos %= len(blob)
        blob[pos] = (blob[pos] + delta) % 256
        conn.execute(f"UPDATE records SET {col} = ? WHERE seq = ?", (bytes(blob), seq))
    elif kind == "delete":
        conn.execute("DELETE FROM records WHERE seq = ?", (mutation[1],))
    elif kind == "swap":
        _, a, b = mutation
        conn.execute("UPDATE records SET seq = 1000000 WHERE seq = ?", (a,))
        conn.execute("UPDATE records SET seq = ? WHERE seq = ?", (a, b))
        conn.execute("UPDATE records SET seq = ? WHERE seq = 1000000", (b,))
    elif kind == "insert":
        _, source, at = mutation
        row = conn.execute("SELECT chain, raw, sig, hash, type, ts FROM records WHERE seq = ?", (source,)).fetchone()
        conn.execute("UPDATE records SET seq = seq + 1000000 WHERE seq >= ?", (at,))
        conn.execute("UPDATE records SET seq = seq - 1000000 + 1 WHERE seq >= 1000000")
        conn.execute(
            "INSERT INTO records (chain, seq, raw, sig, hash, id, type, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row[0], at, row[1], row[2], row[3], f"dup-{source}-{at}", row[4], row[5]),
        )
    conn.commit()
    conn.close()


@pytest.mark.req("P11-10e")
@pytest.mark.req("P11-10a")
@given(mutations)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_single_tamper_is_detected_and_named(template, tmp_path, mutation):
    target, conn = _copy(template, tmp_path)
    apply(conn, mutation)
    report = verify_local_store(target)
    assert not report.ok, mutation
    assert report.error.where.startswith("record dev-1:1 #")


@pytest.mark.req("P11-10a")
@pytest.mark.parametrize("mutation", [("byte", 23, 40, 3), ("delete", 17), ("swap", 9, 30), ("insert", 5, 33),
                                      ("sig", 40, 1, 1), ("delete", 40)])
def test_parallel_verify_names_the_same_first_bad_record(template, tmp_path, monkeypatch, mutation):
    """Segments verified in several processes and stitched give the sequential answer."""
    import storage.verify_local as vl

    target, conn = _copy(template, tmp_path)
    apply(conn, mutation)
    sequential = verify_local_store(target, workers=1)
    monkeypatch.setattr(vl, "SEGMENT", 7)
    monkeypatch.setattr(vl, "PARALLEL_FROM", 10)
    parallel = verify_local_store(target, workers=2)
    assert not sequential.ok and not parallel.ok
    assert (type(parallel.error), parallel.error.where) == (type(sequential.error), sequential.error.where)


def test_parallel_verify_of_an_intact_chain_matches(template, monkeypatch):
    import storage.verify_local as vl

    sequential = verify_local_store(template, workers=1)
    monkeypatch.setattr(vl, "SEGMENT", 7)
    monkeypatch.setattr(vl, "PARALLEL_FROM", 10)
    parallel = verify_local_store(template, workers=2)
    assert parallel.ok and parallel.chains == sequential.chains
