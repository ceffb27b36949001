import pytest

from kiosk.domain.totp import SecretBoxError
from kiosk.services.auth import (DEACTIVATED, INVALID, SUSPENDED, THROTTLED, Actor, InvalidInput, NotPermitted,
                                 PasswordTyped)
from tests.services.conftest import totp_now


def make_user(kiosk, admin, uid="jane.op", roles=("operator",), name="Jane Operator"):
    actor, _ = admin
    return kiosk.auth.create_user(actor, uid, name, roles, reason="new starter", identity_verified=True)


def login(kiosk, clock, uid, password, issued=None, code=None):
    code = code if code is not None else (totp_now(issued.totp_secret, clock) if issued and issued.totp_secret else None)
    return kiosk.auth.authenticate(uid, password, code)


@pytest.mark.req("P11-100")
@pytest.mark.req("P11-10d")
def test_bootstrap_once_and_user_creation_is_recorded_with_identity_attestation(kiosk, admin, clock):
    actor, issued = admin
    assert "temporary_password" not in repr(issued) and issued.totp_uri.startswith("otpauth://totp/")
    with pytest.raises(NotPermitted, match="only once"):
        kiosk.auth.bootstrap("other", "Other")
    with pytest.raises(InvalidInput, match="verified this person's identity"):
        kiosk.auth.create_user(actor, "bob", "Bob", ["operator"], reason="starter", identity_verified=False)
    jane = make_user(kiosk, admin)
    rows = [r for r in kiosk.store.iter_rows() if r.type == "user.created"]
    assert len(rows) == 2
    from kiosk.domain.records import parse_raw
    body = parse_raw(rows[1].raw)[0].body
    assert body["identity_verification"] == {"attested_by": "site.admin", "method": "photo ID checked in person"}
    assert body["actor"]["user_id"] == "site.admin" and body["new"]["roles"] == ["operator"]
    # The record carries the credential sealed to its owner: no hash, password or TOTP secret in clear,
    # and it opens only as jane.op's (a random ciphertext may spell anything, so test what it hides).
    sealed, sealed_totp = body["credential"]["enc"], body["totp"]["enc"]
    for clear in ("$argon2", jane.temporary_password, jane.totp_secret):
        assert clear not in rows[1].raw.decode()
    stored_hash = kiosk.auth.box.decrypt("password:jane.op", sealed)
    assert kiosk.auth.hasher.verify(stored_hash, jane.temporary_password)
    assert kiosk.auth.box.decrypt("totp:jane.op", sealed_totp) == jane.totp_secret
    with pytest.raises(SecretBoxError):
        kiosk.auth.box.decrypt("password:site.admin", sealed)


@pytest.mark.req("P11-300a")
def test_ids_are_unique_case_insensitively_and_never_reused(kiosk, admin):
    actor, _ = admin
    make_user(kiosk, admin, "Jane.Op")
    with pytest.raises(InvalidInput, match="taken"):
        make_user(kiosk, admin, "JANE.OP")
    kiosk.auth.update_user(actor, "jane.op", status="deactivated", reason="left the company")
    with pytest.raises(InvalidInput, match="never reused"):
        make_user(kiosk, admin, "jane.op")


@pytest.mark.req("SEC-63B")
def test_login_with_temporary_password_requires_change(kiosk, admin, clock):
    issued = make_user(kiosk, admin)
    result = login(kiosk, clock, "jane.op", issued.temporary_password, issued)
    assert result.ok and result.must_change_password and result.needs_first_use
    assert result.components == ("user_id", "password", "totp")


