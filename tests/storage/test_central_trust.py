"""The central store's own key: signed receipts, the signed directory pulled by kiosks, device decisions,
re-registration and clock trust. Real PostgreSQL and SQLite, real crypto, FakeClock."""

import datetime as dt
import subprocess
import sys

import pytest
from sqlalchemy import text

from kiosk.app import build_kiosk, central_sync
from kiosk.config import KioskConfig
from kiosk.domain.clock import FakeClock
from kiosk.domain.passwords import PasswordHasher
from kiosk.services.auth import Actor
from kiosk.services.sync import CentralUntrusted, ReceiptMismatch
from storage.central import CentralStore
from storage.keyfile import load_or_create_central_key
from tests.storage.conftest import ADMIN

FAST = PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1)
PASSWORD = "correct horse battery staple 42"


def terminal(tmp_path, clock, central, name, *, site_of=None, **kwargs):
    """``site_of``: another terminal whose site key this one is installed with (as at a real site)."""
    if site_of is not None:
        from storage.sitekey import create_site_key, load_site_key

        create_site_key(tmp_path / name, load_site_key(site_of.data_dir))
    k = build_kiosk(KioskConfig(), tmp_path / name, clock, device_id=name, hasher=FAST, **kwargs)
    _, sync = central_sync(k, central.url, central=central)
    return k, sync


def cycle(central, *syncs):
    """What one sync interval does at a site: push, ingest (and publish), receipt and pull."""
    for _ in range(3):
        for s in syncs:
            s.sync_once()
        central.ingest_all()
    for s in syncs:
        s.sync_once()


def admin_terminal(tmp_path, clock, central):
    a, sync_a = terminal(tmp_path, clock, central, "line-a")
    admin_and_ana(a, clock)
    sync_a.sync_once()
    central.ingest_all()
    central.decide_device(a.store.chain, "approved", {**ADMIN, "user_id": "central-key-holder"}, "first terminal")
    cycle(central, sync_a)
    return a, sync_a


def second_terminal(tmp_path, clock, central, a, sync_a):
    """line-b, installed with line-a's site key, after one sync interval: the central store has it as pending."""
    b, sync_b = terminal(tmp_path, clock, central, "line-b", site_of=a)
    cycle(central, sync_a, sync_b)
    return b, sync_b


def two_approved_terminals(tmp_path, clock, central):
    """line-a (the admin's) and line-b, both approved and synced: a site's usual state."""
    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = second_terminal(tmp_path, clock, central, a, sync_a)
    central.decide_device(b.store.chain, "approved", ADMIN, "fingerprint compared on site")
    cycle(central, sync_a, sync_b)
    return a, sync_a, b, sync_b


def admin_and_ana(kiosk, clock):
    """The site admin, and ana.op (operator, no TOTP), both with PASSWORD."""
    issued = kiosk.auth.bootstrap("site.admin", "Site Admin")
    assert kiosk.auth.change_password("site.admin", issued.temporary_password, PASSWORD,
                                      _code(issued.totp_secret, clock)).ok
    admin = Actor("site.admin", "Site Admin", "admin")
    ana = kiosk.auth.create_user(admin, "ana.op", "Ana Ortiz", ["operator"], reason="new starter",
                                 identity_verified=True, with_totp=False)
    assert kiosk.auth.change_password("ana.op", ana.temporary_password, PASSWORD, None).ok


def _code(secret, clock):
    import pyotp

    return pyotp.TOTP(secret).at(clock.now() - dt.timedelta(seconds=30)) if secret else None


