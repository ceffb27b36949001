"""Brute force and enumeration (P11-300d, SEC-63B): 1,000 wrong passwords against one account and
sprayed across many; suspension at the threshold, progressive delays, alerts, identical answers and
argon2 work for unknown ids and wrong passwords, and an admin path that survives the lockout.

argon2 runs with cheap parameters (the work per attempt is counted, not timed); the lockout policy
is the shipped default: delays from the 3rd failure (2 s doubling to 30 s), suspension at 5.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pyotp
import pytest

from kiosk.app import build_kiosk
from kiosk.config import KioskConfig
from kiosk.domain.clock import UTC, FakeClock
from kiosk.domain.lockout import delay_for
from kiosk.domain.passwords import PasswordHasher
from kiosk.services.auth import INVALID, SUSPENDED, THROTTLED, Actor, AuthError
from kiosk.system_clock import SystemClock
from storage.verify_local import verify_local_store

CHEAP = dict(time_cost=1, memory_kib=1024, parallelism=1)
GOOD = "lantern orchard seventeen"
WRONG = "Winter2026!!"


def _kiosk(path, clock, device="line-1"):
    return build_kiosk(KioskConfig(), path, clock, device_id=device, hasher=PasswordHasher(**CHEAP))


def _people(kiosk, clock, ids, roles=("operator",)):
    """Users with their own (changed) passwords; returns {user id: TOTP secret}."""
    if not kiosk.auth.any_admin():
        issued = kiosk.auth.bootstrap("site.admin", "Ada Admin")
        clock.advance(31)
        kiosk.auth.change_password("site.admin", issued.temporary_password, GOOD,
                                   pyotp.TOTP(issued.totp_secret).at(clock.now()))
        secrets = {"site.admin": issued.totp_secret}
    else:
        secrets = {}
    admin = Actor("site.admin", "Ada Admin", "admin")
    for uid in ids:
        issued = kiosk.auth.create_user(admin, uid, f"Person {uid}", list(roles), reason="new starter",
                                        identity_verified=True)
        clock.advance(31)
        kiosk.auth.change_password(uid, issued.temporary_password, GOOD, pyotp.TOTP(issued.totp_secret).at(clock.now()))
        secrets[uid] = issued.totp_secret
    return secrets


def _attempt(kiosk, uid, password=WRONG, code="000000"):
    before = kiosk.auth.hasher.calls
    result = kiosk.auth.authenticate(uid, password, code)
    return result, kiosk.auth.hasher.calls - before


def _alerts(kiosk, kind):
    return [a for a in kiosk.auth.alerts(open_only=False) if a["kind"] == kind]


@pytest.mark.req("P11-300d")
@pytest.mark.req("SEC-63B")
def test_1000_wrong_passwords_against_one_account(tmp_path, clock):
    kiosk = _kiosk(tmp_path / "k", clock)
    secrets = _people(kiosk, clock, ["jane.op"])
    evaluated = refused_waits = 0
    waits = []
    while evaluated < 1000:
        result, hashed = _attempt(kiosk, "jane.op")
        assert not result.ok
        if result.retry_after_s:
            # Throttled: no password check at all, and the answer says how long to wait.
            assert hashed == 0 and result.message == THROTTLED.format(wait=result.retry_after_s)
            waits.append(result.retry_after_s)
            refused_waits += 1
            clock.advance(result.retry_after_s)
            continue
        assert hashed == 1 and result.message == INVALID  # never "suspended" to a guesser
        evaluated += 1
        if evaluated == 5:
            assert kiosk.auth.user("jane.op").status == "suspended"
        elif evaluated < 5:
            assert kiosk.auth.user("jane.op").status == "active"
    # Progressive delays: 2, 4, 8, 16 s, then capped at 30 s for every attempt after that.
    assert waits[:5] == [delay_for(n, kiosk.auth.lockout) for n in range(3, 8)] == [2, 4, 8, 16, 30]
    assert set(waits[5:]) == {30} and refused_waits == 1000 - 3  # every attempt after the 3rd failure
    # Alerts: every counted failure, one suspension; the device alert once, at the threshold.
    assert len(_alerts(kiosk, "auth.bad_password")) == 1000
    assert len(_alerts(kiosk, "account.suspended")) == 1
    assert len(_alerts(kiosk, "device.failures")) == 1
    # The real password, after the last delay: only now is the suspension told.
    clock.advance(31)
    result, hashed = _attempt(kiosk, "jane.op", GOOD, pyotp.TOTP(secrets["jane.op"]).at(clock.now()))
    assert not result.ok and result.message == SUSPENDED and hashed == 1
    assert verify_local_store(kiosk.data_dir).ok
    kiosk.close()


PAUSES = [0, 1, 2, 5, 31, 0, 3, 17, 64, 0] * 12  # one attacker's timing: bursts, respected waits, pauses


def _wrong_code(secret, moment):
    """A six-digit code that is not valid at ``moment`` (±1 step), so a guess can never succeed by luck."""
    totp = pyotp.TOTP(secret)
    valid = {totp.at(moment + dt.timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


@pytest.mark.req("P11-300d")
@pytest.mark.req("SEC-63B")
@pytest.mark.parametrize("wrong_factor", ["password", "code"])
def test_unknown_user_and_wrong_credentials_answer_and_cost_the_same(tmp_path, wrong_factor):
    """Two terminals, the same attack script: one knows jane.op, the other has never heard of her.
    Every answer (text, wait) and every argon2 call is identical, attempt by attempt."""
    transcripts = []
    codes: list[str] = []
    for known in (True, False):
        clock = FakeClock(dt.datetime(2026, 11, 24, 10, 0, tzinfo=UTC), zone="Europe/Dublin")
        kiosk = _kiosk(tmp_path / f"k-{known}", clock)
        secrets = _people(kiosk, clock, ["jane.op"] if known else ["omar.op"])
        password = GOOD if wrong_factor == "code" else WRONG
        lines = []
        for n, pause in enumerate(PAUSES):
            clock.advance(pause)
            if known:
                codes.append(_wrong_code(secrets["jane.op"], clock.now()))
            result, hashed = _attempt(kiosk, "jane.op", password, codes[n])
            lines.append((result.ok, result.message, result.retry_after_s, hashed))
        transcripts.append(lines)
        if known:
            assert kiosk.auth.user("jane.op").status == "suspended"
        kiosk.close()
    assert transcripts[0] == transcripts[1]
    assert sum(line[3] for line in transcripts[0]) > 20  # many attempts were really checked, not only throttled
    assert {line[1] for line in transcripts[0]} <= {INVALID} | {THROTTLED.format(wait=w)
                                                                  for w in range(1, 31)}


@pytest.mark.req("P11-300d")
@pytest.mark.req("A11d-11")
def test_1000_wrong_passwords_sprayed_over_many_accounts_then_the_admin_path(tmp_path):
    # The spray happens in the hours before now, so the admin CLI (real clock) runs after it.
    start = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(hours=12)
    clock = FakeClock(start, zone="Europe/Dublin")
    kiosk = _kiosk(tmp_path / "k", clock)
    operators = [f"op.{i:02d}" for i in range(30)]
    supervisors = [f"sup.{i}" for i in range(3)]
    secrets = _people(kiosk, clock, operators)
    secrets.update(_people(kiosk, clock, supervisors, roles=("supervisor",)))
    unknown = [f"ghost.{i:02d}" for i in range(10)]
    targets = operators + supervisors + unknown + ["site.admin"]
    evaluated = hash_calls = unknown_tried = 0
    while evaluated < 1000:
        uid = targets[evaluated % len(targets)]
        result, hashed = _attempt(kiosk, uid)
        assert not result.ok
        if result.retry_after_s:  # the terminal throttles every account at once (device counter)
            assert hashed == 0
            clock.advance(result.retry_after_s)
            continue
        assert result.message == INVALID and hashed == 1
        evaluated += 1
        hash_calls += hashed
        unknown_tried += uid in unknown
    assert hash_calls == 1000
    people = kiosk.auth.users()
    assert {u.user_id for u in people if u.status == "suspended"} == set(operators + supervisors + ["site.admin"])
    assert len(_alerts(kiosk, "account.suspended")) == len(operators) + len(supervisors) + 1
    assert len(_alerts(kiosk, "auth.unknown_user")) == unknown_tried
    assert len(_alerts(kiosk, "device.failures")) == 1
    kiosk.close()

    data = str(tmp_path / "k")

    def admin_unlock(user, code_for):
        code = pyotp.TOTP(secrets[code_for] if code_for != "site.admin" else admin_secret).now()
        return subprocess.run([sys.executable, "-m", "kiosk.cli", "admin", "unlock", user, "--admin", "site.admin",
                               "--reason", "locked by a password spray; identity checked", "--data-dir", data],
                              input=f"{GOOD}\n{code}\n", capture_output=True, text=True, timeout=120)

    admin_secret = secrets["site.admin"]
    # Every supervisor and the admin are suspended: the admin, with password and code at the console,
    # still unlocks a supervisor (break-glass, alerted) ...
    done = admin_unlock("sup.0", "site.admin")
    assert done.returncode == 0, done.stderr
    assert "sup.0 is active; the unlock is recorded and closes its suspension alert, and supervisors are alerted" in (
        done.stdout) and GOOD not in done.stdout + done.stderr
    # ... but never themself.
    again = subprocess.run([sys.executable, "-m", "kiosk.cli", "admin", "unlock", "site.admin", "--admin", "site.admin",
                            "--reason", "self unlock attempt", "--data-dir", data],
                           input=f"{GOOD}\n{pyotp.TOTP(admin_secret).at(dt.datetime.now(UTC) + dt.timedelta(seconds=30))}\n",
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "cannot unlock your own account" in again.stderr

    # The unlocked supervisor then unlocks the admin through the ordinary (two-person) path.
    real = _kiosk(tmp_path / "k", SystemClock("Europe/Dublin"))
    try:
        code = pyotp.TOTP(secrets["sup.0"]).at(dt.datetime.now(UTC) + dt.timedelta(seconds=30))
        assert real.auth.unlock("sup.0", GOOD, code, "site.admin", "admin locked by the spray").user.status == "active"
        kinds = [a["kind"] for a in real.auth.alerts(open_only=False)]
        assert kinds.count("account.break_glass_unlock") == 1
        message = next(a["message"] for a in real.auth.alerts(open_only=False)
                       if a["kind"] == "account.break_glass_unlock")
        assert "whose own account is suspended" in message
    finally:
        real.close()
    assert verify_local_store(tmp_path / "k").ok


@pytest.mark.req("P11-300d")
def test_a_suspended_non_admin_gets_no_break_glass(tmp_path, clock):
    kiosk = _kiosk(tmp_path / "k", clock)
    secrets = _people(kiosk, clock, ["sup.0", "sup.1"], roles=("supervisor",))
    for uid in ("sup.0", "sup.1"):
        for _ in range(5):
            clock.advance(60)
            _attempt(kiosk, uid)
    clock.advance(60)
    with pytest.raises(AuthError) as refused:
        kiosk.auth.unlock("sup.0", GOOD, pyotp.TOTP(secrets["sup.0"]).at(clock.now()), "sup.1", "colleague",
                          break_glass=True)
    assert str(refused.value) == SUSPENDED
    assert kiosk.auth.user("sup.1").status == "suspended"
    kiosk.close()