@pytest.mark.req("SEC-63B")
@pytest.mark.req("P11-300d")
def test_unknown_user_wrong_password_wrong_code_look_and_cost_the_same(kiosk, admin, clock):
    issued = make_user(kiosk, admin)
    hasher = kiosk.auth.hasher
    outcomes = []
    for uid, pw, code in [("nobody", "x" * 12, "123456"), ("jane.op", "wrong password!", None),
                          ("jane.op", issued.temporary_password, "000000")]:
        before = hasher.calls
        result = kiosk.auth.authenticate(uid, pw, code)
        outcomes.append((result.ok, result.message, hasher.calls - before))
        clock.advance(60)
    assert outcomes == [(False, INVALID, 1)] * 3


@pytest.mark.req("P11-300d")
@pytest.mark.req("A11d-11")
def test_progressive_delay_then_suspension_then_supervisor_unlock(kiosk, admin, clock):
    actor, admin_issued = admin
    issued = make_user(kiosk, admin)
    sup = make_user(kiosk, admin, "sam.sup", ("supervisor",), "Sam Supervisor")
    for attempt in range(1, 6):
        result = kiosk.auth.authenticate("jane.op", "wrong password!", None)
        assert result.message == INVALID
        if attempt >= 3 and attempt < 5:
            early = kiosk.auth.authenticate("jane.op", issued.temporary_password, totp_now(issued.totp_secret, clock))
            assert not early.ok and early.message == THROTTLED.format(wait=early.retry_after_s)
        clock.advance(60)
    assert kiosk.auth.user("jane.op").status == "suspended"
    clock.advance(31)
    result = login(kiosk, clock, "jane.op", issued.temporary_password, issued)
    assert not result.ok and result.message == SUSPENDED
    kinds = [a["kind"] for a in kiosk.auth.alerts()]
    assert "account.suspended" in kinds and kinds.count("auth.bad_password") == 5
    otto = make_user(kiosk, admin, "otto.op", ("operator",), "Otto Operator")
    with pytest.raises(NotPermitted, match="supervisor or admin"):
        kiosk.auth.unlock("otto.op", otto.temporary_password, totp_now(otto.totp_secret, clock), "jane.op", "typo")
    clock.advance(31)
    kiosk.auth.unlock("sam.sup", sup.temporary_password, totp_now(sup.totp_secret, clock), "jane.op",
                      reason="verified by phone")
    assert kiosk.auth.user("jane.op").status == "active"
    clock.advance(31)
    assert login(kiosk, clock, "jane.op", issued.temporary_password, issued).ok


@pytest.mark.req("P11-300d")
def test_supervisor_cannot_unlock_self_and_deactivated_cannot_be_unlocked(kiosk, admin, clock):
    actor, _ = admin
    sup = make_user(kiosk, admin, "sam.sup", ("supervisor",), "Sam Supervisor")
    for _ in range(5):
        kiosk.auth.authenticate("sam.sup", "wrong password!", None)
        clock.advance(60)
    assert kiosk.auth.user("sam.sup").status == "suspended"
    with pytest.raises(Exception, match="suspended"):
        kiosk.auth.unlock("sam.sup", sup.temporary_password, totp_now(sup.totp_secret, clock), "sam.sup", "self")


@pytest.mark.req("SEC-63B")
def test_totp_code_is_single_use_even_inside_its_window(kiosk, admin, clock):
    issued = make_user(kiosk, admin)
    code = totp_now(issued.totp_secret, clock)
    first = kiosk.auth.authenticate("jane.op", issued.temporary_password, code)
    assert first.ok
    kiosk.store.append("session.login", {"actor": {"user_id": "jane.op", "name": "Jane", "role": "operator"},
                                         "target": {"kind": "user", "id": "jane.op"}, "auth": first.auth_body()})
    clock.advance(10)
    again = kiosk.auth.authenticate("jane.op", issued.temporary_password, code)
    assert not again.ok and again.message == INVALID


