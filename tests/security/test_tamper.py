"""Tampering by direct SQL (P11-10e, A11-12): the local store and the central inbox.

The attacker has file access to a terminal (drops the append-only triggers first) or write access to
the central inbox table. Every edit is detected, by `kiosk verify` (exit 1, first bad record named) and
by ingest (quarantine reason names the record). Where a local check cannot see an edit (an attacker who
holds the device key and rewrites every anchor), the central store does, and the test says so.

Tampering with the central ledger itself is tested with `kiosk central verify` (tests/storage/test_verify_central.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid

import psycopg
import pytest
from sqlalchemy import text

from kiosk.domain import canonical
from kiosk.domain.clock import UTC, FakeClock
from kiosk.domain.keys import SigningKey, b64url
from kiosk.services.sync import ReceiptMismatch, SyncService
from storage.central import CentralStore
from storage.keyfile import load_identity
from storage.local_store import DB_FILE
from storage.verify_local import verify_local_store
from tests.signing_helpers import Operator
from tests.storage.conftest import ADMIN, central_key
from tests.storage.pg_helpers import fresh_database

CHAIN = "line-1:1"


# -- a terminal with real signatures, and another terminal's key --------------------------------

@pytest.fixture(scope="module")
def template(tmp_path_factory):
    base = tmp_path_factory.mktemp("tamper")
    clock = FakeClock(dt.datetime(2026, 11, 24, 10, 0, tzinfo=UTC), zone="Europe/Dublin")
    op = Operator(base / "line-1", clock, "line-1")
    for _ in range(6):
        op.sign_next()
    clock.advance(301)  # a checkpoint (Merkle root) in the chain: forgers must recompute it too
    op.kiosk.store.append_many([("note.added", {"n": n}) for n in range(20)])
    assert "checkpoint" in [r.type for r in op.kiosk.store.iter_rows()]
    op.close()
    other = Operator(base / "line-2", clock, "line-2")
    other.close()
    return base / "line-1", load_identity(base / "line-2").key


@pytest.fixture
def terminal(template, tmp_path):
    source, other_key = template
    data = tmp_path / "line-1"
    shutil.copytree(source, data)
    return data, other_key


def _db(data):
    """The attacker's connection: the append-only triggers are dropped first."""
    conn = sqlite3.connect(data / DB_FILE)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    return conn


def _rows(conn):
    return conn.execute("SELECT seq, raw, sig, type FROM records ORDER BY seq").fetchall()


def _first(conn, rtype):
    return next(r for r in _rows(conn) if r[3] == rtype)


def _put(conn, seq, raw, sig):
    conn.execute("UPDATE records SET raw = ?, sig = ?, hash = ? WHERE seq = ?",
                 (raw, sig, hashlib.sha256(raw).digest(), seq))


def _edit(raw: bytes, change) -> bytes:
    obj = json.loads(raw)
    change(obj)
    return canonical.encode(obj)


def _sign(key: SigningKey, raw: bytes) -> bytes:
    return key.sign_record_hash(hashlib.sha256(raw).digest())


def _verify(data):
    result = subprocess.run([sys.executable, "-m", "kiosk.cli", "verify", "--data-dir", str(data)],
                            capture_output=True, text=True, timeout=120)
    named = re.search(r"first bad record: record (\S+) #(\d+): ", result.stdout)
    return result, (named.group(1), int(named.group(2))) if named else None


# -- local store: kiosk verify --------------------------------------------------------------------

def change_value(conn, data, other):
    seq, raw, sig, _ = _first(conn, "step.signed")
    _put(conn, seq, raw.replace(b'"yes"', b'"no"'), sig)
    return seq, "bad signature"


def delete_row(conn, data, other):
    conn.execute("DELETE FROM records WHERE seq = 12")
    return 13, "claims seq 13 where seq 12 belongs; records are missing or deleted"


def reorder(conn, data, other):
    conn.execute("UPDATE records SET seq = 1000000 WHERE seq = 9")
    conn.execute("UPDATE records SET seq = 9 WHERE seq = 10")
    conn.execute("UPDATE records SET seq = 10 WHERE seq = 1000000")
    return 9, "claims seq 10 where seq 9 belongs"


