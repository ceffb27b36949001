"""A batch's steps are directory documents of their own (kiosk/domain/batches.py): stores written before that
are split when opened, terminals pull step documents, and a terminal never applies a directory format it
does not know. Real SQLite and PostgreSQL, FakeClock."""

import contextlib
import json
import sqlite3

import pytest
from sqlalchemy import text

from kiosk.app import build_kiosk, shipped_recipes
from kiosk.config import KioskConfig
from kiosk.services.auth import Actor
from storage.central import CentralStore
from tests.storage.conftest import ADMIN, central_key
from tests.storage.test_central_trust import (FAST, PASSWORD, admin_and_ana, admin_terminal, cycle,
                                             second_terminal, terminal, two_approved_terminals)


def signed_batch(kiosk, clock):
    """On a terminal where ana.op exists without TOTP: she performs line clearance on B-1, and on B-2, where she
    then corrects the value (so B-2's step holds a correction and an invalidated signature)."""
    for path in shipped_recipes():
        kiosk.signing.register_recipe_file(path, Actor("site.admin", "Site Admin", "admin").body(), "recipes")
    kiosk.auth.accept_first_use(kiosk.auth.user("ana.op"))
    assert kiosk.session.login("ana.op", PASSWORD, None).ok
    for bid in ("B-1", "B-2"):
        kiosk.signing.create_batch(bid, "buffer-prep@4")
        kiosk.signing.sign(kiosk.signing.prepare(bid, "line-clearance", "Performed", {"area_clear": "yes"}),
                           PASSWORD, "ana.op")
    kiosk.signing.correct("B-2", "line-clearance", {"area_clear": "no"}, "the area was not clear")
    kiosk.session.logout()


def documents(db, table):
    """Every document, decoded. Where each came from (chain and seq, or version) is not compared: the earlier
    format kept one origin per batch, which its step documents inherit."""
    return sorted((kind, key, json.loads(doc)) for kind, key, doc in db.execute(f"SELECT kind, key, doc FROM {table}"))


def merge_steps(db, table):
    """Put the store back the way a kiosk before step documents wrote it: each batch one document."""
    for (key, doc) in db.execute(f"SELECT key, doc FROM {table} WHERE kind = 'batch'").fetchall():
        steps = {k.rsplit("/", 1)[1]: json.loads(d) for k, d in db.execute(
            f"SELECT key, doc FROM {table} WHERE kind = 'batch_step' AND key LIKE ?", (f"{key}/%",))}
        db.execute(f"UPDATE {table} SET doc = ? WHERE kind = 'batch' AND key = ?",
                   (json.dumps({**json.loads(doc), "steps": steps}, separators=(",", ":")), key))
    db.execute(f"DELETE FROM {table} WHERE kind = 'batch_step'")


