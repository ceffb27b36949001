"""`kiosk run` as IT starts it on a terminal: in a terminal (a pty), with a configuration file."""

import json
import os
import pty
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.test_cli_admin import kiosk


def config_changes(data):
    db = sqlite3.connect(f"file:{data / 'kiosk.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT raw FROM records WHERE type = 'config.changed' ORDER BY seq").fetchall()
    finally:
        db.close()
    return [json.loads(raw)["body"] for (raw,) in rows]


def start_and_stop(data, cfg):
    """Start the kiosk in a pty until its login screen is drawn, then cut its power: the settings are recorded
    before anyone can sign under them."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "run", "--data-dir", str(data), "--config",
                             str(cfg)], stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = []

    def drain():  # a pty nobody reads fills up and blocks the app
        try:
            while chunk := os.read(leader, 65536):
                seen.append(chunk)
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and b"Log in to continue" not in b"".join(seen):
            time.sleep(0.1)
        assert proc.poll() is None and time.monotonic() < deadline, b"".join(seen).decode(errors="replace")[-2000:]
    finally:
        proc.kill()
        proc.wait(10)
        os.close(leader)
    return config_changes(data)


@pytest.mark.req("A11-10")
def test_kiosk_run_records_the_settings_in_effect_and_each_change(tmp_path):
    data, cfg = tmp_path / "k", tmp_path / "kiosk.toml"
    cfg.write_text('[site]\nname = "Plant 2"\n[session]\nidle_timeout_s = 300\n')
    made = kiosk("admin", "bootstrap", "--user-id", "site.admin", "--name", "Ada Admin", "--data-dir", str(data),
                 "--config", str(cfg))
    assert made.returncode == 0, made.stderr
    assert config_changes(data) == []  # an admin command is not the kiosk starting
    first = start_and_stop(data, cfg)
    assert len(first) == 1 and first[0]["source"] == str(cfg) and first[0]["old"] == {}
    assert first[0]["settings"]["site.name"] == "Plant 2" and first[0]["settings"]["session.idle_timeout_s"] == 300
    cfg.write_text('[site]\nname = "Plant 2"\n[session]\nidle_timeout_s = 120\n')
    second = start_and_stop(data, cfg)
    assert len(second) == 2
    assert second[1]["old"] == {"session.idle_timeout_s": 300} and second[1]["new"] == {"session.idle_timeout_s": 120}
    assert len(start_and_stop(data, cfg)) == 2  # started again unchanged: nothing new
