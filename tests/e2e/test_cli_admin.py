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
