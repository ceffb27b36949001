import datetime as dt
import unicodedata

import pyotp
import pytest
from hypothesis import given, strategies as st

from kiosk.domain.clock import UTC
from kiosk.domain.identity import InvalidText, InvalidUserId, check_text, normalize_user_id
from kiosk.domain.lockout import FailureState, LockoutPolicy, decide
from kiosk.domain.passwords import Blocklist, PasswordHasher, PasswordPolicy, PasswordRejected, check_new_password
from kiosk.domain.totp import SecretBox, SecretBoxError, new_secret, verify_totp

T0 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.mark.req("P11-300a")
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=2, max_size=40))
def test_user_ids_normalise_idempotently_and_case_insensitively(text):
    try:
        uid = normalize_user_id(text)
    except InvalidUserId:
        return
    assert normalize_user_id(uid) == uid
    assert normalize_user_id(text.upper()) == uid == normalize_user_id(text.lower())


@pytest.mark.req("P11-300a")
def test_compatibility_forms_are_the_same_id():
    assert normalize_user_id("ＪＡＮＥ.ＯＰ") == normalize_user_id("jane.op") == "jane.op"
    for bad in ("", " ", "a", "-jane", "jane op", "jäne\x00", "x" * 65, "jane[op]"):
        with pytest.raises(InvalidUserId):
            normalize_user_id(bad)


@pytest.mark.parametrize("text", ["", "   ", "Jane\x1b[31m", "[bold]Jane", "Jane\u202eevil", "x" * 121, "a\nb"])
def test_names_with_controls_markup_or_overlong_are_refused(text):
    with pytest.raises(InvalidText, match="printed name"):
        check_text("printed name", text)


def test_names_are_nfc_and_trimmed():
    assert check_text("printed name", "  Zoe\u0308 Ångström ") == unicodedata.normalize("NFC", "Zoe\u0308 Ångström")


BL = Blocklist(["password1234", "Tr0ub4dor&3", "# comment"])
POLICY = PasswordPolicy()


@pytest.mark.req("SEC-63B")
@pytest.mark.parametrize("password, why", [
    ("short", "at least 12"), ("PASSWORD1234", "common or breached"), ("jane.op-is-here", "user id"),
    ("ilikeoperator99", "name"), ("x" * 129, "at most 128"), (" " * 20, "spaces"),
])
def test_password_rules(password, why):
    with pytest.raises(PasswordRejected, match=why) as err:
        check_new_password(password, policy=POLICY, user_id="jane.op", printed_name="Jane Operator", blocklist=BL,
                           totp_enrolled=False)
    assert password.strip() == "" or password not in str(err.value)


@pytest.mark.req("SEC-63B")
def test_no_composition_rules_long_passphrases_pass_and_totp_allows_8():
    ok = check_new_password("correct horse battery staple", policy=POLICY, user_id="jane.op",
                            printed_name="Jane Operator", blocklist=BL, totp_enrolled=False)
    assert ok == "correct horse battery staple"
    assert check_new_password("zq8!vwxy", policy=POLICY, user_id="j1", printed_name="J", blocklist=BL, totp_enrolled=True)
    assert check_new_password("ｆｕｌｌｗｉｄｔｈ ｐａｓｓ", policy=POLICY, user_id="j1", printed_name="J",
                              blocklist=BL, totp_enrolled=False) == "fullwidth pass"
    assert len(Blocklist(open("config/password-blocklist.txt"))) >= 10_000


def test_shipped_blocklist_catches_common_passwords():
    bl = Blocklist(open("config/password-blocklist.txt"))
    assert "qwertyuiop" in bl and "Password123" in bl


@pytest.mark.req("SEC-63B")
def test_argon2id_hash_verify_dummy_counts_calls():
    hasher = PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1)
    stored = hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert hasher.verify(stored, "correct horse battery staple") and not hasher.verify(stored, "nope")
    hasher.verify_dummy("anything")
    assert hasher.calls == 3 and not hasher.needs_rehash(stored)
    assert "argon2" in repr(hasher) and stored not in repr(hasher)


@pytest.mark.req("SEC-63B")
def test_totp_is_single_use_within_its_window():
    secret = new_secret()
    code = pyotp.TOTP(secret).at(T0)
    step = verify_totp(secret, code, T0, -1)
    assert step == int(T0.timestamp()) // 30
    assert verify_totp(secret, code, T0 + dt.timedelta(seconds=20), step) is None  # replay refused
    assert verify_totp(secret, code, T0 + dt.timedelta(seconds=29), -1) == step   # ±1 step window
    assert verify_totp(secret, code, T0 + dt.timedelta(seconds=95), -1) is None
    assert verify_totp(secret, "12345", T0, -1) is None and verify_totp(secret, "abcdef", T0, -1) is None


def test_secret_box_binds_the_owner_and_hides_secrets():
    box = SecretBox(b"k" * 32)
    sealed = box.encrypt("totp:jane", "JBSWY3DPEHPK3PXP")
    assert "JBSWY3DP" not in sealed and box.decrypt("totp:jane", sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretBoxError) as err:
        box.decrypt("totp:bob", sealed)
    assert "JBSWY3DP" not in str(err.value)
    with pytest.raises(SecretBoxError):
        SecretBox(b"x" * 32).decrypt("totp:jane", sealed)


@pytest.mark.req("P11-300d")
def test_progressive_delay_suspension_and_ageing_out():
    policy = LockoutPolicy()
    state = FailureState()
    delays = []
    now = T0
    for _ in range(5):
        state = state.after_failure(now, policy)
        delays.append(decide(state, now, policy))
    assert delays == [(0.0, False), (0.0, False), (2.0, False), (4.0, False), (8.0, True)]
    assert decide(state, now + dt.timedelta(seconds=3), policy) == (5.0, True)
    later = now + dt.timedelta(hours=25)
    assert decide(state, later, policy) == (0.0, False)
    assert state.after_failure(later, policy).count == 1
    with pytest.raises(ValueError):
        LockoutPolicy(threshold=2)