@pytest.mark.req("SEC-63B")
def test_password_rules_history_and_change(kiosk, admin, clock):
    issued = make_user(kiosk, admin)
    code = lambda: totp_now(issued.totp_secret, clock)  # noqa: E731
    with pytest.raises(InvalidInput):
        kiosk.auth.change_password("jane.op", issued.temporary_password, "password1234", code())
    clock.advance(30)
    result = kiosk.auth.change_password("jane.op", issued.temporary_password, "correct horse battery staple", code())
    assert result.ok and not kiosk.auth.user("jane.op").must_change_password
    clock.advance(30)
    with pytest.raises(InvalidInput, match="not used"):
        kiosk.auth.change_password("jane.op", "correct horse battery staple", "correct horse battery staple", code())


@pytest.mark.req("P11-300c")
def test_reset_credentials_revokes_old_password_and_totp(kiosk, admin, clock):
    actor, _ = admin
    issued = make_user(kiosk, admin)
    new = kiosk.auth.reset_credentials(actor, "jane.op", reason="lost phone", identity_verified=True)
    clock.advance(30)
    assert not kiosk.auth.authenticate("jane.op", issued.temporary_password, totp_now(issued.totp_secret, clock)).ok
    clock.advance(30)
    assert kiosk.auth.authenticate("jane.op", new.temporary_password, totp_now(new.totp_secret, clock)).ok


def test_bad_input_is_refused_with_a_clear_message_and_nothing_written(kiosk, admin):
    actor, _ = admin
    head = kiosk.store.head().seq
    for uid, name, reason in [("", "Jane", "starter"), ("jane", "[bold]Jane[/bold]", "starter"),
                              ("jane", "Jane\x1b[31m", "starter"), ("jane", "Jane", ""), ("x" * 200, "J", "starter")]:
        with pytest.raises(InvalidInput):
            kiosk.auth.create_user(actor, uid, name, ["operator"], reason=reason, identity_verified=True)
    assert kiosk.store.head().seq == head


def test_deactivated_user_is_told_so_only_after_correct_password(kiosk, admin, clock):
    actor, _ = admin
    issued = make_user(kiosk, admin)
    kiosk.auth.update_user(actor, "jane.op", status="deactivated", reason="left the company")
    assert kiosk.auth.authenticate("jane.op", "wrong password!", None).message == INVALID
    clock.advance(30)
    assert login(kiosk, clock, "jane.op", issued.temporary_password, issued).message == DEACTIVATED


@pytest.mark.req("P11-300b")
def test_password_aging_forces_a_change_never_a_lockout(tmp_path, clock):
    from kiosk.app import build_kiosk
    from kiosk.config import KioskConfig
    from kiosk.domain.passwords import PasswordHasher

    config = KioskConfig().replace(password={"max_age_days": 30})
    k = build_kiosk(config, tmp_path / "aging", clock, device_id="line-2",
                    hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    issued = k.auth.bootstrap("site.admin", "Ada Admin")
    clock.advance(31)
    k.auth.change_password("site.admin", issued.temporary_password, "lantern orchard seventeen",
                           totp_now(issued.totp_secret, clock))
    clock.advance(days=31)
    outcome = k.session.login("site.admin", "lantern orchard seventeen", totp_now(issued.totp_secret, clock))
    assert outcome.ok and outcome.must_change_password
    k.close()


@pytest.mark.req("P11-300d")
def test_failure_counts_survive_a_restart(tmp_path, clock):
    from kiosk.app import build_kiosk
    from kiosk.config import KioskConfig
    from kiosk.domain.passwords import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1)
    k = build_kiosk(KioskConfig(), tmp_path / "r", clock, device_id="line-3", hasher=cheap)
    k.auth.bootstrap("site.admin", "Ada Admin")
    for _ in range(4):
        clock.advance(60)
        k.auth.authenticate("site.admin", "wrong password!", None)
    k.close()
    again = build_kiosk(KioskConfig(), tmp_path / "r", clock, device_id="line-3", hasher=cheap)
    clock.advance(60)
    again.auth.authenticate("site.admin", "wrong password!", None)
    assert again.auth.user("site.admin").status == "suspended"
    again.close()