@pytest.mark.req("P11-10d")
@pytest.mark.req("A11-12")
def test_a_suspension_on_one_terminal_reaches_another_within_one_sync_interval(central, tmp_path, clock):
    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = terminal(tmp_path, clock, central, "line-b", site_of=a)
    assert b.auth.user("ana.op") is None  # a new terminal knows nobody until it is approved and has pulled
    cycle(central, sync_a, sync_b)
    central.decide_device(b.store.chain, "approved", ADMIN, "fingerprint compared on site")
    cycle(central, sync_a, sync_b)
    assert b.auth.authenticate("ana.op", PASSWORD, require_totp=False).ok
    for _ in range(5):
        a.auth.authenticate("ana.op", "wrong password entirely", require_totp=False)
        clock.advance(600)  # past the progressive delay
    assert a.auth.user("ana.op").status == "suspended"
    cycle(central, sync_a, sync_b)
    result = b.auth.authenticate("ana.op", PASSWORD, require_totp=False)
    assert not result.ok and "suspended" in result.message.lower()
    # B's own records made after the pull stay in force on top of the central base.
    b_admin = b.auth.user("site.admin")
    assert b_admin is not None and "admin" in b_admin.roles
    a.close(), b.close()


@pytest.mark.req("P11-300d")
def test_info_alerts_from_two_terminals_acknowledged_together_on_one_are_acknowledged_everywhere(
        central, tmp_path, clock):
    from kiosk.domain.clock import format_ts

    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
    for kiosk in (a, b, a):
        clock.advance(600)
        kiosk.auth.authenticate("ana.op", "wrong password entirely", require_totp=False)
    cycle(central, sync_a, sync_b)
    through = format_ts(clock.now())
    wrong = [x["alert_id"] for x in b.auth.alerts() if x["kind"] == "auth.bad_password"]
    assert len(wrong) == 3 and b.auth.open_alerts_alike("auth.bad_password", through) == 3
    admin = Actor("site.admin", "Site Admin", "admin")
    assert b.auth.acknowledge_alike(admin, "auth.bad_password", through, "typos after the shift change") == 3
    cycle(central, sync_a, sync_b)
    for alert_id in wrong:
        assert central.directory_doc("alert", alert_id)["acknowledged_by"] == "site.admin"
    assert not [x for x in a.auth.alerts() if x["kind"] == "auth.bad_password"]
    assert not [x for x in central.alerts() if x["kind"] == "directory.conflict"]
    a.close(), b.close()


@pytest.mark.req("P11-300d")
@pytest.mark.req("P11-10h")
def test_the_central_stores_own_alerts_reach_every_terminal_and_are_acknowledged_there(central, tmp_path, clock):
    """A terminal asking to be registered, a decision, a fork: rows of the central alerts table, which nobody on
    the floor reads. Each is raised once as a record of the central chain and pulled with the directory."""
    from kiosk.domain.clock import format_ts

    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = second_terminal(tmp_path, clock, central, a, sync_a)  # line-b asks to be registered
    central_alerts = lambda kiosk: {x["kind"]: x for x in kiosk.auth.alerts()  # noqa: E731
                                    if x["device"] == central.central_chain and b.store.chain in x["message"]}
    pending = central_alerts(a)["device.pending"]
    assert pending["severity"] == "warning" and pending["target"] == {"kind": "device", "id": b.store.chain}
    assert f"{b.store.chain} asks to be registered; key fingerprint" in pending["message"]
    central.decide_device(b.store.chain, "approved", ADMIN, "fingerprint compared on site")
    cycle(central, sync_a, sync_b)
    for kiosk in (a, b):  # b too, now that it pulls: each terminal's supervisors see every alert
        assert central_alerts(kiosk)["device.approved"]["severity"] == "info"
    admin = Actor("site.admin", "Site Admin", "admin")
    a.auth.acknowledge_alert(admin, pending["alert_id"], "approved after comparing the fingerprints")
    assert a.auth.acknowledge_alike(admin, "device.approved", format_ts(clock.now()), "both terminals expected") == 2
    cycle(central, sync_a, sync_b)
    assert central.directory_doc("alert", pending["alert_id"])["acknowledged_by"] == "site.admin"
    left = [(x["kind"], x["target"]["id"]) for x in b.auth.alerts() if x["device"] == central.central_chain]
    assert left == [("device.pending", a.store.chain)]  # line-a's, which nobody acknowledged
    # A copy of line-b's key writes another record at line-b's next place: a fork, which freezes the chain.
    import shutil

    from kiosk.services.sync import SyncService
    from storage.keyfile import load_identity
    from storage.local_store import LocalStore

    shutil.copytree(tmp_path / "line-b", tmp_path / "clone")
    b.auth.raise_alert("test.note", "info", "line-b's own next record", {"kind": "device", "id": "line-b"})
    sync_b.sync_once()
    clone = LocalStore.open(tmp_path / "clone", load_identity(tmp_path / "clone"), clock)
    clone.append("note.added", {"text": "written with a copied key"})
    SyncService(clone, lambda: central, clock).sync_once()
    clone.close()
    cycle(central, sync_a, sync_b)
    frozen = central_alerts(a)["chain.frozen"]
    assert frozen["severity"] == "critical" and frozen["message"].startswith(f"{b.store.chain} frozen at #5: fork")
    with central.engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM alerts")).scalar_one()
        raised = conn.execute(text("SELECT count(*) FROM ledger WHERE chain = :c AND type = 'alert.raised'"),
                              {"c": central.central_chain}).scalar_one()
    assert raised == rows  # each alert raised once
    a.close(), b.close()