def truncate_tail(conn, data, other):
    head = conn.execute("SELECT max(seq) FROM records").fetchone()[0]
    conn.execute("DELETE FROM records WHERE seq > ?", (head - 5,))
    return head, "the tail was removed"


def replace_key(conn, data, other):
    """A new key in the chain's first record (re-signed with it); the rest still carry the old key."""
    fresh = SigningKey.generate()
    seq, raw, _, _ = _rows(conn)[0]

    def swap(obj):
        obj["body"]["public_key"] = b64url(fresh.public.raw)
        obj["body"]["kid"] = obj["kid"] = fresh.kid
        obj["body"]["fingerprint"] = fresh.public.fingerprint

    new = _edit(raw, swap)
    _put(conn, seq, new, _sign(fresh, new))
    return 1, "not the key enrolled for this device"


def resign_whole_chain_with_a_new_key(conn, data, other):
    """The thorough forger: a new key, every record rewritten and re-signed, checkpoints, anchors and the
    head marker recomputed. Only the device key file (not replaced here) still tells."""
    fresh = SigningKey.generate()

    def new_key(obj):
        obj["kid"] = fresh.kid
        if obj["seq"] == 1:
            obj["body"].update(public_key=b64url(fresh.public.raw), kid=fresh.kid,
                               fingerprint=fresh.public.fingerprint)

    _reforge(conn, fresh, 1, new_key)
    return 1, "not the key enrolled for this device"


def resign_with_another_devices_key(conn, data, other):
    seq, raw, _, _ = _first(conn, "step.signed")
    new = _edit(raw, lambda obj: obj.update(kid=other.kid))
    _put(conn, seq, new, _sign(other, new))
    return seq, f"signed by key {other.kid}"


def _reforge(conn, key: SigningKey, start: int, change) -> None:
    """Rewrite every record from ``start`` on: ``change(obj)`` each, re-link, recompute checkpoint bodies,
    re-sign with ``key``; then make the anchors and the head marker agree, as a careful forger would."""
    from kiosk.domain.merkle import MerkleFrontier

    frontier = MerkleFrontier()
    prev = None
    for seq, raw, _, rtype in _rows(conn):
        if seq >= start:
            def forge(obj):
                change(obj)
                if prev is not None:
                    obj["prev"] = prev
                if rtype == "checkpoint":
                    obj["body"].update(size=frontier.size, root=frontier.root().hex())
            raw = _edit(raw, forge)
            _put(conn, seq, raw, _sign(key, raw))
        digest = hashlib.sha256(raw).digest()
        prev = digest.hex()
        frontier.add(digest)
        if rtype == "checkpoint":
            conn.execute("UPDATE anchors SET hash_hex = ? WHERE seq = ? AND source = 'checkpoint'", (prev, seq))
    conn.execute("DELETE FROM anchors WHERE source = 'receipt'")
    conn.execute("UPDATE chain_state SET head_hash = ?, frontier = ?", (prev, json.dumps(frontier.state())))


def relabel_type_column(conn, data, other):
    """The bytes stay, the column the audit view filters by lies: a signature hidden under 'note.added'."""
    seq, _, _, _ = _first(conn, "step.signed")
    conn.execute("UPDATE records SET type = 'note.added' WHERE seq = ?", (seq,))
    return seq, "indexed columns (type) differ from the record bytes"


LOCAL_EDITS = [change_value, delete_row, reorder, truncate_tail, replace_key, resign_whole_chain_with_a_new_key,
               resign_with_another_devices_key, relabel_type_column]


@pytest.mark.req("P11-10e")
@pytest.mark.req("P11-10a")
@pytest.mark.parametrize("edit", LOCAL_EDITS, ids=lambda f: f.__name__)
def test_kiosk_verify_detects_and_names_the_record(terminal, edit):
    data, other = terminal
    assert verify_local_store(data).ok
    conn = _db(data)
    seq, why = edit(conn, data, other)
    conn.commit()
    conn.close()
    result, named = _verify(data)
    assert result.returncode == 1, result.stdout
    assert named == (CHAIN, seq), result.stdout
    assert why in result.stdout