@pytest.mark.req("P11-300d")
def test_unlocking_one_user_leaves_other_counters_alone(kiosk, admin, clock):
    make_user(kiosk, admin)
    make_user(kiosk, admin, "omar.op", ("operator",), "Omar Operator")
    sup = make_user(kiosk, admin, "sam.sup", ("supervisor",), "Sam Supervisor")
    for _ in range(5):
        clock.advance(60)
        kiosk.auth.authenticate("jane.op", "wrong password!", None)
    for _ in range(2):
        clock.advance(60)
        kiosk.auth.authenticate("omar.op", "wrong password!", None)
    before = kiosk.directory.get("failures.id", "omar.op")
    clock.advance(31)
    kiosk.auth.unlock("sam.sup", sup.temporary_password, totp_now(sup.totp_secret, clock), "jane.op", "checked by phone")
    assert kiosk.directory.get("failures.id", "omar.op") == before and before["count"] == 2
    assert kiosk.directory.get("failures.id", "jane.op")["count"] == 0


@pytest.mark.req("P11-300d")
def test_an_unlock_closes_the_alert_of_the_suspension_it_answers(kiosk, admin, clock):
    from kiosk.domain.records import parse_raw

    make_user(kiosk, admin)
    make_user(kiosk, admin, "omar.op", ("operator",), "Omar Operator")
    sup = make_user(kiosk, admin, "sam.sup", ("supervisor",), "Sam Supervisor")
    for uid in ("jane.op", "omar.op"):
        for _ in range(5):
            clock.advance(60)
            kiosk.auth.authenticate(uid, "wrong password!", None)
    suspended = {a["target"]["id"]: a for a in kiosk.auth.alerts() if a["kind"] == "account.suspended"}
    assert set(suspended) == {"jane.op", "omar.op"}
    clock.advance(31)
    done = kiosk.auth.unlock("sam.sup", sup.temporary_password, totp_now(sup.totp_secret, clock), "jane.op",
                             "checked by phone")
    assert done.alerts_closed == 1 and done.user.status == "active"
    closed = kiosk.directory.get("alert", suspended["jane.op"]["alert_id"])
    assert closed["acknowledged_by"] == "sam.sup"
    # Omar's suspension is another case; the failed sign-ins themselves stay for the supervisor to look at.
    still_open = {(a["kind"], a["target"]["id"]) for a in kiosk.auth.alerts()}
    assert ("account.suspended", "omar.op") in still_open and ("auth.bad_password", "jane.op") in still_open
    last = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows()][-2:]
    assert [r.type for r in last] == ["account.unlocked", "alert.acknowledged"]
    assert last[1].body["reason"] == "closed by the unlock of jane.op: checked by phone"
    assert last[1].body["actor"]["user_id"] == "sam.sup"


@pytest.mark.req("P11-300d")
@pytest.mark.req("A11d-11")
def test_a_suspended_account_is_unlocked_by_a_supervisor_not_reactivated_by_an_admin(kiosk, admin, clock):
    actor, _ = admin
    make_user(kiosk, admin)
    for _ in range(5):
        clock.advance(60)
        kiosk.auth.authenticate("jane.op", "wrong password!", None)
    assert kiosk.auth.user("jane.op").status == "suspended"
    with pytest.raises(NotPermitted, match="unlocked by a supervisor"):
        kiosk.auth.update_user(actor, "jane.op", status="active", reason="she asked nicely")
    assert kiosk.auth.user("jane.op").status == "suspended"
    kiosk.auth.update_user(actor, "jane.op", status="deactivated", reason="left the company")
    kiosk.auth.update_user(actor, "jane.op", status="active", reason="rehired")
    assert kiosk.auth.user("jane.op").status == "active"


