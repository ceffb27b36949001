import re
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


@pytest.mark.req("P11-10d")
def test_a_mistyped_data_dir_is_named_and_never_becomes_a_new_terminal(tmp_path):
    """Opening a store makes one where there is none, with a device key and a site key: an admin command on a
    mistyped --data-dir listed no users (exit 0) and left a new terminal behind that an admin might bootstrap.
    Only `kiosk admin bootstrap` makes a standalone kiosk's store."""
    data = tmp_path / "k"
    assert kiosk("admin", "bootstrap", "--user-id", "site.admin", "--name", "Ada Admin",
                 "--data-dir", str(data)).returncode == 0
    typo = tmp_path / "kk"
    for command in (("admin", "users", "list"), ("admin", "recipes", "list"), ("run",),
                    ("admin", "unlock", "ana.op", "--admin", "site.admin", "--reason", "locked out"),
                    ("sync", "status", "--url", f"sqlite:///{tmp_path / 'c.db'}"),
                    ("export", "audit", "--out", str(tmp_path / "a.csv"))):
        refused = kiosk(*command, "--data-dir", str(typo))
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert f"{typo / 'kiosk.db'}: no local store here (wrong --data-dir?)" in refused.stderr, command
        assert "Traceback" not in refused.stderr
    assert not typo.exists() and not (tmp_path / "a.csv").exists()
    assert "kiosk admin bootstrap --data-dir" in kiosk("run", "--data-dir", str(typo)).stderr
    # The right one still works, and a URL no central store can have is named there too.
    assert "site.admin" in kiosk("admin", "users", "list", "--data-dir", str(data)).stdout
    other = kiosk("sync", "now", "--url", "mysql://kiosk:s3cret@central/kiosk", "--data-dir", str(data))
    assert other.returncode == 2 and "not mysql://" in other.stderr and "Traceback" not in other.stderr
    assert "s3cret" not in other.stderr