@pytest.mark.req("P11-10e")
def test_a_forger_holding_the_device_key_passes_local_verify_but_not_the_central_store(terminal, clock):
    """With the device key file itself (it is on the terminal), an attacker can re-sign a rewritten
    chain that verifies locally. The central ledger pinned the key and holds the original records:
    the kiosk's next sync raises the receipt alarm, and a re-push is quarantined as a fork."""
    data, _ = terminal
    url, drop = _pg_database()
    try:
        central = CentralStore.open(url, clock, central_key(data.parent), central_time=clock)
        _enroll_copy(data, central, clock)
        key = load_identity(data).key
        conn = _db(data)
        target = _first(conn, "step.signed")[0]

        def forge(obj):
            if obj["seq"] == target:
                obj["body"]["values"]["area_clear"] = "no"

        _reforge(conn, key, target, forge)
        conn.commit()
        conn.close()
        assert _verify(data)[0].returncode == 0  # locally consistent: the limit of a local check

        from kiosk.app import build_kiosk
        from kiosk.demo import demo_config
        from kiosk.domain.passwords import PasswordHasher
        from tests.signing_helpers import CHEAP

        kiosk = build_kiosk(demo_config(), data, clock, device_id="line-1", hasher=PasswordHasher(**CHEAP))
        with pytest.raises(ReceiptMismatch, match="receipt for #\\d+ names a different record"):
            SyncService(kiosk.store, lambda: central, clock).sync_once()
        # Pushed anyway (a patched kiosk): every rewritten record the ledger holds is a named fork.
        central.push([(r.chain, r.seq, r.hash, r.raw, r.sig) for r in kiosk.store.iter_rows(after_seq=target - 1)])
        central.ingest_all()
        reasons = [q["reason"] for q in central.quarantine()]
        assert reasons[0] == (f"fork: record {CHAIN} #{target}: a different record signed with this chain's key "
                              "is already in the ledger at this place")
        assert central.head(CHAIN)["status"] == "frozen"
        assert any(a["kind"] == "chain.frozen" and f"#{target}" in a["message"] for a in central.alerts())
        kiosk.close()
        central.close()
    finally:
        drop()


# -- central inbox: ingest --------------------------------------------------------------------------

def _pg_database():
    """A fresh database (its URL) and the function that drops it."""
    stack = contextlib.ExitStack()
    return stack.enter_context(fresh_database("kiosk_tamper")), stack.close


def _enroll_copy(data, central, clock):
    """Send the terminal's chain to the central store and approve it (the state before the attack)."""
    rows = _local_rows(data)
    central.push(rows)
    central.ingest_all()
    central.decide_device(CHAIN, "approved", ADMIN, "fingerprint compared on site")
    central.ingest_all()
    assert central.ledger_count(CHAIN) == len(rows)


def _local_rows(data, after=0):
    conn = sqlite3.connect(data / DB_FILE)
    try:
        return [(CHAIN, seq, bytes(h), bytes(raw), bytes(sig)) for seq, h, raw, sig in conn.execute(
            "SELECT seq, hash, raw, sig FROM records WHERE seq > ? ORDER BY seq", (after,))]
    finally:
        conn.close()


@pytest.fixture
def central_with_tail(terminal, clock):
    """The central store has the terminal's chain up to #20; the rest (#21..) waits in the inbox."""
    data, other = terminal
    url, drop = _pg_database()
    central = CentralStore.open(url, clock, central_key(data.parent), central_time=clock)
    rows = _local_rows(data)
    central.push(rows[:20])
    central.ingest_all()
    central.decide_device(CHAIN, "approved", ADMIN, "fingerprint compared on site")
    central.ingest_all()
    assert central.ledger_count(CHAIN) == 20
    central.push(rows[20:])
    yield central, rows, other
    central.close()
    drop()


def _inbox(central, sql, **params):
    with central.engine.begin() as conn:
        conn.execute(text(sql), params)


def inbox_change_value(central, rows, other):
    chain, seq, _, raw, sig = rows[24]
    forged = _edit(raw, lambda obj: obj["body"].update(tampered="yes"))
    _inbox(central, "UPDATE inbox SET raw = :r, hash = :h WHERE chain = :c AND seq = :s",
           r=forged, h=hashlib.sha256(forged).digest(), c=chain, s=seq)
    return seq, "bad signature"