@pytest.mark.req("P11-10h")
@pytest.mark.req("A11-12")
def test_on_a_revoked_terminal_an_admin_can_still_exit_but_nobody_logs_in(kiosk, admin, clock):
    actor, issued = admin
    kiosk.store.append("device.status_observed", {"status": "revoked", "reason": "terminal stolen",
                                                  "target": {"kind": "device", "id": kiosk.store.chain}})
    code = totp_now(issued.totp_secret, clock)
    assert not kiosk.auth.authenticate("site.admin", issued.temporary_password, code).ok
    assert kiosk.auth.authenticate("site.admin", issued.temporary_password, None, require_totp=False,
                                   purpose="admin_exit").ok


@pytest.mark.req("P11-10g")
def test_require_role_needs_an_active_user_acting_in_a_role_they_hold(kiosk, admin):
    actor, _ = admin
    kiosk.auth.require_role(actor, "admin")
    with pytest.raises(NotPermitted):
        kiosk.auth.require_role(actor, "qa", "supervisor")
    with pytest.raises(NotPermitted):
        kiosk.auth.require_role(Actor("nobody", "No Body", "admin"), "admin")


@pytest.mark.req("P11-300a")
@pytest.mark.req("A11-12")
def test_a_credential_copied_to_another_account_does_not_open_even_after_it_was_opened(kiosk, admin, clock):
    """Opened credentials are kept for the signing path; the copy under another user id must still be
    opened (and refused) on its own, never served from what jane's login left behind."""
    import json
    import sqlite3

    from kiosk.services.auth import AuthError

    jane = make_user(kiosk, admin)
    omar = make_user(kiosk, admin, "omar.op", ("operator",), "Omar Operator")
    assert login(kiosk, clock, "jane.op", jane.temporary_password, jane).ok
    db = sqlite3.connect(kiosk.data_dir / "kiosk.db")
    (jane_doc,) = db.execute("SELECT doc FROM directory WHERE kind = 'user' AND key = 'jane.op'").fetchone()
    (omar_doc,) = db.execute("SELECT doc FROM directory WHERE kind = 'user' AND key = 'omar.op'").fetchone()
    forged = {**json.loads(omar_doc), "credential": json.loads(jane_doc)["credential"]}
    with db:
        db.execute("UPDATE directory SET doc = ? WHERE kind = 'user' AND key = 'omar.op'", (json.dumps(forged),))
    db.close()
    with pytest.raises(AuthError, match="cannot read the stored credentials"):
        login(kiosk, clock, "omar.op", jane.temporary_password, omar)


@pytest.mark.req("P11-300b")
@pytest.mark.req("P11-300d")
def test_a_password_typed_into_the_unlock_reason_is_refused_and_must_be_changed(kiosk, admin, clock):
    make_user(kiosk, admin)
    sup = make_user(kiosk, admin, "sam.sup", ("supervisor",), "Sam Supervisor")
    own = "lantern orchard seventeen"
    clock.advance(31)
    assert kiosk.auth.change_password("sam.sup", sup.temporary_password, own, totp_now(sup.totp_secret, clock)).ok
    assert not kiosk.auth.user("sam.sup").must_change_password
    for _ in range(5):
        kiosk.auth.authenticate("jane.op", "wrong password!", None)
        clock.advance(60)
    rows_before = len(list(kiosk.store.iter_rows()))
    clock.advance(31)
    with pytest.raises(PasswordTyped, match="the reason for the unlock holds Sam Supervisor's password"):
        kiosk.auth.unlock("sam.sup", own, totp_now(sup.totp_secret, clock), "jane.op", f"phoned her {own}")
    assert kiosk.auth.user("jane.op").status == "suspended"
    new_rows = list(kiosk.store.iter_rows())[rows_before:]
    assert [r.type for r in new_rows if r.type != "checkpoint"] == ["user.updated", "alert.raised"]
    assert not any(own.encode() in r.raw for r in kiosk.store.iter_rows())
    assert kiosk.auth.user("sam.sup").must_change_password
    assert any(a["kind"] == "credential.exposed" for a in kiosk.auth.alerts())


