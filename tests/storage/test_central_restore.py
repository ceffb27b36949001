"""The central store restored from an older backup: terminals notice, keep their directory, and rebase (A11-7).

Its own chain's end is lost with the backup (publications, device decisions,
raised alerts), and the next publications reuse those numbers. A terminal that
followed publications by number alone would skip the new ones in silence and
later halt on a delta that does not fit, or apply it onto a directory that
store no longer has. It follows the publication it applied last, by hash: when
that is gone it keeps its directory (a suspension stays), sends its records
again, stops pulling with one critical alert, and takes the rebase the admin
publishes once the records are back. The restored store also numbers its
alert rows again: an acknowledgement sent again names the alert that was seen,
never another that took its number. Real SQLite (the backup API) and
PostgreSQL (pg_dump and pg_restore).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import text

from kiosk.domain.clock import format_ts
from kiosk.services.auth import Actor
from kiosk.ui_adapter import UiServices
from storage.central import CentralStore
from tests.storage.conftest import ADMIN, central_key
from tests.storage.pg_helpers import fresh_database
from tests.storage.test_central_trust import PASSWORD, cycle, terminal, two_approved_terminals
from tests.storage.test_outage import assert_ledger_is_the_local_chain


def _backup(central, tmp_path):
    """What the admin's nightly backup would hold now."""
    if central.pg:
        dump = tmp_path / "central.dump"
        done = subprocess.run(["pg_dump", "-Fc", "-f", str(dump), central.url.replace("postgresql+psycopg",
                                                                                      "postgresql")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return dump
    copy = tmp_path / "central-backup.db"
    with contextlib.closing(sqlite3.connect(central.url.removeprefix("sqlite:///"))) as src, \
            contextlib.closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)  # what `sqlite3 central.db ".backup ..."` does (docs/operations.md)
    return copy


def _restore(backup, stack, tmp_path, clock):
    """The database lost; the backup restored into a new one, opened with the same key."""
    if backup.suffix == ".dump":
        url = stack.enter_context(fresh_database("restored"))
        done = subprocess.run(["pg_restore", "--no-owner", "-d", url.replace("postgresql+psycopg", "postgresql"),
                               str(backup)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    else:
        shutil.copy(backup, tmp_path / "restored.db")
        url = f"sqlite:///{tmp_path / 'restored.db'}"
    store = CentralStore.open(url, clock, central_key(tmp_path), central_time=clock)
    stack.callback(store.close)
    return store


def _central_alert(store, message: str) -> None:
    """A central alert (as ingest raises one for a directory conflict), published to the terminals."""
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO alerts (kind, chain, message, at) VALUES ('directory.conflict', NULL, :m, "
                          "'2026-11-24T12:00:00.000000Z')"), {"m": message})
    store.publish_directory()


def _behind_alerts(kiosk) -> list[dict]:
    return alerts_of(kiosk, "sync.central_behind")


def alerts_of(kiosk, kind: str) -> list[dict]:
    return [a for a in kiosk.auth.alerts(open_only=False) if a["kind"] == kind]


@pytest.mark.req("A11-7")
@pytest.mark.req("P11-10d")
@pytest.mark.req("DI-ALCOA")
def test_terminals_keep_their_directory_after_a_central_restore_until_the_admin_rebases(central, tmp_path, clock):
    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
    # A rebase where nothing went back is one more snapshot, applied in its turn; it is in the backup, and
    # older than what the terminals apply later, so it never answers the restore below.
    central.rebase_directory(ADMIN, "an earlier restore drill")
    cycle(central, sync_a, sync_b)
    assert sync_a.status().last_error is None and sync_b.puller.state().publication_seq == \
        central.head(central.central_chain)["seq"]
    clock.advance(60)
    backup = _backup(central, tmp_path)
    # After the backup: a central alert raised and acknowledged on line-a, ana suspended on line-a (a terminal
    # record), line-c approved centrally (a central one).
    _central_alert(central, "conflict A, after the backup")
    cycle(central, sync_a, sync_b)
    seen = next(x for x in a.auth.alerts() if x["message"] == "conflict A, after the backup")
    a.auth.acknowledge_alert(Actor("site.admin", "Site Admin", "admin"), seen["alert_id"], "looked at it")
    cycle(central, sync_a, sync_b)
    assert central.directory_doc("alert", seen["alert_id"])["acknowledged_by"] == "site.admin"
    for _ in range(5):
        a.auth.authenticate("ana.op", "wrong password entirely", require_totp=False)
        clock.advance(600)
    c, sync_c = terminal(tmp_path, clock, central, "line-c", site_of=a)
    cycle(central, sync_a, sync_b, sync_c)
    central.decide_device(c.store.chain, "approved", ADMIN, "fingerprint compared on site")
    cycle(central, sync_a, sync_b, sync_c)
    assert b.auth.user("ana.op").status == "suspended" and c.auth.user("ana.op").status == "suspended"
    # The three approvals acknowledged together: two are in the backup, line-c's is not.
    assert a.auth.acknowledge_alike(Actor("site.admin", "Site Admin", "admin"), "device.approved",
                                    format_ts(clock.now()), "new terminals reviewed") == 3
    cycle(central, sync_a, sync_b, sync_c)
    pairs = [(a, sync_a), (b, sync_b), (c, sync_c)]
    syncs = [sync_a, sync_b, sync_c]

    with contextlib.ExitStack() as stack:
        restored = _restore(backup, stack, tmp_path, clock)
        # Another alert, raised before the terminals are back, takes the lost one's row: the acknowledgement
        # sent again names the alert that was seen, never this one.
        _central_alert(restored, "conflict B, after the restore")
        for sync in syncs:
            sync.connect = lambda r=restored: r
        cycle(restored, *syncs)
        # line-c was approved after the backup: pending again, its records held, until approved again.
        assert restored.head(c.store.chain)["status"] == "pending" and sync_c.status().queued > 0
        restored.decide_device(c.store.chain, "approved", ADMIN, "approved again after the central restore")
        cycle(restored, *syncs)
        for k, sync in pairs:
            status = sync.status()
            # Online and sending: every record is back centrally ...
            assert status.offline_since is None and status.queued == 0
            assert_ledger_is_the_local_chain(restored, k.store)
            # ... but not pulling, and saying why, once.
            assert "no longer holds directory publication" in status.last_error
            assert "kiosk central rebase" in status.last_error
            assert UiServices(k, sync.status, central_configured=True).status().sync.not_pulling  # the status bar
            assert [x["severity"] for x in _behind_alerts(k)] == ["critical"]
            # What it held stays: the suspension.
            assert k.auth.user("ana.op").status == "suspended"
            assert not k.auth.authenticate("ana.op", PASSWORD, require_totp=False).ok

        # IT at the server sees each terminal's alert: it came in with the records.
        behind = [x["device"] for x in restored.open_alerts(100, "critical")[0] if x["kind"] == "sync.central_behind"]
        assert sorted(behind) == sorted(k.store.chain for k, _ in pairs)

        # `kiosk sync now` at a terminal says the same, and fails.
        now = subprocess.run([sys.executable, "-m", "kiosk.cli", "sync", "now", "--url", restored.url, "--data-dir",
                              str(b.data_dir)], capture_output=True, text=True, timeout=120)
        assert now.returncode == 1 and re.match(r"sent; \d+ queued; directory not updated: the central store no "
                                                r"longer holds directory publication #\d+", now.stdout)
        # A document of the lost end that the restored store never makes again (here: planted).
        lost = {"alert_id": "central:1/alert-9999", "kind": "device.pending", "severity": "warning",
                "message": "from the lost end", "at": "2026-11-24T10:00:00.000000Z", "acknowledged_by": None}
        with a.store.side_transaction(rewrites_directory=True) as db:
            db.execute("INSERT INTO central_directory (kind, key, doc, version) VALUES ('alert', ?, ?, 9999)",
                       (lost["alert_id"], json.dumps(lost)))
            db.execute("INSERT INTO directory (kind, key, doc, chain, seq) VALUES ('alert', ?, ?, 'central', 9999)",
                       (lost["alert_id"], json.dumps(lost)))
        assert a.directory.get("alert", lost["alert_id"]) is not None

        # The admin rebases from the command line, as an admin of the central directory.
        key_file = tmp_path / "central.key"
        done = subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "rebase", "--url", restored.url,
                               "--key-file", str(key_file), "--admin", "site.admin", "--site-key",
                               str(a.data_dir / "site.key"), "--reason", "restored from the nightly backup"],
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "directory rebased: publication #" in done.stdout and PASSWORD not in done.stdout + done.stderr
        cycle(restored, *syncs)
        newest = restored.head(restored.central_chain)["seq"]
        for k, sync in pairs:
            assert sync.status().last_error is None and sync.puller.state().publication_seq == newest
            assert not UiServices(k, sync.status, central_configured=True).status().sync.not_pulling
            assert k.auth.user("ana.op").status == "suspended"  # derived again from line-a's record
            assert k.directory.get("device", c.store.chain)["status"] == "approved"
        assert a.directory.get("alert", lost["alert_id"]) is None  # the rebase replaces the whole base
        # The acknowledgement of the three, sent again, stands for the two the store holds (the alert for
        # line-c's approval made again is new: nobody has seen it).
        approvals = sorted((x["target"]["id"], x["acknowledged_by"] or "") for x in alerts_of(a, "device.approved"))
        assert approvals == [(a.store.chain, "site.admin"), (b.store.chain, "site.admin"), (c.store.chain, "")]
        # Pulling goes on as usual after it: a change made now reaches every terminal.
        a.auth.create_user(Actor("site.admin", "Site Admin", "admin"), "bo.op", "Bo Berg", ["operator"],
                           reason="new starter", identity_verified=True, with_totp=False)
        cycle(restored, *syncs)
        assert all(k.auth.user("bo.op") is not None for k, _ in pairs)
        # Each terminal's alert has reached the others' supervisor screens; none was raised again.
        chains = sorted(k.store.chain for k, _ in pairs)
        assert all(sorted(x["device"] for x in _behind_alerts(k)) == chains for k, _ in pairs)
        # The acknowledgement sent again is kept, and shown centrally as naming an alert this store lost.
        assert any(x["kind"] == "directory.conflict" and seen["alert_id"] in x["message"] for x in restored.alerts())
        unseen = [x for x in a.auth.alerts(open_only=False) if x["message"].startswith("conflict")]
        assert [x["message"] for x in unseen] == ["conflict B, after the restore"]
        assert unseen[0]["acknowledged_by"] is None and unseen[0]["alert_id"] != seen["alert_id"]
    for k, _ in pairs:
        k.close()
