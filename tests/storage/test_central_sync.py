"""Central store and sync against real databases: PostgreSQL (KIOSK_TEST_PG_URL) and SQLite."""

import uuid

import psycopg
import pytest

from tests.storage.conftest import ADMIN, central_key, enroll

from kiosk.domain.central import Receipt
from kiosk.services.sync import ReceiptMismatch, SyncService
from storage.central import CentralStore
from storage.keyfile import load_identity, load_or_create_identity
from storage.local_store import LocalStore

def kiosk_store(tmp_path, clock, name="line-1"):
    data = tmp_path / name
    return LocalStore.open(data, load_or_create_identity(data, name), clock)


@pytest.mark.req("P11-10c")
@pytest.mark.req("P11-10h")
@pytest.mark.req("A11-16")
def test_push_ingest_receipt_round_trip_with_approval(central, tmp_path, clock):
    local = kiosk_store(tmp_path, clock)
    for i in range(40):
        clock.advance(1)
        local.append("step.signed", {"i": i})
    sync = SyncService(local, lambda: central, clock, batch_size=7)
    sync.sync_once()
    report = central.ingest_all()
    assert report.held >= 1 and central.ledger_count(local.chain) == 0   # pending: held, not lost
    assert central.devices()[0]["status"] == "pending"
    central.decide_device(local.chain, "approved", ADMIN, "fingerprint compared on site")
    assert central.ingest_all().ingested == 41  # genesis and 40 records
    status = sync.sync_once()
    assert local.head().synced_upto == 41 and status.last_error is None
    assert status.queued == 1  # the "approved" observation, sent now and receipted after the next ingest
    central.ingest_all()
    assert sync.sync_once().queued == 0
    assert [r for r in local.iter_rows()][-1].seq == 42  # nothing deleted locally
    local.close()


@pytest.mark.req("A11-16")
def test_replays_are_acknowledged_once(central, tmp_path, clock):
    local = kiosk_store(tmp_path, clock)
    for i in range(10):
        local.append("step.signed", {"i": i})
    sync = SyncService(local, lambda: central, clock)
    sync.sync_once()
    enroll(central, local)
    rows = [(r.chain, r.seq, r.hash, r.raw, r.sig) for r in local.iter_rows()]
    central.push(rows)          # the same records again (a retry after a lost answer)
    report = central.ingest_all()
    assert central.ledger_count(local.chain) == 11 and report.ingested == 0 and central.inbox_count() == 0
    local.close()


@pytest.mark.req("P11-10c")
@pytest.mark.req("P11-300e")
def test_a_fork_quarantines_and_freezes_the_chain(central, tmp_path, clock):
    local = kiosk_store(tmp_path, clock)
    local.append("step.signed", {"i": 0})
    sync = SyncService(local, lambda: central, clock)
    sync.sync_once()
    enroll(central, local)
    # A cloned key elsewhere writes a different record #3 on the same chain.
    clone_dir = tmp_path / "clone"
    import shutil
    shutil.copytree(tmp_path / "line-1", clone_dir)
    clone = LocalStore.open(clone_dir, load_identity(clone_dir), clock)
    clone.append("step.signed", {"i": "forged"})
    local.append("step.signed", {"i": 1})
    SyncService(clone, lambda: central, clock).sync_once()
    sync.sync_once()
    central.ingest_all()
    assert central.head(local.chain)["status"] == "frozen"
    reasons = [q["reason"] for q in central.quarantine()]
    assert any("fork" in r for r in reasons)
    assert any(a["kind"] == "chain.frozen" for a in central.alerts())
    # The investigator lists what was quarantined, each row with its reason.
    import subprocess
    import sys

    def quarantined(*args):
        done = subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "quarantine", "--url", central.url,
                               *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    lines = quarantined("--chain", local.chain)
    assert lines[0].endswith(f"  {local.chain} #3  fork: record {local.chain} #3: a different record signed with "
                             "this chain's key is already in the ledger at this place")
    assert lines[1].endswith(f"  {local.chain} #4  chain is frozen")
    assert lines[-1] == f"{len(central.quarantine())} quarantined rows"
    assert quarantined("--chain", "line-7:1") == ["no quarantined rows"]
    [row] = central.chain_status()  # what `kiosk central status` shows IT
    assert (row["chain"], row["status"], row["quarantined"]) == (local.chain, "frozen", len(central.quarantine()))
    local.close()
    clone.close()


