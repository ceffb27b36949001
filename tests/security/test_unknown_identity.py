"""A password typed into the user ID field never reaches the audit trail (P11-300d, SEC-63B).

People type their password where the user id belongs: before the field has
focus, after a badge reader's beep, in a hurry. A failed sign-in with an id no
account has is still counted, throttled and alerted, but the permanent, synced
trail names it by a keyed fingerprint, never by the text. An investigator with
the site key can test a candidate id (`kiosk admin site-key fingerprint`).
"""

from __future__ import annotations

import subprocess
import sys

import pyotp
import pytest

from kiosk.app import build_kiosk, shipped_recipes
from kiosk.config import KioskConfig
from kiosk.domain.passwords import PasswordHasher
from kiosk.domain.records import parse_raw
from kiosk.domain.totp import SecretBox
from kiosk.services.auth import INVALID, INVALID_ID, Actor
from kiosk.services.signing import SigningError
from storage.sitekey import create_site_key

CHEAP = dict(time_cost=1, memory_kib=1024, parallelism=1)
# A password that is also a well-formed user id (letters, digits, '.', '-'): the case that used to be recorded.
PASSWORD = "Lantern.Orchard-1917"


@pytest.fixture
def terminal(tmp_path, clock):
    """A terminal where jane.op has her own password (and badge 1001); nobody is logged in yet."""
    kiosk = build_kiosk(KioskConfig(), tmp_path / "data", clock, device_id="line-1", hasher=PasswordHasher(**CHEAP))
    kiosk.auth.bootstrap("site.admin", "Ada Admin")
    issued = kiosk.auth.create_user(Actor("site.admin", "Ada Admin", "admin"), "jane.op", "Jane Operator",
                                    ["operator"], reason="new starter", identity_verified=True, badge_id="1001")
    clock.advance(31)
    assert kiosk.auth.change_password("jane.op", issued.temporary_password, PASSWORD,
                                      pyotp.TOTP(issued.totp_secret).at(clock.now())).ok
    kiosk.auth.accept_first_use(kiosk.auth.user("jane.op"))
    kiosk.secret = issued.totp_secret
    yield kiosk
    kiosk.close()


def _code(kiosk, clock):
    clock.advance(31)
    return pyotp.TOTP(kiosk.secret).at(clock.now())


def _nowhere_on_disk(kiosk, *texts: str) -> None:
    """None of the texts, as typed or as a user id is normalised, is in any file of the data directory."""
    files = [f for f in kiosk.data_dir.rglob("*") if f.is_file()]
    assert files
    for text in texts:
        for form in {text, text.casefold()}:
            assert not [f.name for f in files if form.encode() in f.read_bytes()], form


def _alerts(kiosk, kind):
    return [a for a in kiosk.auth.alerts(open_only=False) if a["kind"] == kind]


def _records(kiosk, kind):
    return [parse_raw(row.raw)[0] for row in kiosk.store.iter_rows() if row.type == kind]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "kiosk.cli", "admin", "site-key", "fingerprint", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.req("P11-300d")
@pytest.mark.req("SEC-63B")
def test_a_password_typed_as_the_user_id_is_counted_and_alerted_but_never_recorded(terminal, clock):
    kiosk = terminal
    # The password went into the user ID field; the password field got it again, or nothing.
    for password in (PASSWORD, ""):
        clock.advance(5)
        assert kiosk.session.login(PASSWORD, password or "x", "000000").message == INVALID
    assert kiosk.session.login("jane.op", PASSWORD, _code(kiosk, clock)).ok
    fingerprint = kiosk.auth.unknown_identity(PASSWORD)
    assert fingerprint.startswith("unknown-id:") and len(fingerprint) == len("unknown-id:") + 16
    alerts = _alerts(kiosk, "auth.unknown_user")
    assert len(alerts) == 2 and all(fingerprint in a["message"] for a in alerts)
    assert [r.body["attempted_user_id"] for r in _records(kiosk, "auth.failed")] == [fingerprint] * 2
    _nowhere_on_disk(kiosk, PASSWORD)
    # The investigator's check: the fingerprint of a candidate id, from the terminal's site key.
    data = str(kiosk.data_dir)
    assert _cli(PASSWORD.upper(), "--data-dir", data).stdout.strip() == fingerprint  # ids are case-insensitive
    other = _cli("john.op", "--data-dir", data)
    assert other.returncode == 0 and other.stdout.strip() not in ("", fingerprint)
    invalid = _cli("two words", "--data-dir", data)
    assert invalid.returncode != 0 and INVALID_ID in invalid.stderr