def test_an_alert_whose_text_a_record_cannot_carry_as_it_is_is_raised_escaped_and_stops_nothing(central, clock):
    """A central alert's message may quote what a row held. Text outside the record profile (not NFC) would
    make its record fail to seal, and every publication after it with it; control characters are escaped."""
    with central.engine.begin() as conn:
        conn.execute(text("INSERT INTO alerts (kind, chain, message, at) VALUES ('directory.conflict', NULL, :m, "
                          "'2026-11-24T10:00:00.000000Z')"), {"m": "cafe\u0301 \x1b[2J"})
        alert_id = conn.execute(text("SELECT max(id) FROM alerts")).scalar_one()
    central.publish_directory()
    with central.engine.connect() as conn:
        key = conn.execute(text("SELECT DISTINCT key FROM directory_changes WHERE kind = 'alert' AND key LIKE :p"),
                           {"p": f"{central.central_chain}/alert-{alert_id}-%"}).scalar_one()
    doc = central.directory_doc("alert", key)
    assert doc["message"] == "caf\u00e9 \\x1b[2J" and doc["target"] == {"kind": "site", "id": "central"}
    assert doc["severity"] == "warning"


def test_only_an_approved_terminal_pulls_the_directory(central, tmp_path, clock):
    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = second_terminal(tmp_path, clock, central, a, sync_a)
    assert central.head(b.store.chain)["status"] == "pending"
    assert b.auth.user("ana.op") is None and b.directory.count("user") == 0
    a.close(), b.close()


@pytest.mark.req("P11-10c")
def test_a_directory_document_changed_after_signing_is_refused_by_the_kiosk(central, tmp_path, clock):
    import json

    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
    assert b.directory.get("user", "ana.op")["roles"] == ["operator"]
    a.auth.update_user(Actor("site.admin", "Site Admin", "admin"), "ana.op", reason="name corrected",
                       printed_name="Ana Ortiz-Diaz")
    sync_a.sync_once()
    central.ingest_all()  # ingested and published, signed by the central key
    # Someone with write access to the central database, but not the key, makes ana an admin.
    with central.engine.begin() as conn:
        if central.pg:
            conn.execute(text("ALTER TABLE directory_changes DISABLE TRIGGER directory_changes_append_only"))
        else:
            conn.execute(text("DROP TRIGGER directory_changes_no_update"))
        version, doc = conn.execute(text("SELECT version, doc FROM directory_changes WHERE kind = 'user' "
                                         "AND key = 'ana.op' ORDER BY version DESC LIMIT 1")).first()
        conn.execute(text("UPDATE directory_changes SET doc = :d WHERE version = :v"),
                     {"d": json.dumps(dict(json.loads(doc), roles=["admin"])), "v": version})
    from storage.directory_pull import pull_state

    before = pull_state(b.store)
    with b.store.side_transaction() as db:
        base = db.execute("SELECT kind, key, doc, version FROM central_directory ORDER BY kind, key").fetchall()
    with pytest.raises(CentralUntrusted, match="does not match the documents served"):
        sync_b.sync_once()
    # Nothing applied: the documents are streamed into the pull's transaction and checked at the end of each
    # publication, so the ones before the mismatch were rolled back with it.
    assert b.directory.get("user", "ana.op")["roles"] == ["operator"]
    assert pull_state(b.store) == before
    with b.store.side_transaction() as db:
        assert db.execute("SELECT kind, key, doc, version FROM central_directory ORDER BY kind, key").fetchall() == base
    assert list(b.store.iter_rows())[-1].type == "alert.raised"
    a.close(), b.close()