@pytest.mark.req("P11-10h")
@pytest.mark.req("P11-300e")
def test_records_after_revocation_are_quarantined_not_dropped(central, tmp_path, clock):
    local = kiosk_store(tmp_path, clock)
    sync = SyncService(local, lambda: central, clock)
    sync.sync_once()
    enroll(central, local)
    central.decide_device(local.chain, "revoked", ADMIN, "terminal stolen")
    for i in range(3):
        local.append("step.signed", {"i": i})
    sync.sync_once()
    central.ingest_all()
    assert central.ledger_count(local.chain) == 1
    # the three records and the kiosk's own note that it saw the revocation: kept, never dropped
    assert [q["reason"] for q in central.quarantine()] == ["after revocation"] * 4
    local.close()


@pytest.mark.req("P11-10e")
def test_a_tampered_record_is_quarantined_with_its_reason(central, tmp_path, clock):
    local = kiosk_store(tmp_path, clock)
    local.append("step.signed", {"i": 1})
    SyncService(local, lambda: central, clock).sync_once()
    enroll(central, local)
    local.append("step.signed", {"value": "7.01"})
    row = list(local.iter_rows())[-1]
    forged = row.raw.replace(b"7.01", b"7.91")
    import hashlib
    central.push([(row.chain, row.seq, hashlib.sha256(forged).digest(), forged, row.sig)])
    central.ingest_all()
    assert "bad signature" in central.quarantine()[0]["reason"]
    # Not signed by the chain's key: anyone with inbox access could have written it, so it is rejected
    # and alerted, but it does not freeze the chain; the genuine record still goes through.
    assert central.head(local.chain)["status"] == "approved"
    assert any(a["kind"] == "record.rejected" for a in central.alerts())
    SyncService(local, lambda: central, clock).sync_once()
    central.ingest_all()
    assert central.ledger_count(local.chain) == local.head().seq
    local.close()


@pytest.mark.req("A11-16")
def test_central_down_then_back_loses_and_duplicates_nothing(central, tmp_path, clock):
    local = kiosk_store(tmp_path, clock)
    down = SyncService(local, lambda: CentralStore("postgresql+psycopg://postgres@127.0.0.1:1/none", clock), clock,
                       interval_s=30)
    for i in range(300):
        local.append("step.signed", {"i": i})
        if i % 100 == 0:
            status = down.sync_once()
            assert status.offline_since is not None and status.last_error.startswith("OperationalError")
    assert down.status().failures == 3 and down.status().next_attempt > clock.now()
    up = SyncService(local, lambda: central, clock, batch_size=64)
    up.sync_once()
    enroll(central, local)
    for _ in range(2):  # the sync after approval also records that the terminal is now approved
        up.sync_once()
        central.ingest_all()
    up.sync_once()
    assert central.ledger_count(local.chain) == local.head().seq == local.head().synced_upto
    local.close()


def test_a_receipt_naming_another_record_is_an_alarm_not_a_sync(central, tmp_path, clock):
    local = kiosk_store(tmp_path, clock)
    sync = SyncService(local, lambda: central, clock)
    sync.sync_once()
    enroll(central, local)
    key = central.key

    class Liar:
        def push(self, rows):
            return len(rows)

        def receipt(self, chain):
            receipt = Receipt(chain, 1, "00" * 32, "2026-11-24T10:00:00.000000Z", key.kid)
            return receipt, key.sign_statement(receipt.statement())  # signed by the real key, yet wrong

        def device_status(self, chain):
            return None

        def central_key(self):
            return key.public

        def now(self):
            return clock.now()

    with pytest.raises(ReceiptMismatch):
        SyncService(local, lambda: Liar(), clock).sync_once()
    assert local.head().synced_upto == 0  # never marked on a receipt that disagrees
    assert local.clock_suspect() is False and list(local.iter_rows())[-1].type == "alert.raised"
    local.close()