@pytest.mark.req("P11-300d")
def test_an_unknown_id_is_still_throttled_per_id_under_its_fingerprint(terminal, clock):
    kiosk = terminal
    waits = []
    for _ in range(4):
        clock.advance(1)
        waits.append(kiosk.auth.authenticate("ghost.op", "wrong password here", "000000").retry_after_s)
    assert waits[0] == 0 and waits[-1] > 0  # the per-id (and per-device) delay applies
    key = kiosk.auth.unknown_identity("ghost.op")
    assert kiosk.directory.get("failures.id", key)["count"] >= 3
    assert kiosk.directory.get("failures.id", "ghost.op") is None


@pytest.mark.req("P11-300d")
def test_fingerprints_link_terminals_of_one_site_and_mean_nothing_elsewhere(tmp_path):
    key = create_site_key(tmp_path / "a")
    same, other = SecretBox(key), SecretBox(create_site_key(tmp_path / "b"))
    assert same.fingerprint("id", "ghost.op") == SecretBox(key).fingerprint("id", "ghost.op")
    assert same.fingerprint("id", "ghost.op") != other.fingerprint("id", "ghost.op")
    assert same.fingerprint("id", "1001") != same.fingerprint("badge", "1001")
    assert "ghost" not in same.fingerprint("id", "ghost.op")


@pytest.mark.req("P11-300d")
def test_an_unknown_badge_is_recorded_by_fingerprint(terminal, clock):
    kiosk = terminal
    assert kiosk.auth.badge_holder("1001", PASSWORD) == "jane.op"
    assert kiosk.auth.badge_holder(" 9F3K-77Q2 ", "anything typed") is None
    [failed] = _records(kiosk, "auth.failed")
    assert failed.body["cause"] == "unknown_badge"
    assert failed.body["attempted_user_id"].startswith("unknown-badge:")
    assert _cli("9F3K-77Q2", "--badge", "--data-dir", str(kiosk.data_dir)).stdout.strip() == \
        failed.body["attempted_user_id"]
    _nowhere_on_disk(kiosk, "9F3K-77Q2")


@pytest.mark.req("P11-10g")
@pytest.mark.req("P11-300d")
def test_signing_as_someone_else_names_them_but_a_typed_password_stays_out(terminal, clock):
    kiosk = terminal
    admin = Actor("site.admin", "Ada Admin", "admin")
    kiosk.auth.create_user(admin, "omar.op", "Omar Operator", ["operator"], reason="new starter",
                           identity_verified=True)
    for path in shipped_recipes():
        kiosk.signing.register_recipe_file(path, admin.body(), "initial recipes")
    assert kiosk.session.login("jane.op", PASSWORD, _code(kiosk, clock)).ok
    kiosk.signing.create_batch("B-1", "buffer-prep@4")
    prepared = kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"})
    for typed in ("omar.op", PASSWORD, "not an id at all"):
        with pytest.raises(SigningError, match="only sign as yourself"):
            kiosk.signing.sign(prepared, PASSWORD, typed, _code(kiosk, clock))
    messages = sorted(a["message"] for a in _alerts(kiosk, "sign.other_identity"))
    assert messages == sorted([
        "attempt to sign as 'omar.op' in the session of 'jane.op'",
        f"attempt to sign as {kiosk.auth.unknown_identity(PASSWORD)} in the session of 'jane.op'",
        f"attempt to sign as {INVALID_ID} in the session of 'jane.op'",
    ])
    _nowhere_on_disk(kiosk, PASSWORD, "not an id at all")
    # Her own id, typed as it is, still signs.
    kiosk.signing.sign(prepared, PASSWORD, "Jane.Op", _code(kiosk, clock))
