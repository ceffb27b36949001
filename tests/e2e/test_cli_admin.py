import subprocess
import sys

import pytest


def kiosk(*args, input=None):
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True, timeout=120,
                          input=input)


@pytest.mark.req("P11-100")
@pytest.mark.req("P11-10d")
def test_bootstrap_prints_one_time_credentials_once(tmp_path):
    data = tmp_path / "k"
    first = kiosk("admin", "bootstrap", "--user-id", "Site.Admin", "--name", "Ada Admin", "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    assert "user id:            site.admin" in first.stdout
    assert "temporary password:" in first.stdout and "otpauth://totp/" in first.stdout
    assert "█" in first.stdout or "▀" in first.stdout  # the QR code
    again = kiosk("admin", "bootstrap", "--user-id", "other", "--name", "Other", "--data-dir", str(data))
    assert again.returncode == 1 and "only once" in again.stderr
    listed = kiosk("admin", "users", "list", "--data-dir", str(data))
    assert "site.admin" in listed.stdout and "admin" in listed.stdout


def test_bad_config_stops_admin_commands_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[session]\nidle_timeout_s = 0\n")
    result = kiosk("admin", "users", "list", "--data-dir", str(tmp_path / "k"), "--config", str(bad))
    assert result.returncode == 2 and "idle_timeout_s" in result.stderr and "30 .. 3600" in result.stderr


@pytest.mark.req("A11-11")
def test_access_review_lists_users_roles_status_and_failures(tmp_path):
    data = tmp_path / "k"
    assert kiosk("admin", "bootstrap", "--user-id", "site.admin", "--name", "Ada Admin",
                 "--data-dir", str(data)).returncode == 0
    from kiosk.app import build_kiosk
    from kiosk.config import KioskConfig
    from kiosk.domain.clock import FakeClock

    k = build_kiosk(KioskConfig(), data, FakeClock())
    for _ in range(2):
        k.auth.authenticate("site.admin", "wrong password!", None)
    k.auth.authenticate("ghost", "wrong password!", None)
    k.close()
    out = tmp_path / "review.md"
    result = kiosk("export", "access-review", "--out", str(out), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "| site.admin | Ada Admin | admin | active | never | 2 | 0 | 0 |" in text
    assert "(unknown ids)" in text


@pytest.mark.req("P11-10d")
def test_a_terminal_joining_a_site_refuses_to_start_without_the_site_key(tmp_path):
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(f'[sync]\ncentral_url = "sqlite:///{tmp_path / "c.db"}"\n')
    result = kiosk("run", "--data-dir", str(tmp_path / "k"), "--config", str(cfg))
    assert result.returncode == 2 and "site.key: missing" in result.stderr and "install the site's key" in result.stderr
    assert not (tmp_path / "k" / "device.key").exists()  # nothing was created before the refusal


@pytest.mark.req("A11-12")
def test_a_site_key_is_created_once_installed_on_terminals_and_compared_by_its_check_value(tmp_path):
    import os
    import stat

    key_file = tmp_path / "site.key"
    made = kiosk("admin", "site-key", "create", "--out", str(key_file))
    assert made.returncode == 0, made.stderr
    key = key_file.read_bytes()
    assert len(key) == 32 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    check = made.stdout.split("check value: ")[1].split()[0]
    assert key.hex() not in made.stdout and check in made.stdout  # the key itself is never printed
    again = kiosk("admin", "site-key", "create", "--out", str(key_file))
    assert again.returncode == 2 and "refusing to replace" in again.stderr and key_file.read_bytes() == key
    # Two terminals get the same key and show the same check value as the admin's copy.
    for name in ("line-1", "line-2"):
        done = kiosk("admin", "site-key", "install", str(key_file), "--data-dir", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        installed = tmp_path / name / "site.key"
        assert installed.read_bytes() == key and stat.S_IMODE(installed.stat().st_mode) == 0o600
        shown = kiosk("admin", "site-key", "check", "--data-dir", str(tmp_path / name))
        assert shown.returncode == 0 and check in shown.stdout
    same = kiosk("admin", "site-key", "install", str(key_file), "--data-dir", str(tmp_path / "line-1"))
    assert same.returncode == 0 and "already installed" in same.stdout
    # Another site's key is never installed over this one; a key file others can read is refused.
    other = tmp_path / "other.key"
    assert kiosk("admin", "site-key", "create", "--out", str(other)).returncode == 0
    clash = kiosk("admin", "site-key", "install", str(other), "--data-dir", str(tmp_path / "line-1"))
    assert clash.returncode == 2 and "never replaced" in clash.stderr
    assert (tmp_path / "line-1" / "site.key").read_bytes() == key
    missing = kiosk("admin", "site-key", "install", str(tmp_path / "nope.key"), "--data-dir", str(tmp_path / "line-3"))
    assert missing.returncode == 2 and "no such key file" in missing.stderr
    os.chmod(other, 0o644)
    loose = kiosk("admin", "site-key", "install", str(other), "--data-dir", str(tmp_path / "line-3"))
    assert loose.returncode == 2 and "chmod 600" in loose.stderr and not (tmp_path / "line-3" / "site.key").exists()