@pytest.mark.req("P11-300d")
def test_a_supervisor_acknowledges_the_open_info_alerts_of_one_kind_together_under_one_note(
        kiosk, admin, clock, monkeypatch):
    """Single failed sign-ins pile up by the dozen a day; a warning or critical alert is still looked at alone."""
    import json

    from kiosk.domain import directory
    from kiosk.domain.clock import format_ts
    from kiosk.domain.records import parse_raw
    from kiosk.services import auth

    monkeypatch.setattr(auth, "ACKNOWLEDGED_PER_RECORD", 3)  # several records in a transaction,
    monkeypatch.setattr(auth, "ACKNOWLEDGED_PER_TRANSACTION", 4)  # several transactions
    make_user(kiosk, admin)
    make_user(kiosk, admin, "sam.sup", ("supervisor",), "Sam Supervisor")
    sam, ana = Actor("sam.sup", "Sam Supervisor", "supervisor"), Actor("jane.op", "Jane Operator", "operator")
    for _ in range(2):
        clock.advance(60)
        kiosk.auth.authenticate("jane.op", "wrong password!", None)  # info: auth.bad_password
    clock.advance(60)
    kiosk.auth.authenticate("nobody.here", "whatever it is", None)  # warning: an unknown id
    for i in range(5):
        clock.advance(1)
        kiosk.auth.raise_alert("auth.bad_password", "info", f"failed sign-in #{i}", {"kind": "user", "id": "x"})
    kiosk.auth.raise_alert("auth.bad_totp", "info", "a wrong code", {"kind": "user", "id": "jane.op"})
    first = kiosk.auth.alerts()[-1]
    kiosk.auth.acknowledge_alert(Actor("site.admin", "Ada Admin", "admin"), first["alert_id"], "looked at it")
    through = format_ts(clock.now())
    clock.advance(1)
    kiosk.auth.raise_alert("auth.bad_password", "info", "after the count", {"kind": "user", "id": "x"})
    assert kiosk.auth.open_alerts_alike("auth.bad_password", through) == 6

    with pytest.raises(NotPermitted, match="supervisor or admin"):
        kiosk.auth.acknowledge_alike(ana, "auth.bad_password", through, "all typos")
    with pytest.raises(InvalidInput, match="at least 4"):
        kiosk.auth.acknowledge_alike(sam, "auth.bad_password", through, "ok")
    with pytest.raises(InvalidInput, match="no open info alerts of kind auth.unknown_user"):
        kiosk.auth.acknowledge_alike(sam, "auth.unknown_user", through, "all typos")
    rows_before = len(list(kiosk.store.iter_rows()))

    assert kiosk.auth.acknowledge_alike(sam, "auth.bad_password", through, "typos at shift start") == 6
    still_open = {a["message"]: a for a in kiosk.auth.alerts()}
    assert [a["kind"] for a in still_open.values()] == ["auth.bad_password", "auth.bad_totp", "auth.unknown_user"]
    assert "after the count" in still_open
    assert kiosk.auth.open_alerts_alike("auth.bad_password", through) == 0
    every = {a["alert_id"]: a for a in kiosk.auth.alerts(open_only=False)}
    assert every[first["alert_id"]]["acknowledged_by"] == "site.admin"  # acknowledged first, left as it was
    records = [parse_raw(r.raw)[0] for r in list(kiosk.store.iter_rows())[rows_before:]]
    acks = [r for r in records if r.type == "alerts.acknowledged"]
    assert [len(r.body["alert_ids"]) for r in acks] == [3, 1, 2]
    assert {r.body["reason"] for r in acks} == {"typos at shift start"}
    assert all(r.body["actor"]["user_id"] == "sam.sup" and r.body["raised_through"] == through for r in acks)
    for alert_id in (i for r in acks for i in r.body["alert_ids"]):
        assert every[alert_id]["acknowledged_by"] == "sam.sup" and every[alert_id]["kind"] == "auth.bad_password"

    # The rule is the projection's, so it holds for any record (and centrally): a warning alert is refused.
    unknown = next(a for a in kiosk.auth.alerts() if a["kind"] == "auth.unknown_user")
    with pytest.raises(directory.DirectoryConflict, match="warning auth.unknown_user alert: only info"):
        kiosk.store.append_many([("alerts.acknowledged", {
            "actor": sam.body(), "kind": "auth.unknown_user", "severity": "info", "raised_through": through,
            "reason": "forged", "alert_ids": [unknown["alert_id"]], "target": {"kind": "alert_kind", "id": "x"}})])
    assert kiosk.auth.alerts()[-1]["acknowledged_by"] is None
    # Two supervisors offline: one alert acknowledged alone on one terminal, then with others on another. The
    # later record applies to the rest and leaves the first acknowledgement as it was.
    later = next(a for a in kiosk.auth.alerts() if a["message"] == "after the count")
    kiosk.store.append_many([("alerts.acknowledged", {
        "actor": sam.body(), "kind": "auth.bad_password", "severity": "info", "raised_through": format_ts(clock.now()),
        "reason": "typos", "alert_ids": [first["alert_id"], later["alert_id"]],
        "target": {"kind": "alert_kind", "id": "auth.bad_password"}})])
    every = {a["alert_id"]: a for a in kiosk.auth.alerts(open_only=False)}
    assert every[first["alert_id"]]["acknowledged_by"] == "site.admin"
    assert every[later["alert_id"]]["acknowledged_by"] == "sam.sup"
    docs: dict = {}
    get = lambda kind, key: docs.get((kind, key))  # noqa: E731
    for row in kiosk.store.iter_rows():
        for kind, key, doc in directory.project(parse_raw(row.raw)[0], get):
            docs[(kind, key)] = doc
    with kiosk.store.read_engine().connect() as conn:
        stored = {key: json.loads(doc) for key, doc in
                  conn.exec_driver_sql("SELECT key, doc FROM directory WHERE kind = 'alert'").all()}
    assert stored == {key: doc for (kind, key), doc in docs.items() if kind == "alert"}