@pytest.mark.req("P11-10c")
def test_cli_round_trip_on_sqlite(tmp_path, clock):
    import subprocess
    import sys

    def kiosk(*args):
        return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True, timeout=120)

    local = kiosk_store(tmp_path, clock)
    local.append("step.signed", {"i": 1})
    local.close()
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert kiosk("central", "init", "--url", url).returncode == 0
    assert kiosk("sync", "now", "--url", url, "--data-dir", str(tmp_path / "line-1")).returncode == 0
    # genesis, the step, the central key pin, and a checkpoint (the real clock is a day past the fake one)
    assert "held 4" in kiosk("central", "ingest", "--once", "--url", url).stdout
    assert "pending" in kiosk("admin", "devices", "list", "--url", url).stdout
    r = kiosk("admin", "devices", "approve", "line-1:1", "--url", url, "--as-key-holder", "--reason",
              "compared")
    assert r.returncode == 0, r.stderr
    assert "ingested 4" in kiosk("central", "ingest", "--once", "--url", url).stdout
    kiosk("sync", "now", "--url", url, "--data-dir", str(tmp_path / "line-1"))
    kiosk("central", "ingest", "--once", "--url", url)
    kiosk("sync", "now", "--url", url, "--data-dir", str(tmp_path / "line-1"))
    import re
    out = kiosk("sync", "status", "--url", url, "--data-dir", str(tmp_path / "line-1")).stdout
    assert re.search(r"0 queued, synced up to #(\d+) of #\1$", out, re.M), out
    assert "last successful sync: 20" in out and "offline since" not in out
    bad = kiosk("sync", "now", "--url", "postgresql+psycopg://u:secret@127.0.0.1:1/x", "--data-dir",
                str(tmp_path / "line-1"))
    assert bad.returncode == 1 and "secret" not in bad.stdout + bad.stderr
    # The outcome outlives the process: another `kiosk sync status` knows since when this terminal is offline.
    out = kiosk("sync", "status", "--url", url, "--data-dir", str(tmp_path / "line-1")).stdout
    assert "offline since: 20" in out and "last error: OperationalError" in out and "secret" not in out
    # On a terminal, the central store is the one its configuration names.
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[sync]\ncentral_url = "{url}"\n')
    assert "synced" in kiosk("sync", "now", "--config", str(config), "--data-dir", str(tmp_path / "line-1")).stdout
    out = kiosk("sync", "status", "--config", str(config), "--data-dir", str(tmp_path / "line-1")).stdout
    assert "last successful sync: 20" in out and "offline since" not in out
    none = kiosk("sync", "status", "--data-dir", str(tmp_path / "line-1"))
    assert none.returncode == 2 and "names no central store (sync.central_url); give one with --url" in none.stderr


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_only_central_init_creates_or_migrates_a_central_store(tmp_path, backend):
    """A mistyped URL must not become an empty central store that ingests, verifies or exports nothing
    as if all were well; nor may a routine command migrate a schema the admin has not backed up."""
    import contextlib
    import os
    import subprocess
    import sys

    from sqlalchemy import text

    from tests.storage.pg_helpers import fresh_database

    def kiosk(*args):
        return subprocess.run([sys.executable, "-m", "kiosk.cli", *args, "--url", url], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "KIOSK_CENTRAL_KEY": str(key)})

    key = tmp_path / "central.key"
    central_key(tmp_path)  # the site's key exists (the store it belongs to is elsewhere: the URL is mistyped)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database("c")) if backend == "postgresql" else f"sqlite:///{tmp_path / 'c.db'}"
        commands = [("central", "ingest", "--once"), ("central", "verify"), ("admin", "devices", "list"),
                    ("export", "bundle", "--out", str(tmp_path / "b.zip"))]
        for command in commands:
            refused = kiosk(*command)
            assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
            assert "no store has been created here (wrong URL?); create it with `kiosk central init`" in refused.stderr
            assert "Traceback" not in refused.stderr
        assert not (tmp_path / "c.db").exists() and not (tmp_path / "b.zip").exists()
        # A URL no central store can have is named for what it is, not by a driver's import error.
        other = subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "status", "--url",
                                "mysql://kiosk:s3cret@central/kiosk"], capture_output=True, text=True, timeout=120)
        assert other.returncode == 2 and "a central store is PostgreSQL or SQLite, not mysql://" in other.stderr
        assert "s3cret" not in other.stdout + other.stderr and "Traceback" not in other.stderr
        assert kiosk("central", "init").returncode == 0
        # An older schema: refused until the admin migrates it with init.
        store = CentralStore(url, None)
        with store.engine.begin() as conn:  # the store as c0005 left it
            conn.execute(text("DROP TABLE alerts_raised"))
            conn.execute(text("DROP VIEW directory_rebase"))
            conn.execute(text("DELETE FROM central_state WHERE name = 'rebase_seq'"))
            conn.execute(text("UPDATE alembic_version SET version_num = 'c0005'"))
        store.close()
        refused = kiosk("central", "ingest", "--once")
        assert refused.returncode == 2 and "the schema (c0005) is older than this software's (c0008)" in refused.stderr
        assert "migrate it with `kiosk central init`" in refused.stderr
        assert kiosk("central", "init").returncode == 0
        for command in commands:
            done = kiosk(*command)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert (tmp_path / "b.zip").is_file()