@pytest.mark.req("P11-10c")
def test_receipts_must_carry_the_pinned_central_signature(central, tmp_path, clock):
    a, sync_a = admin_terminal(tmp_path, clock, central)
    pinned = a.directory.get("central.pin", a.store.chain)
    assert pinned["fingerprint"] == central.key.public.fingerprint
    synced = a.store.head().synced_upto
    a.store.append("note.added", {"i": 1})
    sync_a.sync_once()
    # A receipt written by someone without the key (valid columns, no or wrong signature) moves nothing.
    head = a.store.head()
    with central.engine.begin() as conn:
        conn.execute(text("INSERT INTO receipts (chain, upto, hash, central_ts, kid, sig) "
                          "VALUES (:c, :u, :h, '2026-11-24T10:00:00.000000Z', :k, :g)"),
                     {"c": a.store.chain, "u": head.seq, "h": head.hash_hex, "k": central.key.kid, "g": b"\0" * 64})
    with pytest.raises(ReceiptMismatch, match="no valid central signature"):
        sync_a.sync_once()
    assert a.store.head().synced_upto == synced
    a.close()


@pytest.mark.req("P11-10c")
def test_a_central_store_with_another_key_halts_sync(central, tmp_path, clock):
    a, sync_a = admin_terminal(tmp_path, clock, central)
    other = CentralStore(central.url, clock, load_or_create_central_key(tmp_path / "other.key"), central_time=clock)
    with pytest.raises(Exception, match="signs with key"):
        other._open_central_chain()  # the store refuses a second key
    # And a kiosk refuses a store that shows another key (e.g. a different database behind the same URL).
    with central.engine.begin() as conn:
        if central.pg:
            conn.execute(text("UPDATE chain_heads SET public_key = :p WHERE chain = 'central:1'"),
                         {"p": __import__("kiosk.domain.keys", fromlist=["b64url"]).b64url(other.key.public.raw)})
        else:
            conn.execute(text("UPDATE chain_heads SET public_key = :p WHERE chain = 'central:1'"),
                         {"p": __import__("kiosk.domain.keys", fromlist=["b64url"]).b64url(other.key.public.raw)})
    with pytest.raises(CentralUntrusted, match="not the pinned"):
        sync_a.sync_once()
    a.close()