@pytest.mark.req("A11-11")
def test_access_review_lists_users_roles_status_and_failures(tmp_path):
    data = tmp_path / "k"
    assert kiosk("admin", "bootstrap", "--user-id", "site.admin", "--name", "Ada Admin",
                 "--data-dir", str(data)).returncode == 0
    from kiosk.app import build_kiosk
    from kiosk.config import KioskConfig
    from kiosk.domain.clock import FakeClock

    from kiosk.services.auth import Actor

    k = build_kiosk(KioskConfig(), data, FakeClock())
    for _ in range(2):
        k.auth.authenticate("site.admin", "wrong password!", None)
    k.auth.authenticate("ghost", "wrong password!", None)
    k.auth.create_user(Actor("site.admin", "Ada Admin", "admin"), "pipe.op", "Pia | Pipe", ["operator"],
                       reason="new starter", identity_verified=True)
    created = k.directory.get("user", "pipe.op")["created_at"]
    k.close()
    out = tmp_path / "review.md"
    result = kiosk("export", "access-review", "--out", str(out), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "| site.admin | Ada Admin | admin | active | never | 2 | 0 | 0 |" in text
    assert "(unknown ids)" in text
    # Read by people: a "|" in a name stays in its cell, and times read as they do on screen.
    assert f"| pipe.op | Pia \\| Pipe | operator | active | never | 0 | 0 | 0 | {created[:10]} {created[11:16]} UTC |" in text
    assert ".000000Z" not in text and re.search(r"- generated: \d{4}-\d\d-\d\d \d\d:\d\d UTC\n", text)
    csv_out = tmp_path / "review.csv"
    assert kiosk("export", "access-review", "--format", "csv", "--out", str(csv_out), "--data-dir",
                 str(data)).returncode == 0
    assert f"pipe.op,Pia | Pipe,operator,active,never,0,0,0,{created}," in csv_out.read_text()  # stored forms


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


@pytest.mark.req("P11-10k")
@pytest.mark.req("A11-10")
def test_an_admin_checks_and_registers_a_recipe_version_from_the_command_line(tmp_path, clock):
    import pyotp

    from kiosk.app import build_kiosk, shipped_recipes
    from kiosk.config import KioskConfig
    from kiosk.demo import DEMO_PASSWORD
    from kiosk.domain.records import parse_raw
    from kiosk.system_clock import SystemClock
    from tests.ui.flows import make_demo

    demo, users = make_demo(tmp_path, clock)
    data = demo.data_dir
    demo.close()
    source = next(p for p in shipped_recipes() if p.name == "buffer-preparation.toml").read_text()
    recipe = tmp_path / "buffer-prep-5.toml"
    recipe.write_text(source.replace("version = 4", "version = 5"))

    def register(path, password=DEMO_PASSWORD, reason="new pH limits approved by QA (CC-2026-031)"):
        code = pyotp.TOTP(users["admin"].totp_secret).now()
        return kiosk("admin", "recipes", "register", str(path), "--admin", "admin", "--reason", reason,
                     "--data-dir", str(data), input=f"{password}\n{code}\n")

    checked = kiosk("admin", "recipes", "check", str(recipe))
    assert checked.returncode == 0 and "buffer-prep@5" in checked.stdout and "5 steps" in checked.stdout
    assert "Verified by operator or qa" in checked.stdout
    assert register(recipe, password="not the password").returncode == 1
    done = register(recipe)
    assert done.returncode == 0, done.stderr
    assert "buffer-prep@5 registered (a signed record)" in done.stdout and DEMO_PASSWORD not in done.stdout
    assert "buffer-prep@4 superseded: new batches start from buffer-prep@5" in done.stdout
    listed = kiosk("admin", "recipes", "list", "--data-dir", str(data)).stdout
    lines = {line.split()[0]: line for line in listed.splitlines()}
    assert lines["buffer-prep@4"].endswith("(superseded by buffer-prep@5)")
    assert "superseded" not in lines["buffer-prep@5"]
    again = register(recipe)
    assert again.returncode == 0 and "already registered with this content; nothing changed" in again.stdout
    ahead = tmp_path / "buffer-prep-6.toml"  # registered ahead of the day it applies
    ahead.write_text(source.replace("version = 4", 'version = 6\neffective_from = "2099-01-01"'))
    done = register(ahead)
    assert done.returncode == 0, done.stderr
    assert ("buffer-prep@6 takes effect on 2099-01-01 (site time); until then new batches start from the version "
            "in effect") in done.stdout and "superseded" not in done.stdout
    lines = {line.split()[0]: line for line in kiosk("admin", "recipes", "list", "--data-dir", str(data)).stdout
             .splitlines()}
    assert lines["buffer-prep@6"].endswith("(takes effect 2099-01-01)") and "(" not in lines["buffer-prep@5"]
    changed = tmp_path / "changed.toml"
    changed.write_text(source.replace("version = 4", "version = 5").replace('"1.480"', '"1.400"'))
    refused = register(changed)
    assert refused.returncode == 1 and "registered with other content; raise the version" in refused.stderr
    older = tmp_path / "buffer-prep-3.toml"
    older.write_text(source.replace("version = 4", "version = 3"))
    late = register(older)
    assert late.returncode == 0 and "note: buffer-prep@5 is registered too and is the current version" in late.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\nversion = 1\n')
    assert "missing 'title'" in kiosk("admin", "recipes", "check", str(bad)).stderr
    k = build_kiosk(KioskConfig(), data, SystemClock("Europe/Dublin"))
    registered = [parse_raw(r.raw)[0].body for r in k.store.iter_rows() if r.type == "recipe.registered"]
    k.close()
    assert [b["key"] for b in registered].count("buffer-prep@5") == 1
    assert registered[-1]["actor"]["user_id"] == "admin" and "CC-2026-031" in registered[-1]["reason"]
