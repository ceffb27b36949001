"""Disk full and a read-only data directory: signing is refused with a clear message, nothing
already stored is damaged, and the kiosk works again once space or write access is back.

The faults are real: a size-limited tmpfs that fills up, a tmpfs remounted
read-only, an ext4 image that goes read-only on a file system error while the
kiosk has its store open (errors=remount-ro, as a failing disk does).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pyotp
import pytest

from kiosk.app import build_kiosk, make_app
from kiosk.demo import DEMO_PASSWORD, create_demo, demo_config
from kiosk.domain.passwords import PasswordHasher
from kiosk.ui_adapter import UiServices
from screens.app import ERROR_NOTICE
from screens.dialogs import CredentialsDialog
from screens.ports import Credentials
from screens.worklist import WorklistScreen
from storage.local_store import DB_FILE
from storage.sqlite import StoreUnavailable
from storage.verify_local import verify_local_store
from tests.security import faults
from tests.ui.flows import enter_credentials, open_first_step, type_text, wait_for

CHEAP = dict(time_cost=1, memory_kib=1024, parallelism=1)


def _code(users, uid, clock):
    clock.advance(31)
    return pyotp.TOTP(users[uid].totp_secret).at(clock.now())


def _ana_logged_in(kiosk, users, clock):
    if not kiosk.auth.user("ana.op").first_use_accepted:
        kiosk.auth.accept_first_use(kiosk.auth.user("ana.op"))
    outcome = kiosk.session.login("ana.op", DEMO_PASSWORD, _code(users, "ana.op", clock))
    assert outcome.ok, outcome.message


def _sign_line_clearance(kiosk, users, clock, batch_id):
    prepared = kiosk.signing.prepare(batch_id, "line-clearance", "Performed", {"area_clear": "yes"})
    totp = _code(users, "ana.op", clock) if "totp" in prepared.components else None
    return kiosk.signing.sign(prepared, DEMO_PASSWORD, "ana.op", totp)


def _signed_meanings(kiosk, batch_id):
    return [s["meaning"] for s in kiosk.signing.steps(batch_id)[0].signatures]


def _new_batch(kiosk, batch_id):
    kiosk.signing.create_batch(batch_id, "buffer-prep@4")


def _checkpoint_wal(data_dir):
    """Fold the WAL into the database file and truncate it, so the next commit needs new space."""
    conn = sqlite3.connect(data_dir / DB_FILE)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _stored_hashes(data_dir):
    conn = sqlite3.connect(data_dir / DB_FILE)
    try:
        return {seq: bytes(h) for seq, h in conn.execute("SELECT seq, hash FROM records")}
    finally:
        conn.close()


@pytest.fixture
def demo_on(tmp_path, clock):
    """``demo_on(mount_point)``: the demo kiosk with its data directory on that file system."""
    made = []

    def make(mount_point):
        kiosk, users = create_demo(mount_point / "data", clock, hasher=PasswordHasher(**CHEAP))
        made.append(kiosk)
        return kiosk, {u.user_id: u for u in users}

    yield make
    for kiosk in made:
        kiosk.close()


@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_disk_full_refuses_signing_damages_nothing_and_recovers(tmp_path, clock, demo_on):
    with faults.tmpfs(tmp_path / "small", "16m") as mnt:
        kiosk, users = demo_on(mnt)
        _ana_logged_in(kiosk, users, clock)
        _sign_line_clearance(kiosk, users, clock, "PB-2026-001")
        _new_batch(kiosk, "PB-FULL-1")
        before = _stored_hashes(kiosk.data_dir)
        head = kiosk.store.head()

        _checkpoint_wal(kiosk.data_dir)
        filler = faults.fill(mnt)
        with pytest.raises(StoreUnavailable, match="the disk is full; nothing was saved") as refused:
            _sign_line_clearance(kiosk, users, clock, "PB-FULL-1")
        assert "free space" in str(refused.value)
        assert kiosk.session.session.owner == "ana.op"  # the refused signature did not end or change the session
        with pytest.raises(StoreUnavailable, match="disk is full"):
            kiosk.session.save_draft("PB-FULL-1", "line-clearance", {"area_clear": "yes"})
        # Someone else types credentials: refused with the real reason (not "invalid password"),
        # and Ana's session ends anyway (fail safe), although its end could not be recorded.
        result = UiServices(kiosk).login(Credentials("ben.op", "wrong password!", "000000"))
        assert not result.ok and "cannot record right now" in result.message and "disk is full" in result.message
        assert not kiosk.session.session.active
        assert kiosk.store.head() == head
        assert _signed_meanings(kiosk, "PB-FULL-1") == []
        report = verify_local_store(kiosk.data_dir)
        assert report.ok and report.records == head.seq
        assert _stored_hashes(kiosk.data_dir) == before

        filler.unlink()  # space is back: log in again and sign, with nothing to restart
        _ana_logged_in(kiosk, users, clock)
        signed = _sign_line_clearance(kiosk, users, clock, "PB-FULL-1")
        assert signed["manifestation"]["user_id"] == "ana.op"
        assert _signed_meanings(kiosk, "PB-FULL-1") == ["Performed"]
        final = kiosk.store.head()
        kiosk.close()
        report = verify_local_store(kiosk.data_dir)
        assert report.ok and report.records == final.seq > head.seq
        after = _stored_hashes(kiosk.data_dir)
        assert {seq: after[seq] for seq in before} == before


@pytest.mark.req("A11-16")
@pytest.mark.req("A11-12")
async def test_disk_full_in_the_sign_dialog_shows_the_reason_not_a_crash(tmp_path, clock, demo_on):
    with faults.tmpfs(tmp_path / "small", "16m") as mnt:
        kiosk, users = demo_on(mnt)
        app = make_app(kiosk, idle_check_s=3600)
        errors = []
        app.services.report_error = errors.append
        async with app.run_test(size=(120, 40)) as pilot:
            await open_first_step(pilot, app, clock, users["ana.op"])
            step = app.screen
            await type_text(pilot, "yes")
            _checkpoint_wal(kiosk.data_dir)
            filler = faults.fill(mnt)
            head = kiosk.store.head()
            step.query_one("#sign-Performed").press()
            await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the sign dialog")
            await enter_credentials(pilot, clock, "ana.op", DEMO_PASSWORD, users["ana.op"].totp_secret)
            message = step.query_one("#message")
            await wait_for(pilot, lambda: "disk is full" in str(message.render()), "the disk-full message")
            assert app.screen is step and app.is_running and app._exception is None
            assert ERROR_NOTICE not in [n.message for n in app._notifications] and errors == []
            assert kiosk.store.head() == head

            filler.unlink()
            step.query_one("#sign-Performed").press()
            await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the sign dialog again")
            await enter_credentials(pilot, clock, "ana.op", DEMO_PASSWORD, users["ana.op"].totp_secret)
            await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist after signing")
        assert [r.type for r in kiosk.store.iter_rows()].count("step.signed") == 1
        kiosk.close()
        assert verify_local_store(kiosk.data_dir).ok


def _kiosk_cli(*args):
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.req("A11-16")
@pytest.mark.req("A11-12")
def test_read_only_data_directory_is_refused_at_start_and_recovers(tmp_path, clock, demo_on):
    with faults.tmpfs(tmp_path / "ro", "16m") as mnt:
        kiosk, users = demo_on(mnt)
        data = kiosk.data_dir
        kiosk.close()
        before = _stored_hashes(data)

        faults.remount(mnt, "ro")
        with pytest.raises(StoreUnavailable, match="the data directory is read-only") as refused:
            build_kiosk(demo_config(), data, clock, device_id="demo-kiosk", hasher=PasswordHasher(**CHEAP))
        assert "restore write access" in str(refused.value)
        listed = _kiosk_cli("admin", "users", "list", "--data-dir", str(data))
        assert listed.returncode == 2 and "read-only" in listed.stderr and "Traceback" not in listed.stderr

        faults.remount(mnt, "rw")
        again = build_kiosk(demo_config(), data, clock, device_id="demo-kiosk", hasher=PasswordHasher(**CHEAP))
        try:
            _ana_logged_in(again, users, clock)
            _sign_line_clearance(again, users, clock, "PB-2026-001")
        finally:
            again.close()
        report = verify_local_store(data)
        assert report.ok and report.records > len(before)
        after = _stored_hashes(data)
        assert {seq: after[seq] for seq in before} == before


@pytest.mark.req("A11-12")
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions; the read-only remount test covers root")
def test_read_only_permissions_refused_for_the_kiosk_account(tmp_path, clock, demo_on):
    kiosk, users = demo_on(tmp_path)
    data = kiosk.data_dir
    kiosk.close()
    os.chmod(data, 0o500)
    try:
        with pytest.raises(StoreUnavailable, match="read-only .this account has no write permission"):
            build_kiosk(demo_config(), data, clock, device_id="demo-kiosk", hasher=PasswordHasher(**CHEAP))
    finally:
        os.chmod(data, 0o700)
    assert verify_local_store(data).ok


@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_file_system_going_read_only_under_a_running_kiosk(tmp_path, clock, demo_on):
    with faults.ext4_image(tmp_path / "ext4") as (mnt, device):
        kiosk, users = demo_on(mnt)
        _ana_logged_in(kiosk, users, clock)
        _new_batch(kiosk, "PB-RO-1")
        head = kiosk.store.head()
        before = _stored_hashes(kiosk.data_dir)

        faults.trigger_fs_error(device)
        for _ in range(2):  # and again: the failed connection was dropped, a new one fails the same way
            with pytest.raises(StoreUnavailable, match="the data directory is read-only .its file system turned read-only"):
                _sign_line_clearance(kiosk, users, clock, "PB-RO-1")
        ui = UiServices(kiosk)
        result = ui.login(Credentials("ben.op", "wrong password!", "000000"))
        assert not result.ok and "read-only" in result.message
        report = verify_local_store(kiosk.data_dir)
        assert report.ok and report.records == head.seq
        kiosk.close()

        faults.remount_after_error(mnt, device)
        assert _stored_hashes(mnt / "data") == before
        again = build_kiosk(demo_config(), mnt / "data", clock, device_id="demo-kiosk", hasher=PasswordHasher(**CHEAP))
        try:
            _ana_logged_in(again, users, clock)
            _sign_line_clearance(again, users, clock, "PB-RO-1")
            assert _signed_meanings(again, "PB-RO-1") == ["Performed"]
        finally:
            again.close()
        assert verify_local_store(mnt / "data").ok