@pytest.mark.req("P11-300d")
def test_the_first_acknowledgement_of_an_alert_stands(kiosk, admin, clock):
    """Two supervisors on two terminals may acknowledge one alert before either syncs: the later record is kept
    and changes nothing, centrally or here; on a terminal that already knows, the service refuses."""
    from kiosk.domain.records import parse_raw

    make_user(kiosk, admin, "sam.sup", ("supervisor",), "Sam Supervisor")
    sam, ada = Actor("sam.sup", "Sam Supervisor", "supervisor"), admin[0]
    kiosk.auth.raise_alert("auth.unknown_user", "warning", "failed sign-in", {"kind": "user", "id": "x"})
    alert_id = kiosk.auth.alerts()[0]["alert_id"]
    clock.advance(60)
    kiosk.auth.acknowledge_alert(ada, alert_id, "called the operator")
    with pytest.raises(InvalidInput, match="already acknowledged by site.admin at 2026-11-24 10:01:00 UTC"):
        kiosk.auth.acknowledge_alert(sam, alert_id, "me too")
    clock.advance(60)
    kiosk.store.append_many([("alert.acknowledged", {"actor": sam.body(), "alert_id": alert_id,
                                                     "target": {"kind": "alert", "id": alert_id}})])  # the other terminal
    alert = kiosk.auth.alerts(open_only=False)[0]
    assert (alert["acknowledged_by"], alert["acknowledged_at"]) == ("site.admin", "2026-11-24T10:01:00.000000Z")
    acks = [parse_raw(r.raw)[0].body["actor"]["user_id"] for r in kiosk.store.iter_rows()
            if r.type == "alert.acknowledged"]
    assert acks == ["site.admin", "sam.sup"]
