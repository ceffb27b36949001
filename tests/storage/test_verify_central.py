"""`kiosk central verify`: a clean ledger verifies; direct SQL tampering is found and the record named.

Real PostgreSQL (a database per test) and real SQLite files. The tampering is
what someone with write access to the central database could do after
switching off the append-only triggers.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from sqlalchemy import text

from kiosk.domain.clock import UTC, FakeClock
from kiosk.domain.records import parse_raw, seal
from storage import verify_central as vc
from storage.central import CentralStore
from tests.storage.conftest import ADMIN, central_key
from storage.keyfile import load_or_create_identity
from storage.local_store import CheckpointPolicy, LocalStore
from storage.verify_central import verify_central
from tests.storage.pg_helpers import fresh_database

LONG = 700  # records appended on line-1 (plus genesis and checkpoints every 64)


@pytest.fixture(scope="module")
def kiosks(tmp_path_factory):
    """Two kiosks' chains, built once: (rows by chain, identities)."""
    clock = FakeClock(dt.datetime(2026, 11, 24, 10, 0, tzinfo=UTC), zone="Europe/Dublin")
    base = tmp_path_factory.mktemp("kiosks")
    rows, identities = {}, {}
    for name, n in (("line-1", LONG), ("line-2", 30)):
        identity = load_or_create_identity(base / name, name)
        store = LocalStore.open(base / name, identity, clock, checkpoints=CheckpointPolicy(every_records=64))
        for i in range(0, n, 50):
            clock.advance(1)
            store.append_many([("step.signed", {"i": j, "value": "7.01"}) for j in range(i, min(i + 50, n))])
        rows[store.chain] = [(r.chain, r.seq, r.hash, r.raw, r.sig) for r in store.iter_rows()]
        identities[store.chain] = identity
        store.close()
    return rows, identities


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger(request, tmp_path, kiosks):
    """A central store holding both chains, ingested and approved; yields its URL."""
    rows, _ = kiosks
    clock = FakeClock(dt.datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    if request.param == "postgresql":
        ctx = fresh_database("kiosk_verify")
        url = ctx.__enter__()
    else:
        ctx, url = None, f"sqlite:///{tmp_path / 'central.db'}"
    central = CentralStore.open(url, clock, central_key(tmp_path))
    for chain_rows in rows.values():
        central.push(chain_rows[:1])
    central.ingest_all()
    for chain in rows:
        central.decide_device(chain, "approved", ADMIN, "fingerprint compared")
    for chain_rows in rows.values():
        for i in range(1, len(chain_rows), 200):   # several receipts per chain, as kiosks syncing would get
            central.push(chain_rows[i:i + 200])
            central.ingest_all()
    central.close()
    yield url
    if ctx is not None:
        ctx.__exit__(None, None, None)


def tamper(url: str, *statements: tuple[str, dict]) -> None:
    """Run SQL as an attacker with the owner's rights: the append-only guards go first."""
    central = CentralStore(url, FakeClock())
    with central.engine.begin() as conn:
        if central.pg:
            conn.execute(text("ALTER TABLE ledger DISABLE TRIGGER ledger_append_only"))
            conn.execute(text("ALTER TABLE chain_heads DISABLE TRIGGER ALL"))
        else:
            conn.execute(text("DROP TRIGGER ledger_no_update"))
            conn.execute(text("DROP TRIGGER ledger_no_delete"))
        for sql, params in statements:
            conn.execute(text(sql), params)
    central.close()


def ledger_row(url: str, chain: str, seq: int):
    central = CentralStore(url, FakeClock())
    with central.engine.connect() as conn:
        row = conn.execute(text("SELECT raw, sig FROM ledger WHERE chain = :c AND seq = :s"),
                           {"c": chain, "s": seq}).first()
    central.close()
    return bytes(row[0]), bytes(row[1])


def only_failure(report):
    bad = [c for c in report.chains if not c.ok]
    assert len(bad) == 1, [(c.chain, c.error) for c in report.chains]
    # the other device and the central store's own chain still verify
    assert [c.chain for c in report.chains if c.ok] == ["central:1", "line-2:1"]
    return bad[0].error


@pytest.mark.req("P11-10a")
@pytest.mark.req("P11-10c")
def test_a_clean_ledger_verifies_per_device(ledger, kiosks):
    rows, _ = kiosks
    report = verify_central(ledger, workers=1)
    assert report.ok
    counts = {c.chain: c.records for c in report.chains}
    assert counts.pop("central:1") >= 3  # the central chain (genesis, approvals, publications) verifies too
    assert counts == {chain: len(r) for chain, r in rows.items()}
    assert report.chains[1].checkpoints >= 5  # checkpoints are Merkle-checked across the whole chain


@pytest.mark.req("P11-10a")
def test_long_chains_are_verified_in_parallel_segments(ledger, kiosks, monkeypatch):
    """Small segments force several worker processes per chain; stitching crosses checkpoints."""
    monkeypatch.setattr(vc, "SEGMENT", 97)
    report = verify_central(ledger, workers=2)
    central_records = next(c.records for c in report.chains if c.chain == "central:1")
    assert report.ok and report.records == sum(len(r) for r in kiosks[0].values()) + central_records
    raw, _ = ledger_row(ledger, "line-1:1", 500)
    tamper(ledger, ("UPDATE ledger SET raw = :r WHERE chain = 'line-1:1' AND seq = 500",
                    {"r": raw.replace(b'"7.01"', b'"7.91"')}))
    error = only_failure(verify_central(ledger, workers=2))
    assert error.where == "record line-1:1 #500" and error.reason == "bad signature"


@pytest.mark.req("P11-10e")
@pytest.mark.req("P11-10c")
def test_changed_bytes_are_found(ledger):
    raw, _ = ledger_row(ledger, "line-1:1", 321)
    tamper(ledger, ("UPDATE ledger SET raw = :r WHERE chain = 'line-1:1' AND seq = 321",
                    {"r": raw.replace(b'"7.01"', b'"7.91"')}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.where == "record line-1:1 #321" and error.reason == "bad signature"


@pytest.mark.req("P11-10c")
def test_a_deleted_row_is_found(ledger):
    tamper(ledger, ("DELETE FROM ledger WHERE chain = 'line-1:1' AND seq = 123", {}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.where == "record line-1:1 #124" and "seq 123 belongs" in error.detail
    assert "missing or deleted" in error.detail


@pytest.mark.req("P11-10c")
def test_two_rows_with_swapped_seq_are_found(ledger):
    tamper(ledger,
           ("UPDATE ledger SET seq = -1 WHERE chain = 'line-1:1' AND seq = 200", {}),
           ("UPDATE ledger SET seq = 200 WHERE chain = 'line-1:1' AND seq = 201", {}),
           ("UPDATE ledger SET seq = 201 WHERE chain = 'line-1:1' AND seq = -1", {}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.where == "record line-1:1 #200" and "claims seq 201" in error.detail


@pytest.mark.req("P11-10c")
def test_a_cut_tail_is_found_against_chain_heads(ledger, kiosks):
    last = len(kiosks[0]["line-1:1"])
    tamper(ledger, ("DELETE FROM ledger WHERE chain = 'line-1:1' AND seq > :s", {"s": last - 3}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.reason == "truncated" and error.where == f"record line-1:1 #{last}"
    assert f"ends at seq {last - 3}" in error.detail


@pytest.mark.req("P11-10c")
def test_a_cut_tail_with_a_rolled_back_head_is_found_by_the_receipts(ledger, kiosks):
    """The attacker also moves chain_heads back; the receipts already handed to the kiosk remember more."""
    rows = kiosks[0]["line-1:1"]
    keep = len(rows) - 5
    tamper(ledger,
           ("DELETE FROM ledger WHERE chain = 'line-1:1' AND seq > :s", {"s": keep}),
           ("UPDATE chain_heads SET seq = :s, hash = :h WHERE chain = 'line-1:1'",
            {"s": keep, "h": rows[keep - 1][2].hex()}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.reason == "truncated" and "receipt" in error.detail


@pytest.mark.req("P11-10h")
def test_a_replaced_device_key_in_chain_heads_is_found(ledger, kiosks):
    _, identities = kiosks
    other = identities["line-2:1"].key.public
    from kiosk.domain.keys import b64url

    tamper(ledger, ("UPDATE chain_heads SET public_key = :k, kid = :kid WHERE chain = 'line-1:1'",
                    {"k": b64url(other.raw), "kid": other.kid}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.where == "record line-1:1 #1" and error.reason == "unknown key"
    assert "not the key enrolled" in error.detail


@pytest.mark.req("P11-10h")
def test_a_key_that_does_not_match_its_kid_in_chain_heads_is_found(ledger, kiosks):
    from kiosk.domain.keys import b64url

    other = kiosks[1]["line-2:1"].key.public
    tamper(ledger, ("UPDATE chain_heads SET public_key = :k WHERE chain = 'line-1:1'", {"k": b64url(other.raw)}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.where == "record line-1:1 #1" and "chain_heads names key" in error.detail


@pytest.mark.req("P11-70")
@pytest.mark.req("P11-10h")
def test_a_record_re_signed_with_another_devices_key_is_found(ledger, kiosks):
    _, identities = kiosks
    raw, _ = ledger_row(ledger, "line-1:1", 77)
    record, _ = parse_raw(raw)
    forged = seal(identities["line-2:1"].key, chain=record.chain, seq=record.seq, prev=record.prev, type=record.type,
                  moment=record.time, zone=record.tz, body={**record.body, "value": "7.91"})
    tamper(ledger, ("UPDATE ledger SET raw = :r, sig = :g, hash = :h, id = :id, kid = :k "
                    "WHERE chain = 'line-1:1' AND seq = 77",
                    {"r": forged.raw, "g": forged.sig, "h": forged.hash, "id": forged.record.id,
                     "k": forged.record.kid}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.where == "record line-1:1 #77" and error.reason == "unknown key"
    assert identities["line-2:1"].key.kid in error.detail


@pytest.mark.req("P11-10e")
def test_a_changed_index_column_is_found(ledger):
    tamper(ledger, ("UPDATE ledger SET type = 'note.added' WHERE chain = 'line-1:1' AND seq = 42", {}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.where == "record line-1:1 #42" and "indexed columns" in error.detail


@pytest.mark.req("P11-10c")
def test_a_row_beyond_the_head_is_found(ledger, kiosks):
    """A ledger row that chain_heads does not account for (e.g. heads rolled back by one)."""
    rows = kiosks[0]["line-1:1"]
    tamper(ledger, ("UPDATE chain_heads SET seq = :s, hash = :h WHERE chain = 'line-1:1'",
                    {"s": len(rows) - 1, "h": rows[-2][2].hex()}))
    error = only_failure(verify_central(ledger, workers=1))
    assert error.where == f"record line-1:1 #{len(rows)}" and "beyond the chain head" in error.detail


@pytest.mark.req("P11-10a")
def test_cli_reports_per_device_and_exits_1_on_a_failure(tmp_path, kiosks):
    rows, _ = kiosks
    url = f"sqlite:///{tmp_path / 'c.db'}"
    central = CentralStore.open(url, FakeClock(), central_key(tmp_path))
    for chain_rows in rows.values():
        central.push(chain_rows[:1])
    central.ingest_all()
    for chain in rows:
        central.decide_device(chain, "approved", ADMIN, "fingerprint compared")
    for chain_rows in rows.values():
        central.push(chain_rows[1:])
    central.ingest_all()
    central.close()

    def kiosk(*args):
        return subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "verify", "--url", url, *args],
                              capture_output=True, text=True, timeout=120)

    ok = kiosk("--workers", "2")
    assert ok.returncode == 0, ok.stderr
    assert f"OK    line-1:1  approved  {len(rows['line-1:1'])} records" in ok.stdout
    assert "OK    line-2:1  approved  31 records" in ok.stdout
    assert "OK    central:1  central  " in ok.stdout and "in 3 chains verified (central and devices)" in ok.stdout
    tamper(url, ("DELETE FROM ledger WHERE chain = 'line-2:1' AND seq = 9", {}))
    bad = kiosk()
    assert bad.returncode == 1
    assert "FAIL  line-2:1" in bad.stdout and "record line-2:1 #10" in bad.stdout
    assert "FAILED: 1 of 3 chains do not verify" in bad.stdout  # line-1, line-2 and the central chain
    missing = subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "verify", "--url",
                              "postgresql+psycopg://u:secret@127.0.0.1:1/x"], capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "secret" not in missing.stdout + missing.stderr