@pytest.mark.req("P11-10h")
@pytest.mark.req("A11-12")
def test_a_kiosk_admin_decides_about_another_terminal_but_never_about_itself(central, tmp_path, clock):
    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = second_terminal(tmp_path, clock, central, a, sync_a)
    fp = central.head(b.store.chain)
    from kiosk.domain.keys import PublicKey, unb64url

    fingerprint = PublicKey(unb64url(fp["public_key"])).fingerprint
    admin = {"user_id": "site.admin", "name": "Site Admin", "role": "admin"}
    # Self-approval, a non-admin and a wrong fingerprint are refused with an alert; the real one applies.
    b.store.append("device.approved", {"actor": admin, "target": {"kind": "device", "id": b.store.chain},
                                       "fingerprint": fingerprint, "reason": "approving myself"})
    a.store.append("device.approved", {"actor": {"user_id": "ana.op", "name": "Ana", "role": "operator"},
                                       "target": {"kind": "device", "id": b.store.chain},
                                       "fingerprint": fingerprint, "reason": "not an admin"})
    a.store.append("device.approved", {"actor": admin, "target": {"kind": "device", "id": b.store.chain},
                                       "fingerprint": "0000 " * 16, "reason": "did not compare"})
    cycle(central, sync_a, sync_b)
    assert central.head(b.store.chain)["status"] == "pending"
    refused = [x["message"] for x in central.alerts() if x["kind"] == "device.decision_refused"]
    assert any("not an active admin" in m for m in refused)
    assert any("fingerprint" in m for m in refused)
    a.store.append("device.approved", {"actor": admin, "target": {"kind": "device", "id": b.store.chain},
                                       "fingerprint": fingerprint, "reason": "compared on site"})
    cycle(central, sync_a, sync_b)
    assert central.head(b.store.chain)["status"] == "approved"
    assert "site.admin (admin)" in central.head(b.store.chain)["reason"]
    # The self-approval record itself was kept (it is evidence) and refused when B's chain was ingested.
    cycle(central, sync_a, sync_b)
    assert any("own registration" in x["message"] for x in central.alerts())
    a.close(), b.close()


