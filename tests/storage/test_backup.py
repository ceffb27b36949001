import sqlite3
import subprocess
import sys

import pytest

from storage.backup import BackupError, restore
from storage.verify_local import verify_local_store


def kiosk(*args):
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def filled(store, data_dir):
    for i in range(300):
        store.append("step.signed", {"i": i})
    return store


@pytest.mark.req("A11-7")
def test_backup_while_open_then_restore_verifies(filled, data_dir, tmp_path):
    out = tmp_path / "k.bak"
    result = kiosk("admin", "backup", "--out", str(out), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "backup written and verified" in result.stdout and "302 records" in result.stdout
    filled.append("step.signed", {"i": "after"})
    result = kiosk("admin", "restore", "--from", str(out), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "previous store kept as" in result.stdout
    assert verify_local_store(data_dir).records == 302
    kept = list(data_dir.glob("kiosk.db.replaced-*"))
    assert [p for p in kept if not p.name.endswith(("-wal", "-shm"))]


@pytest.mark.req("A11-7")
def test_backup_never_overwrites_and_a_tampered_backup_is_not_restored(filled, data_dir, tmp_path):
    out = tmp_path / "k.bak"
    assert kiosk("admin", "backup", "--out", str(out), "--data-dir", str(data_dir)).returncode == 0
    again = kiosk("admin", "backup", "--out", str(out), "--data-dir", str(data_dir))
    assert again.returncode == 1 and "never overwritten" in again.stderr
    # A mistyped folder or an unmounted backup drive is not made on the terminal's own disk.
    unmounted = tmp_path / "backup-drive" / "k.bak"
    refused = kiosk("admin", "backup", "--out", str(unmounted), "--data-dir", str(data_dir))
    assert refused.returncode == 1 and "no such folder (is the backup drive mounted?)" in refused.stderr
    assert not unmounted.parent.exists()
    conn = sqlite3.connect(out)
    conn.execute("DROP TRIGGER records_no_delete")
    conn.execute("DELETE FROM records WHERE seq = 100")
    conn.commit()
    conn.close()
    result = kiosk("admin", "restore", "--from", str(out), "--data-dir", str(data_dir))
    assert result.returncode == 1 and "does not verify" in result.stderr and "where seq 100 belongs" in result.stderr
    assert verify_local_store(data_dir).records == 302


@pytest.mark.req("A11-7")
@pytest.mark.req("P11-10c")
def test_restore_older_than_the_central_head_is_refused(filled, data_dir, tmp_path):
    out = tmp_path / "k.bak"
    assert kiosk("admin", "backup", "--out", str(out), "--data-dir", str(data_dir)).returncode == 0
    with pytest.raises(BackupError, match="would fork the chain"):
        restore(out, data_dir, central_heads={"dev-1:1": 400}, moved_suffix="x")