@pytest.mark.req("DI-ALCOA")
def test_a_kiosk_store_from_before_step_documents_is_split_when_opened(tmp_path, clock):
    a = build_kiosk(KioskConfig(), tmp_path / "line-a", clock, device_id="line-a", hasher=FAST)
    admin_and_ana(a, clock)
    signed_batch(a, clock)
    a.close()
    db_file = tmp_path / "line-a" / "kiosk.db"
    with contextlib.closing(sqlite3.connect(db_file, isolation_level=None)) as db:
        # A pulled central base too: here, a copy of the working directory.
        db.execute("INSERT INTO central_directory (kind, key, doc, version) SELECT kind, key, doc, seq FROM directory")
        before = documents(db, "directory"), documents(db, "central_directory")
        assert sum(1 for kind, _key, _doc in before[0] if kind == "batch_step") == 2
        merge_steps(db, "directory")
        merge_steps(db, "central_directory")
        db.execute("DROP INDEX directory_batch_newest")  # l0005's and l0006's, which an l0003 store has not
        db.execute("DROP INDEX directory_open_alerts")
        db.execute("ALTER TABLE pull_state DROP COLUMN publication_hash")  # l0007's
        db.execute("ALTER TABLE pull_state DROP COLUMN publication_ts")
        db.execute("UPDATE alembic_version SET version_num = 'l0003'")
    kiosk = build_kiosk(KioskConfig(), tmp_path / "line-a", clock, device_id="line-a", hasher=FAST)  # migrates
    try:
        with contextlib.closing(sqlite3.connect(db_file)) as db:
            assert (documents(db, "directory"), documents(db, "central_directory")) == before
        migrated = [r for r in kiosk.store.iter_rows() if r.type == "schema.migrated"]
        assert len(migrated) == 1  # in the trail (Annex 11 §10), from the version found to this software's
        body = json.loads(migrated[0].raw)["body"]
        with contextlib.closing(sqlite3.connect(db_file)) as db:
            (now,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        assert (body["from"], body["to"]) == ("l0003", now) and now != "l0003"
        assert kiosk.session.login("ana.op", PASSWORD, None).ok
        assert [s.status for s in kiosk.signing.steps("B-1")][:1] == ["in_progress"]
        assert [s.status for s in kiosk.signing.steps("B-2")][:1] == ["needs_resign"]
    finally:
        kiosk.close()


def two_lines_with_batches(central, tmp_path, clock):
    """Lines A and B, both approved; line A's signed_batch, synced to both."""
    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
    signed_batch(a, clock)
    cycle(central, sync_a, sync_b)
    return a, sync_a, b, sync_b


@pytest.mark.req("DI-ALCOA")
def test_step_documents_reach_another_terminal(central, tmp_path, clock):
    a, sync_a, b, sync_b = two_lines_with_batches(central, tmp_path, clock)
    shown = {s.step_id: [sig["name"] for sig in s.signatures] for s in b.signing.steps("B-1")}
    assert shown["line-clearance"] == ["Ana Ortiz"]
    for bid in ("B-1", "B-2"):
        assert b.signing.batch(bid) == a.signing.batch(bid)
    a.close(), b.close()


def test_a_central_store_from_before_step_documents_is_split_and_published(central, tmp_path, clock):
    a, sync_a = admin_terminal(tmp_path, clock, central)
    signed_batch(a, clock)
    cycle(central, sync_a)
    expected = a.signing.batch("B-2")
    # The central store as the version before step documents left it: the batch's latest document holds the steps.
    merged = dict(expected)
    with central.engine.begin() as conn:
        version = conn.execute(text("SELECT value FROM central_state WHERE name = 'directory_version'")).scalar_one()
        conn.execute(text("INSERT INTO directory_changes (version, kind, key, doc, chain, seq) "
                          "VALUES (:v, 'batch', 'B-2', :d, 'old', 1)"),
                     {"v": version + 1, "d": json.dumps(merged, separators=(",", ":"))})
        conn.execute(text("UPDATE central_state SET value = :v WHERE name = 'directory_version'"), {"v": version + 1})
        conn.execute(text("DROP TABLE alerts_raised"))  # c0006's, which a c0004 store has not
        conn.execute(text("DROP VIEW directory_rebase"))  # c0008's
        conn.execute(text("DELETE FROM central_state WHERE name = 'rebase_seq'"))
        conn.execute(text("UPDATE alembic_version SET version_num = 'c0004'"))
    reopened = CentralStore.open(central.url, clock, central_key(tmp_path), central_time=clock)  # migrates, publishes
    try:
        with reopened.engine.connect() as conn:
            migrated = [json.loads(bytes(raw))["body"] for (raw,) in conn.execute(text(
                "SELECT raw FROM ledger WHERE chain = 'central:1' AND type = 'schema.migrated'"))]
            now = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert [(m["from"], m["to"]) for m in migrated] == [("c0004", now)] and now != "c0004"
        assert "steps" not in reopened.directory_doc("batch", "B-2")
        for step_id, doc in expected["steps"].items():
            assert reopened.directory_doc("batch_step", f"B-2/{step_id}") == doc
        with reopened.engine.connect() as conn:
            last = conn.execute(text("SELECT max(seq) FROM directory_publications")).scalar_one()
            raw = conn.execute(text("SELECT raw FROM directory_publications WHERE seq = :s"), {"s": last}).scalar_one()
            now = conn.execute(text("SELECT value FROM central_state WHERE name = 'directory_version'")).scalar_one()
        published = json.loads(bytes(raw))["body"]
        assert published["to_version"] == now > version + 1 and published["directory_format"] == 2  # at once
        b, sync_b = terminal(tmp_path, clock, reopened, "line-b", site_of=a)
        cycle(reopened, sync_a, sync_b)
        reopened.decide_device(b.store.chain, "approved", ADMIN, "fingerprint compared on site")
        cycle(reopened, sync_a, sync_b)
        assert b.signing.batch("B-2") == expected
        b.close()
    finally:
        reopened.close()
        a.close()


def test_a_terminal_does_not_apply_a_directory_format_it_does_not_know(central, tmp_path, clock, monkeypatch):
    import storage.central

    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = second_terminal(tmp_path, clock, central, a, sync_a)
    monkeypatch.setattr(storage.central, "DIRECTORY_FORMAT", 1)  # an older central store's publications
    a.auth.authenticate("ana.op", "wrong password entirely", require_totp=False)  # a change to publish
    cycle(central, sync_a)
    central.decide_device(b.store.chain, "approved", ADMIN, "fingerprint compared on site")
    cycle(central, sync_a, sync_b)
    status = sync_b.sync_once()
    assert b.auth.user("ana.op") is None  # nothing pulled
    assert status.last_error == ("the central store publishes directory format 1, this terminal applies format 2: "
                                 "upgrade the central store (nothing was pulled)")
    assert status.offline_since is None and status.queued == 0  # its records went out and were receipted
    monkeypatch.setattr(storage.central, "DIRECTORY_FORMAT", 2)
    a.auth.authenticate("ana.op", "wrong password entirely", require_totp=False)  # a change to publish
    cycle(central, sync_a, sync_b)
    assert b.auth.user("ana.op") is not None and sync_b.sync_once().last_error is None
    a.close(), b.close()