@pytest.mark.req("P11-10h")
@pytest.mark.req("A11-12")
def test_cli_decisions_need_an_authenticated_central_admin(tmp_path, clock):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    key = load_or_create_central_key(tmp_path / "c.db.key")
    central = CentralStore.open(url, clock, key, central_time=clock)
    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = second_terminal(tmp_path, clock, central, a, sync_a)

    def cli(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "kiosk.cli", "admin", "devices", *args, "--url", url,
                               "--site-key", str(a.data_dir / "site.key")],
                              input=stdin, capture_output=True, text=True, timeout=120)

    r = cli("approve", b.store.chain, "--as-key-holder", "--reason", "compared")
    assert r.returncode == 1 and "active admin exists" in r.stdout + r.stderr
    r = cli("approve", b.store.chain, "--admin", "site.admin", "--reason", "compared", stdin="wrong password\n")
    assert r.returncode == 1 and "Invalid admin id or password" in r.stdout + r.stderr
    r = cli("approve", b.store.chain, "--admin", "nobody", "--reason", "compared", stdin="wrong password\n")
    assert r.returncode == 1 and "Invalid admin id or password" in r.stdout + r.stderr
    # The reason is typed at a prompt that shows it: holding the password, it is refused, not recorded.
    r = cli("approve", b.store.chain, "--admin", "site.admin", stdin=f"compared, {PASSWORD}\n{PASSWORD}\n")
    assert r.returncode == 1 and "the reason holds your password" in r.stdout + r.stderr
    assert central.head(b.store.chain)["status"] != "approved"
    r = cli("approve", b.store.chain, "--admin", "site.admin", "--reason", "fingerprint compared",
            stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    assert central.head(b.store.chain)["status"] == "approved"
    with central.engine.connect() as conn:
        raw = conn.execute(text("SELECT raw FROM ledger WHERE chain = 'central:1' AND type = 'device.approved' "
                                "ORDER BY seq DESC LIMIT 1")).scalar_one()
    assert b'"user_id":"site.admin"' in bytes(raw) and b"fingerprint compared" in bytes(raw)
    a.close(), b.close()
    central.close()


@pytest.mark.req("P11-10h")
@pytest.mark.req("P11-300e")
def test_re_registration_after_a_wiped_disk_opens_a_new_epoch(central, tmp_path, clock):
    from kiosk.app import next_epoch_from

    a, sync_a = admin_terminal(tmp_path, clock, central)
    old_chain = a.store.chain
    a.store.append("note.added", {"i": "before the wipe"})
    sync_a.sync_once()
    a.close()
    # The disk is wiped: a new key, and the central store tells the terminal which epoch comes next.
    fresh, sync_fresh = terminal(tmp_path / "wiped", clock, central, "line-a", epoch=next_epoch_from(central.url, clock))
    assert fresh.store.chain == "line-a:2"
    other, _ = terminal(tmp_path, clock, central, "line-z", epoch=next_epoch_from(central.url, clock))
    assert other.store.chain == "line-z:1"  # an id the store has never seen starts at epoch 1
    other.close()
    cycle(central, sync_fresh)
    pending = [x for x in central.alerts() if x["kind"] == "device.pending" and x["chain"] == "line-a:2"]
    assert pending and "re-registers" in pending[0]["message"] and old_chain in pending[0]["message"]
    assert "site Demo site" in pending[0]["message"]  # the registration request says where the terminal is
    central.decide_device("line-a:2", "approved", ADMIN, "new disk, fingerprint compared")
    assert central.head(old_chain)["status"] == "revoked"
    assert "superseded" in central.head(old_chain)["reason"]
    fresh.close()


@pytest.mark.req("P11-300e")
@pytest.mark.req("A11-16")
def test_clock_skew_against_central_is_recorded_and_refuses_signing_until_resolved(tmp_path, clock):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    central_clock = FakeClock(clock.now() + dt.timedelta(minutes=5))
    central = CentralStore.open(url, clock, load_or_create_central_key(tmp_path / "k"), central_time=central_clock)
    a, sync_a = terminal(tmp_path, clock, central, "line-a")
    assert not a.store.clock_suspect()
    sync_a.sync_once()
    rows = [r for r in a.store.iter_rows() if r.type == "clock.observed"]
    assert len(rows) == 1 and b'"kind":"skew"' in rows[0].raw and b'"offset_s":"-300.000000"' in rows[0].raw
    assert a.store.clock_suspect()  # signing is refused while the clock is known to be wrong
    sync_a.sync_once()
    assert len([r for r in a.store.iter_rows() if r.type == "clock.observed"]) == 1  # once per episode
    clock.advance(300)  # the kiosk's time is corrected
    central_clock.advance(0)
    sync_a.sync_once()
    kinds = [r.raw for r in a.store.iter_rows() if r.type == "clock.observed"]
    assert len(kinds) == 2 and b'"kind":"skew_resolved"' in kinds[-1]
    assert not a.store.clock_suspect()
    a.close()
    central.close()


@pytest.mark.req("P11-300e")
def test_postgresql_time_is_the_reference_by_default(pg_database, tmp_path):
    from kiosk.system_clock import SystemClock

    store = CentralStore(pg_database, SystemClock())
    assert abs((store.now() - SystemClock().now()).total_seconds()) < 60
    store.close()


@pytest.mark.req("P11-10h")
@pytest.mark.req("A11-12")
def test_a_terminal_of_a_central_site_refuses_logins_until_approved(central, tmp_path, clock):
    from kiosk.services.auth import DEVICE_NOT_APPROVED

    config = KioskConfig().replace(sync={"central_url": central.url})
    k = build_kiosk(config, tmp_path / "line-n", clock, device_id="line-n", hasher=FAST)
    issued = k.auth.bootstrap("site.admin", "Site Admin")
    result = k.auth.authenticate("site.admin", issued.temporary_password, require_totp=False)
    assert not result.ok and result.message == DEVICE_NOT_APPROVED.format(status="unregistered")
    _, sync = central_sync(k, central.url, central=central)
    cycle(central, sync)
    result = k.auth.authenticate("site.admin", issued.temporary_password, require_totp=False)
    assert not result.ok and result.message == DEVICE_NOT_APPROVED.format(status="pending")
    central.decide_device(k.store.chain, "approved", {**ADMIN, "user_id": "central-key-holder"}, "first terminal")
    cycle(central, sync)
    assert k.auth.authenticate("site.admin", issued.temporary_password, require_totp=False).ok
    k.close()