def inbox_delete_row(central, rows, other):
    _inbox(central, "DELETE FROM inbox WHERE chain = :c AND seq = 23", c=CHAIN)
    return 24, "gap"


def inbox_reorder(central, rows, other):
    _inbox(central, "UPDATE inbox SET seq = -1 WHERE chain = :c AND seq = 22", c=CHAIN)
    _inbox(central, "UPDATE inbox SET seq = 22 WHERE chain = :c AND seq = 23", c=CHAIN)
    _inbox(central, "UPDATE inbox SET seq = 23 WHERE chain = :c AND seq = -1", c=CHAIN)
    return 22, "claims seq 23 where seq 22 belongs"


def inbox_replace_key(central, rows, other):
    """A second 'first record' for the chain, opening it with another key."""
    chain, seq, _, raw, _ = rows[0]
    fresh = SigningKey.generate()
    new = _edit(raw, lambda obj: (obj["body"].update(public_key=b64url(fresh.public.raw), kid=fresh.kid),
                                  obj.update(kid=fresh.kid)))
    central.push([(chain, 1, hashlib.sha256(new).digest(), new, _sign(fresh, new))])
    return 1, "unknown key"


def inbox_resign_with_another_devices_key(central, rows, other):
    chain, seq, _, raw, _ = rows[20]
    new = _edit(raw, lambda obj: obj.update(kid=other.kid))
    _inbox(central, "UPDATE inbox SET raw = :r, hash = :h, sig = :g WHERE chain = :c AND seq = :s",
           r=new, h=hashlib.sha256(new).digest(), g=_sign(other, new), c=chain, s=seq)
    return seq, f"signed by key {other.kid}"


def repush_changed_record(central, rows, other):
    """A record the ledger already holds, sent again with other content (the original signature)."""
    chain, seq, _, raw, sig = rows[5]
    forged = _edit(raw, lambda obj: obj["body"].update(tampered="yes"))
    central.push([(chain, seq, hashlib.sha256(forged).digest(), forged, sig)])
    return seq, "bad signature"


INBOX_EDITS = [inbox_change_value, inbox_delete_row, inbox_reorder, inbox_replace_key,
               inbox_resign_with_another_devices_key, repush_changed_record]


@pytest.mark.pg
@pytest.mark.req("P11-10e")
@pytest.mark.req("P11-300e")
@pytest.mark.parametrize("edit", INBOX_EDITS, ids=lambda f: f.__name__)
def test_ingest_quarantines_and_names_the_record(central_with_tail, edit):
    central, rows, other = central_with_tail
    seq, why = edit(central, rows, other)
    central.ingest_all()
    first = central.quarantine()[0]
    assert (first["chain"], first["seq"]) == (CHAIN, seq)
    assert f"record {CHAIN} #{seq}" in first["reason"] and why in first["reason"], first["reason"]
    assert any(f"{CHAIN} frozen at #{seq}" in a["message"] or f"{CHAIN} #{seq} rejected" in a["message"]
               for a in central.alerts())
    # Nothing that failed a check is in the ledger, and nothing was dropped: quarantined or still held.
    with central.engine.connect() as conn:
        ledger = {s: bytes(h) for s, h in conn.execute(text("SELECT seq, hash FROM ledger WHERE chain = :c"),
                                                       {"c": CHAIN})}
    assert all(ledger[s] == h for _, s, h, _, _ in rows if s in ledger)
    assert sorted(ledger) == list(range(1, len(ledger) + 1))


@pytest.mark.pg
@pytest.mark.req("A11-16")
def test_records_deleted_from_the_inbox_tail_are_sent_again(central_with_tail, terminal, clock):
    """Truncating the inbox loses nothing: the kiosk sends again whatever has no receipt."""
    central, rows, _ = central_with_tail
    data, _ = terminal
    _inbox(central, "DELETE FROM inbox WHERE chain = :c AND seq > 22", c=CHAIN)
    central.ingest_all()
    assert central.ledger_count(CHAIN) == 22
    from kiosk.app import build_kiosk
    from kiosk.demo import demo_config
    from kiosk.domain.passwords import PasswordHasher
    from tests.signing_helpers import CHEAP

    kiosk = build_kiosk(demo_config(), data, clock, device_id="line-1", hasher=PasswordHasher(**CHEAP))
    sync = SyncService(kiosk.store, lambda: central, clock)
    for _ in range(3):
        sync.sync_once()
        central.ingest_all()
    assert central.quarantine() == []
    assert central.ledger_count(CHAIN) == kiosk.store.head().seq == kiosk.store.head().synced_upto
    kiosk.close()