def test_central_init_on_a_mistyped_url_makes_no_key(tmp_path):
    """The key is made once the store can be reached: a failed init leaves nothing behind to be mistaken
    for the site's key, nor a folder the admin did not ask for."""
    import subprocess
    import sys

    def init(url, *key):
        return subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "init", "--url", url, *key],
                              capture_output=True, text=True, timeout=120)

    key = tmp_path / "central.key"
    for url, why in (("postgresql+psycopg://postgres@127.0.0.1:1/test", "cannot open the central store"),
                     ("postgres//127.0.0.1/test", "not a database URL")):
        failed = init(url, "--key-file", str(key))
        assert failed.returncode == 2 and why in failed.stderr, failed.stderr
        assert not key.exists()
    failed = init(f"sqlite:///{tmp_path / 'not-mounted' / 'central.db'}")
    assert failed.returncode == 2 and "unable to open database file" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    done = init(f"sqlite:///{tmp_path / 'central.db'}")
    assert done.returncode == 0 and (tmp_path / "central.db.key").stat().st_mode & 0o777 == 0o600


def test_a_terminal_never_creates_the_embedded_central_store(tmp_path, clock):
    """A terminal whose central path is mistyped, or on a share not mounted yet, reports the store as
    unreachable; it never leaves an empty database there for the next sync to find."""
    from sqlalchemy.exc import OperationalError

    folder = tmp_path / "share #1"
    folder.mkdir()
    url = f"sqlite:///{folder / 'central.db'}"
    central = CentralStore(url, clock)
    with pytest.raises(OperationalError, match="unable to open database file"):
        central.inbox_count()
    central.close()
    assert list(folder.iterdir()) == []
    CentralStore.open(url, clock, central_key(tmp_path)).close()  # `kiosk central init`
    central = CentralStore(url, clock)
    assert central.inbox_count() == 0
    central.close()


