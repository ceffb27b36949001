import sqlite3
import subprocess
import sys

import pytest

from kiosk.domain.clock import FakeClock
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore


def kiosk(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def filled(tmp_path):
    data = tmp_path / "data"
    clock = FakeClock()
    store = LocalStore.open(data, load_or_create_identity(data, "line-3"), clock)
    for i in range(300):
        clock.advance(1)
        store.append("step.signed", {"i": i})
    store.close()
    return data


@pytest.mark.req("P11-10a")
def test_verify_prints_summary_and_exits_0(filled):
    result = kiosk("verify", "--data-dir", str(filled))
    assert result.returncode == 0, result.stderr
    assert "chain line-3:1: 302 records, 1 checkpoints" in result.stdout
    assert "OK: 302 records in 1 chain(s) verified" in result.stdout


@pytest.mark.req("P11-10e")
def test_verify_names_the_first_bad_record_and_exits_1(filled):
    conn = sqlite3.connect(filled / "kiosk.db")
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("UPDATE records SET raw = replace(raw, '\"i\":41', '\"i\":42') WHERE seq = 43")
    conn.commit()
    conn.close()
    result = kiosk("verify", "--data-dir", str(filled))
    assert result.returncode == 1
    assert "FAILED: first bad record: record line-3:1 #43: bad signature" in result.stdout


@pytest.mark.req("P11-10c")
def test_verify_detects_a_truncated_tail(filled):
    conn = sqlite3.connect(filled / "kiosk.db")
    conn.execute("DROP TRIGGER records_no_delete")
    conn.execute("DELETE FROM records WHERE seq > 290")
    conn.commit()
    conn.close()
    result = kiosk("verify", "--data-dir", str(filled))
    assert result.returncode == 1
    assert "truncated" in result.stdout and "tail was removed" in result.stdout


def test_verify_with_no_store_is_a_usage_error(tmp_path):
    result = kiosk("verify", "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "no local store here" in result.stderr


def test_kiosk_data_dir_env_is_honoured(filled):
    import os
    env = dict(os.environ, KIOSK_DATA_DIR=str(filled))
    assert kiosk("verify", env=env).returncode == 0