@pytest.mark.pg
@pytest.mark.req("P11-300e")
@pytest.mark.req("A11-12")
def test_another_terminals_login_cannot_freeze_a_chain_with_forged_rows(terminal, clock):
    """Every terminal's database login may append to the inbox, under any chain's name. Rows it
    forges for another terminal (garbage, a changed record, a far-ahead seq, a genuine record at the
    wrong place) are quarantined and alerted, and the other terminal's chain keeps going."""
    data, other = terminal
    url, drop = _pg_database()
    login = f"kiosk_t_{uuid.uuid4().hex[:8]}"
    admin = url.replace("postgresql+psycopg://", "postgresql://")
    central = CentralStore.open(url, clock, central_key(data.parent), central_time=clock)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE kiosk_device")
    try:
        rows = _local_rows(data)
        central.push(rows[:30])
        central.ingest_all()
        central.decide_device(CHAIN, "approved", ADMIN, "fingerprint compared on site")
        central.ingest_all()
        attacker = CentralStore(url.replace("postgres@", f"{login}@"), clock, central_time=clock)
        _, seq5, _, raw5, sig5 = rows[4]
        changed = _edit(raw5, lambda obj: obj["body"].update(tampered="yes"))
        garbage = [
            (CHAIN, 31, hashlib.sha256(b"junk").digest(), b"junk", b"\0" * 64),        # the next seq: garbage
            (CHAIN, 5, hashlib.sha256(changed).digest(), changed, sig5),               # a 'fork' it cannot sign
            (CHAIN, 9_000, hashlib.sha256(raw5).digest(), raw5, sig5),                 # far ahead: a genuine record
            (CHAIN, 32, hashlib.sha256(raw5).digest(), raw5, sig5),                    # ... at the wrong place
            (CHAIN, 31, rows[30][2], rows[30][3], _sign(other, rows[30][3])),         # the true #31, wrong key
        ]
        attacker.push(garbage)
        central.ingest_all()
        assert central.head(CHAIN)["status"] == "approved"
        assert len(central.quarantine()) == len(garbage)
        rejected = [a for a in central.alerts() if a["kind"] == "record.rejected"]
        # One alert for the batch, naming the chain and the count; every row is in quarantine with its reason.
        # The far-ahead row is outside the seq range one batch reads, so it came in the next batch (alert
        # quiet by then).
        assert len(rejected) == 1 and CHAIN in rejected[0]["message"]
        assert f"{len(garbage) - 2} more row(s) in this batch" in rejected[0]["message"]
        # A flood of forged rows does not bury the alert list (10 minutes of quiet per chain)...
        attacker.push([(CHAIN, 10_000 + i, hashlib.sha256(b"x%d" % i).digest(), b"x%d" % i, b"\0" * 64)
                       for i in range(1_500)])
        central.ingest_all()
        assert len(central.quarantine()) == len(garbage) + 1_500
        assert len([a for a in central.alerts() if a["kind"] == "record.rejected"]) == 1
        # ... and after the quiet period the next rejection is alerted again.
        clock.advance(601)
        attacker.push([(CHAIN, 20_000, hashlib.sha256(b"late").digest(), b"late", b"\0" * 64)])
        central.ingest_all()
        assert len([a for a in central.alerts() if a["kind"] == "record.rejected"]) == 2
        # The real terminal's records still arrive.
        central.push(rows[30:])
        central.ingest_all()
        assert central.ledger_count(CHAIN) == len(rows)
        attacker.close()
    finally:
        central.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"REASSIGN OWNED BY {login} TO postgres")
            conn.execute(f"DROP OWNED BY {login}")
            conn.execute(f"DROP ROLE {login}")
        drop()