@pytest.mark.req("A11-16")
def test_background_worker_syncs_the_demo_terminal(tmp_path, clock):
    import time

    from kiosk.demo import create_demo, demo_central
    from kiosk.domain.passwords import PasswordHasher
    from kiosk.sync_worker import SyncWorker

    kiosk, _ = create_demo(tmp_path / "demo", clock, hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    central, sync = demo_central(kiosk)
    assert sync.status().queued == 0 and central.devices()[0]["status"] == "approved"
    # Its key is where the admin commands look for an embedded store's key by default.
    from storage.keyfile import load_central_key

    assert load_central_key(tmp_path / "demo" / "central.db.key").kid == central.key.kid
    kiosk.store.append("note.added", {"i": 1})
    assert sync.status().queued == 1
    clock.advance(31)  # the next sync is due
    worker = SyncWorker(sync, tick_s=0.05, after_sync=central.ingest_all)
    worker.start()
    for _ in range(100):
        if sync.status().queued == 0:
            break
        time.sleep(0.05)
    worker.stop()
    worker.join(5)
    assert sync.status().queued == 0 and central.ledger_count(kiosk.store.chain) == kiosk.store.head().seq
    central.close()
    kiosk.close()


@pytest.mark.req("P11-10h")
@pytest.mark.req("P11-300e")
def test_revocation_reaches_the_kiosk_at_next_sync_and_stops_logins(central, tmp_path, clock):
    from kiosk.app import build_kiosk
    from kiosk.config import KioskConfig
    from kiosk.domain.passwords import PasswordHasher
    from kiosk.services.auth import DEVICE_REVOKED

    k = build_kiosk(KioskConfig(), tmp_path / "k", clock, device_id="line-9",
                    hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    issued = k.auth.bootstrap("site.admin", "Ada Admin")
    sync = SyncService(k.store, lambda: central, clock)
    sync.sync_once()
    enroll(central, k.store)
    sync.sync_once()
    central.decide_device(k.store.chain, "revoked", ADMIN, "terminal replaced")
    sync.sync_once()
    result = k.auth.authenticate("site.admin", issued.temporary_password, None)
    assert not result.ok and result.message == DEVICE_REVOKED.format(status="revoked")
    types = [r.type for r in k.store.iter_rows()]
    assert types.count("device.status_observed") == 2  # approved, then revoked
    k.close()


def central_bundle(central, tmp_path, clock, names, **values):
    """Terminals ``names``, 30 records each, synced and approved, in a bundle from the central ledger."""
    from kiosk.services.bundle import write_bundle
    from storage.bundle_central import CentralBundleSource

    for name in names:
        local = kiosk_store(tmp_path, clock, name)
        for i in range(30):
            local.append("step.signed", {"i": i, **values})
        SyncService(local, lambda: central, clock).sync_once()
        enroll(central, local)
        local.close()
    out = tmp_path / "central.zip"
    write_bundle(out, CentralBundleSource(central), exported_at="2026-11-24T10:00:00.000000Z",
                 filters={"source": "central"})
    return out


@pytest.mark.req("P11-10b")
@pytest.mark.req("P11-10c")
def test_bundle_from_the_central_ledger_verifies_offline(central, tmp_path, clock):
    import hashlib
    import json
    import subprocess
    import sys
    import zipfile

    from kiosk.domain import canonical

    out = central_bundle(central, tmp_path, clock, ("line-1", "line-2"))
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(out).extractall(folder)
    result = subprocess.run([sys.executable, "-I", str(folder / "verify_bundle.py"), str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "OK  line-1:1: 31 records" in result.stdout and "OK  line-2:1: 31 records" in result.stdout
    # The central store's own chain is in it, verified like the others: who approved each terminal, and why.
    assert "OK  central:1: " in result.stdout and "device status central" in result.stdout
    records = [json.loads(line)["r"] for line in (folder / "chains" / "central.1.jsonl").read_text().splitlines()]
    decisions = {r["body"]["target"]["id"]: r["body"]["reason"] for r in records if r["type"] == "device.approved"}
    assert set(decisions) == {"line-1:1", "line-2:1"} and len(records) == central.head(central.central_chain)["seq"]
    heads = [r["body"]["heads"] for r in records if r["type"] == "directory.published"][-1]
    assert heads == {"line-1:1": 31, "line-2:1": 31}
    assert "central key fingerprint " + central.key.public.fingerprint in result.stdout
    # A tail cut off with its anchor rewritten (anchors.json is not signed) is caught by the receipt the
    # central store signed at the chain's head.
    tail_cut = tmp_path / "tail_cut"
    zipfile.ZipFile(out).extractall(tail_cut)
    lines = (tail_cut / "chains" / "line-1.1.jsonl").read_text().splitlines(keepends=True)[:-3]
    (tail_cut / "chains" / "line-1.1.jsonl").write_text("".join(lines))
    anchors = json.loads((tail_cut / "anchors.json").read_text())
    anchors["chains"]["line-1:1"].update(seq=28, hash=hashlib.sha256(
        canonical.encode(json.loads(lines[-1])["r"])).hexdigest())
    (tail_cut / "anchors.json").write_text(json.dumps(anchors))
    manifest = json.loads((tail_cut / "MANIFEST.json").read_text())
    for name in ("chains/line-1.1.jsonl", "anchors.json"):
        manifest["files"][name] = hashlib.sha256((tail_cut / name).read_bytes()).hexdigest()
    (tail_cut / "MANIFEST.json").write_text(json.dumps(manifest))
    result = subprocess.run([sys.executable, "-I", str(folder / "verify_bundle.py"), str(tail_cut)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and ("FAILED: chains/line-1.1.jsonl: the central store's signed receipt vouches "
                                       "for seq 31 but the file ends at 28: records removed") in result.stdout
    # A chain taken out of the bundle, with its key and its line of the manifest, is missed against the anchors.
    (folder / "chains" / "line-2.1.jsonl").unlink()
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    del manifest["files"]["chains/line-2.1.jsonl"]
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    devices = [d for d in json.loads((folder / "devices.json").read_text()) if d["device_id"] != "line-2"]
    (folder / "devices.json").write_text(json.dumps(devices))
    del manifest["files"]["devices.json"]  # as a forger would leave it: no stale hash to trip over
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    result = subprocess.run([sys.executable, "-I", str(folder / "verify_bundle.py"), str(folder)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and ("FAILED: line-2:1: the central store anchored seq 31, but the bundle holds no "
                                       "file for this chain: a chain was removed") in result.stdout, result.stdout
    # With its anchor (and receipt) taken out too, the central chain's signed publication still counts it.
    anchors = json.loads((folder / "anchors.json").read_text())
    del anchors["chains"]["line-2:1"]
    (folder / "anchors.json").write_text(json.dumps(anchors))
    manifest["files"]["anchors.json"] = hashlib.sha256((folder / "anchors.json").read_bytes()).hexdigest()
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    result = subprocess.run([sys.executable, "-I", str(folder / "verify_bundle.py"), str(folder)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "FAILED: line-2:1: the central store's signed publication (central:1 #" in (
        result.stdout) and "counts 31 records of it, but the bundle holds 0: records removed" in result.stdout


@pytest.mark.req("P11-10c")
@pytest.mark.req("P11-10e")
def test_a_central_bundle_holds_each_chain_to_its_signed_receipt(central, tmp_path, clock):
    """devices.json and anchors.json are not signed: a forger with a key of their own could rewrite a whole
    chain (content, key, anchor and manifest). The receipt the central store signed at the chain's head cannot
    be rewritten without the central key."""
    import hashlib
    import json
    import subprocess
    import sys
    import zipfile

    from kiosk.domain.keys import fingerprint_of
    from storage.bundle_local import LocalBundleSource
    from storage.local_store import DB_FILE

    out = central_bundle(central, tmp_path, clock, ("line-1",), net_kg="1.500")
    pinned = central.key.public.fingerprint

    def verifier(target, *args):
        script = tmp_path / "verify_bundle.py"
        script.write_bytes(zipfile.ZipFile(out).read("verify_bundle.py"))
        return subprocess.run([sys.executable, "-I", str(script), str(target), *args], capture_output=True,
                              text=True, timeout=120)

    good = verifier(out, "--central-key", pinned)
    assert good.returncode == 0, good.stdout
    assert "OK  line-1:1: 31 records, 0 checkpoints, central receipt at #31, device status approved" in good.stdout
    assert f"central key fingerprint {pinned}: it is the key given" in good.stdout
    assert "every device chain vouched for by the central store's key" in good.stdout
    wrong = verifier(out, "--central-key", fingerprint_of(b"another key"))
    assert wrong.returncode == 1 and "the bundle's central key is not the central key given" in wrong.stdout
    assert verifier(out, "--central-key", "abcd").returncode == 2

    # The forger: the same terminal name, a key of their own, other values, every file made to agree.
    forger = LocalStore.open(tmp_path / "forger", load_or_create_identity(tmp_path / "forger", "line-1"), clock)
    for i in range(30):
        forger.append("step.signed", {"i": i, "net_kg": "1.499"})
    forger.close()
    source = LocalBundleSource(tmp_path / "forger" / DB_FILE)
    forged_device = source.devices()[0]
    forged_lines = list(source.record_lines(forged_device))
    source.close()
    folder = tmp_path / "forged"
    zipfile.ZipFile(out).extractall(folder)
    (folder / "chains" / "line-1.1.jsonl").write_text("".join(line + "\n" for line in forged_lines))
    devices = json.loads((folder / "devices.json").read_text())
    for d in devices:
        if d["device_id"] == "line-1":
            d.update(public_key=forged_device.public_key, kid=forged_device.kid)
    (folder / "devices.json").write_text(json.dumps(devices))
    last = json.loads(forged_lines[-1])["r"]
    from kiosk.domain import canonical
    anchors = json.loads((folder / "anchors.json").read_text())
    anchors["chains"]["line-1:1"].update(seq=31, hash=hashlib.sha256(canonical.encode(last)).hexdigest())
    (folder / "anchors.json").write_text(json.dumps(anchors))

    def fix_manifest():
        manifest = json.loads((folder / "MANIFEST.json").read_text())
        for name in ("chains/line-1.1.jsonl", "devices.json", "anchors.json"):
            manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        (folder / "MANIFEST.json").write_text(json.dumps(manifest))

    fix_manifest()
    assert forged_device.public_key != central.head("line-1:1")["public_key"]
    result = verifier(folder)
    assert result.returncode == 1, result.stdout
    assert "(record line-1:1 #31): differs from the record the central store's signed receipt names" in result.stdout
    # Without the receipt, nothing vouches for the chain: refused, not passed over.
    del anchors["chains"]["line-1:1"]["receipt"]
    (folder / "anchors.json").write_text(json.dumps(anchors))
    fix_manifest()
    result = verifier(folder)
    assert result.returncode == 1 and "line-1:1: no receipt signed by the central store vouches" in result.stdout
    # A receipt with its seq moved (to hide a cut tail) no longer carries the central signature.
    zipfile.ZipFile(out).extractall(cut := tmp_path / "cut")
    anchors = json.loads((cut / "anchors.json").read_text())
    anchors["chains"]["line-1:1"]["receipt"]["upto"] = 28
    (cut / "anchors.json").write_text(json.dumps(anchors))
    manifest = json.loads((cut / "MANIFEST.json").read_text())
    manifest["files"]["anchors.json"] = hashlib.sha256((cut / "anchors.json").read_bytes()).hexdigest()
    (cut / "MANIFEST.json").write_text(json.dumps(manifest))
    result = verifier(cut)
    assert result.returncode == 1 and "line-1:1: its receipt does not carry a valid central signature" in result.stdout


@pytest.mark.req("A11-12")
@pytest.mark.req("P11-10h")
def test_a_kiosk_login_can_only_append_to_the_inbox_and_read_receipts(pg_database, tmp_path, clock):
    from sqlalchemy import text as sql

    store = CentralStore.open(pg_database, clock, central_key(tmp_path), central_time=clock)
    login = f"kiosk_t_{uuid.uuid4().hex[:8]}"
    admin = pg_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE kiosk_device")
    try:
        as_kiosk = pg_database.replace("postgres@", f"{login}@")
        local = kiosk_store(tmp_path, clock)
        kiosk_side = CentralStore(as_kiosk, clock, central_time=clock)
        local.append("alert.raised", {"alert_id": "a-1", "kind": "test", "message": "a directory change"})
        SyncService(local, lambda: kiosk_side, clock).sync_once()       # push and read receipts: allowed
        enroll(store, local)
        SyncService(local, lambda: kiosk_side, clock).sync_once()
        assert local.head().synced_upto >= 1
        # What a kiosk reads to trust and pull: the central key, publications and directory documents.
        assert kiosk_side.central_key() == store.key.public
        pubs = kiosk_side.publications()
        assert pubs and any(e.kind == "alert" for e in kiosk_side.directory_entries(0, 10**9))
        assert kiosk_side.next_epoch(local.identity.device_id) == 2
        assert [d["chain"] for d in kiosk_side.devices()] == [local.chain]  # an admin kiosk's Devices screen
        # ... with when its records were last taken in, which the kiosk login cannot read from receipts itself.
        assert kiosk_side.devices()[0]["taken_in"] == store.receipt(local.chain)[0].central_ts
        # ... and which publication is the newest rebase (after a restore), nothing else of central_state.
        assert kiosk_side.latest_rebase() is None
        store.rebase_directory(ADMIN, "restored from the nightly backup")
        assert kiosk_side.latest_rebase().seq == kiosk_side.publications()[-1].seq
        for forbidden in ("UPDATE ledger SET type = 'x'", "DELETE FROM inbox", "SELECT raw FROM ledger",
                          "UPDATE chain_heads SET status = 'approved'", "DELETE FROM quarantine",
                          "SELECT public_key FROM chain_heads", "UPDATE central_state SET value = 0",
                          "SELECT value FROM central_state",
                          "INSERT INTO directory_changes (version, kind, key, doc, chain, seq) "
                          "VALUES (999999, 'user', 'x', '{}', 'x:1', 1)",
                          "INSERT INTO receipts (chain, upto, hash, central_ts) VALUES ('x:1', 1, 'h', 't')"):
            with pytest.raises(Exception, match="permission denied"):
                with kiosk_side.engine.begin() as conn:
                    conn.execute(sql(forbidden))
        kiosk_side.close()
        local.close()
    finally:
        store.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'REASSIGN OWNED BY {login} TO postgres')
            conn.execute(f'DROP OWNED BY {login}')
            conn.execute(f"DROP ROLE {login}")
