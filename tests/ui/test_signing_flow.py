"""The whole operator flow on the real services: log in, open a step, sign, witness (Pilot, FakeClock)."""

import pyotp
import pytest
from textual.widgets import Static

from kiosk.app import make_app
from kiosk.demo import DEMO_PASSWORD, banner_text, create_demo
from kiosk.domain.passwords import PasswordHasher
from kiosk.domain.records import parse_raw
from screens.dialogs import CredentialsDialog
from screens.onboarding import FirstUseDialog
from screens.step import StepScreen
from screens.worklist import WorklistScreen
from tests.ui.flows import (ana_performs_line_clearance, enter_credentials, login, notices, open_first_step,
                            open_supervisor, screen_text, type_text, wait_for)


@pytest.fixture
def demo(tmp_path, clock):
    kiosk, users = create_demo(tmp_path / "demo", clock, hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    yield kiosk, {u.user_id: u for u in users}
    kiosk.close()


@pytest.mark.req("P11-50")
@pytest.mark.req("P11-200a1")
@pytest.mark.req("P11-200a3")
async def test_operator_signs_and_a_second_person_verifies(demo, clock):
    kiosk, users = demo
    kiosk.auth.accept_first_use(kiosk.auth.user("ben.op"))  # Ben accepted at his own first login, earlier
    app = make_app(kiosk, idle_check_s=3600)
    told = notices(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_first_step(pilot, app, clock, users["ana.op"])
        assert kiosk.auth.user("ana.op").first_use_accepted
        # Only the signature the step takes next is offered: Verified follows Performed.
        assert [b.id for b in app.screen.query("#actions Button")] == ["sign-Performed", "back"]
        assert str(app.screen.query_one("#next", Static).render()) == "Next signature: Performed by operator."
        assert kiosk.session.load_draft("PB-2026-001", "line-clearance") is None  # opening it typed nothing
        await type_text(pilot, "yes")
        assert kiosk.session.load_draft("PB-2026-001", "line-clearance") == {"area_clear": "yes"}
        app.screen.query_one("#sign-Performed").press()
        await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the sign dialog")
        shown = " ".join(str(s.render()) for s in app.screen.query("Static"))
        assert "Signed by: Ana Ortiz (ana.op), role operator" in shown
        assert "Meaning: Performed" in shown and "Europe/Dublin" not in shown or "GMT" in shown
        await enter_credentials(pilot, clock, "ana.op", DEMO_PASSWORD, users["ana.op"].totp_secret)
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "back to the worklist")
        # In site time, as the dialog showed it (not the record's UTC form).
        assert told[-1] == f"Signed: Performed by Ana Ortiz at {clock.now():%Y-%m-%d %H:%M:%S} GMT", told
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the step screen again")
        assert [b.id for b in app.screen.query("#actions Button")] == ["sign-Verified", "correct", "withdraw",
                                                                        "back"]
        # Showing the recorded values is not typing them: no draft appears beside the record.
        assert kiosk.session.load_draft("PB-2026-001", "line-clearance") is None
        assert str(app.screen.query_one("#next", Static).render()) == (
            "Next signature: Verified by operator or qa, not the Performed signer. A second person signs it, "
            "with their own user id, password and code.")
        app.screen.query_one("#sign-Verified").press()
        await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the witness dialog")
        await enter_credentials(pilot, clock, "ben.op", DEMO_PASSWORD, users["ben.op"].totp_secret)
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist after witnessing")
    types = [r.type for r in kiosk.store.iter_rows()]
    assert types.count("step.signed") == 1 and types.count("witness.signed") == 1
    last = parse_raw(list(kiosk.store.iter_rows())[-1].raw)[0]
    assert last.body["manifestation"]["user_id"] == "ben.op" and last.body["meaning"] == "Verified"
    assert kiosk.session.session.owner is None or kiosk.session.session.owner == "ana.op"


@pytest.mark.req("P11-10f")
async def test_a_signature_the_person_logged_in_cannot_give_is_not_offered(demo, clock):
    """QA on a step an operator performs reads who signs it, instead of a button that can only refuse."""
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        step = await open_first_step(pilot, app, clock, users["quinn.qa"])
        assert [b.id for b in step.query("#actions Button")] == ["back"]
        assert str(step.query_one("#next", Static).render()) == (
            "Performed on this step is signed by operator; Quinn QA has the qa role. Lock the terminal (F12) so "
            "that someone with that role logs in and signs it.")
    assert not [r for r in kiosk.store.iter_rows() if r.type == "step.signed"]


@pytest.mark.req("P11-10f")
async def test_a_step_waiting_for_an_earlier_one_offers_no_signature(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await login(pilot, clock, users["ana.op"])
        await pilot.press("enter", "down", "enter")  # the batch, then its second step
        await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the step screen")
        assert [b.id for b in app.screen.query("#actions Button")] == ["back"]
        assert str(app.screen.query_one("#next", Static).render()) == (
            "Sign 'Line clearance' first: steps are signed in order (21 CFR 11.10(f)).")


@pytest.mark.req("P11-200a1")
async def test_f12_in_the_sign_dialog_means_not_signed(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    errors = []
    app.services.report_error = errors.append
    async with app.run_test(size=(120, 40)) as pilot:
        await open_first_step(pilot, app, clock, users["ana.op"])
        await type_text(pilot, "yes")
        app.screen.query_one("#sign-Performed").press()
        await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the sign dialog")
        await pilot.press("f12")
        await wait_for(pilot, lambda: app.screen is app.lock_screen, "the lock screen")
    assert errors == []
    types = [r.type for r in kiosk.store.iter_rows()]
    assert "step.signed" not in types and types[-1] == "session.locked"
    assert kiosk.session.load_draft  # the draft stays for the same user
    from storage.drafts_local import LocalDrafts

    assert LocalDrafts(kiosk.store, clock).load_draft("ana.op", "PB-2026-001", "line-clearance") == {"area_clear": "yes"}


def test_demo_banner_shows_every_demo_user_and_no_used_code(demo, clock):
    kiosk, users = demo
    text = banner_text(list(users.values()), clock, kiosk)
    for uid in users:
        assert uid in text
    assert DEMO_PASSWORD in text


@pytest.mark.req("P11-100")
@pytest.mark.req("A11d-11")
async def test_first_login_with_a_temporary_password_must_change_it(demo, clock):
    kiosk, users = demo
    from kiosk.services.auth import Actor

    issued = kiosk.auth.create_user(Actor("admin", "Ada Admin", "admin"), "new.op", "New Operator", ["operator"],
                                    reason="starter", identity_verified=True)
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await enter_credentials(pilot, clock, "new.op", issued.temporary_password, issued.totp_secret)
        await wait_for(pilot, lambda: isinstance(app.screen, FirstUseDialog), "the first-use statement")
        statement = str(app.screen.query_one(".dialog-body").render())
        # The statement reads as paragraphs: its own line breaks are kept, not shown as escapes.
        assert "New Operator (new.op):\n\nI certify" in statement and "\\x0a" not in statement
        await pilot.click("#accept")
        from screens.onboarding import ChangePasswordDialog

        await wait_for(pilot, lambda: isinstance(app.screen, ChangePasswordDialog), "the change-password dialog")
        dialog = app.screen
        dialog.query_one("#current").value = issued.temporary_password
        dialog.query_one("#new").value = "password1234"
        dialog.query_one("#repeat").value = "password1234"
        clock.advance(31)
        dialog.query_one("#totp").value = pyotp.TOTP(issued.totp_secret).at(clock.now())
        await pilot.click("#ok")
        await wait_for(pilot, lambda: "common or breached" in str(dialog.query_one("#message").render()), "a refusal")
        dialog.query_one("#current").value = issued.temporary_password
        dialog.query_one("#new").value = "lantern orchard seventeen"
        dialog.query_one("#repeat").value = "lantern orchard seventeen"
        clock.advance(31)
        dialog.query_one("#totp").value = pyotp.TOTP(issued.totp_secret).at(clock.now())
        await pilot.click("#ok")
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist")
    user = kiosk.auth.user("new.op")
    assert user.first_use_accepted and not user.must_change_password


@pytest.mark.req("P11-300d")
async def test_supervisor_unlocks_a_suspended_operator(demo, clock):
    kiosk, users = demo
    for _ in range(5):
        clock.advance(60)
        kiosk.auth.authenticate("ana.op", "wrong password!", None)
    assert kiosk.auth.user("ana.op").status == "suspended"
    app = make_app(kiosk, idle_check_s=3600)
    from screens.step import ReasonDialog

    async with app.run_test(size=(120, 40)) as pilot:
        await open_supervisor(pilot, app, clock, users["sam.sup"])
        alerts = app.screen.query_one("#alerts")
        listed = alerts.row_count
        assert listed >= 6  # five failures and the suspension
        assert str(app.screen.query_one("#suspended-head").render()) == "Suspended accounts: 1 (Enter unlocks)"
        assert str(app.screen.query_one("#alerts-head").render()) == (
            f"Open alerts: {alerts.row_count}, newest first (Enter acknowledges)")
        await pilot.press("enter")  # the suspended account row
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonDialog), "the reason dialog")
        await type_text(pilot, "verified by phone")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the credentials dialog")
        await enter_credentials(pilot, clock, "sam.sup", DEMO_PASSWORD, users["sam.sup"].totp_secret)
        await wait_for(pilot, lambda: kiosk.auth.user("ana.op").status == "active", "the unlock")
        await wait_for(pilot, lambda: app.screen.query("#suspended-head"), "the supervisor screen again")
        await pilot.pause(0.3)
        assert str(app.screen.query_one("#suspended-head").render()) == "Suspended accounts: none"
        assert str(app.screen.query_one("#message").render()) == (
            "ana.op is unlocked; the unlock is recorded and closes its suspension alert.")
        # The suspension's alert closed with it; the failed sign-ins stay to be looked at.
        assert app.screen.query_one("#alerts").row_count == listed - 1
    last = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "account.unlocked"][-1]
    assert last.body["actor"]["user_id"] == "sam.sup" and last.body["reason"] == "verified by phone"


@pytest.mark.req("P11-300d")
async def test_the_supervisor_screen_lists_the_newest_open_alerts_and_says_how_many_are_open(demo, clock):
    """The directory holds every terminal's alerts for years: the table takes the newest, the heading counts all."""
    from kiosk.services.auth import Actor
    from screens.supervisor import ALERTS_SHOWN

    kiosk, users = demo
    for i in range(ALERTS_SHOWN + 50):
        clock.advance(1)
        kiosk.auth.raise_alert("auth.bad_password", "info", f"failed sign-in #{i}", {"kind": "user", "id": "ana.op"})
    newest = kiosk.auth.alerts()[0]
    assert newest["message"] == f"failed sign-in #{ALERTS_SHOWN + 49}"
    kiosk.auth.acknowledge_alert(Actor("sam.sup", "Sam Supervisor", "supervisor"), newest["alert_id"], "seen")
    total = len(kiosk.auth.alerts())
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_supervisor(pilot, app, clock, users["sam.sup"])
        alerts = app.screen.query_one("#alerts")
        assert alerts.row_count == ALERTS_SHOWN
        assert str(app.screen.query_one("#alerts-head").render()) == (
            f"Open alerts: {total}, the newest {ALERTS_SHOWN} shown (Enter acknowledges)")
        first = alerts.get_row_at(0)  # the newest still open: the acknowledged one has left the list
        assert str(first[3]) == f"failed sign-in #{ALERTS_SHOWN + 48}"


@pytest.mark.req("P11-300d")
async def test_a_supervisor_acknowledges_the_info_alerts_of_one_kind_together_and_a_critical_one_alone(demo, clock):
    from screens.step import ReasonDialog

    kiosk, users = demo
    for i in range(3):
        clock.advance(1)
        kiosk.auth.raise_alert("auth.bad_password", "info", f"failed sign-in #{i}", {"kind": "user", "id": "ana.op"})
    clock.advance(1)
    kiosk.auth.raise_alert("account.suspended", "critical", "account 'ana.op' suspended", {"kind": "user", "id": "x"})
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_supervisor(pilot, app, clock, users["sam.sup"])
        alerts = screen.query_one("#alerts")
        await pilot.press("a")  # in the suspended accounts table: which alert is meant?
        await pilot.pause()
        assert str(screen.query_one("#message").render()) == "Choose an alert in the open alerts table, then press A."
        assert alerts.has_focus
        await pilot.press("a")  # the cursor is on the newest: the critical one
        await pilot.pause()
        assert str(screen.query_one("#message").render()) == (
            "Only info alerts are acknowledged together; this critical alert is acknowledged on its own (Enter).")
        assert not isinstance(app.screen, ReasonDialog)
        await pilot.press("down", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonDialog), "the note dialog")
        assert str(app.screen.query_one(".dialog-title").render()) == "Acknowledge 3 alerts"
        await pilot.press("enter")  # a note is required
        await pilot.pause()
        assert isinstance(app.screen, ReasonDialog)
        await type_text(pilot, "typos at shift start")
        await pilot.press("enter")
        await wait_for(pilot, lambda: str(screen.query_one("#message").render()) ==
                       "3 auth.bad_password alerts acknowledged.", "the acknowledgement")
        assert alerts.row_count == 1
        assert str(screen.query_one("#alerts-head").render()) == "Open alerts: 1, newest first (Enter acknowledges)"
    acks = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "alerts.acknowledged"]
    assert [(a.body["actor"]["user_id"], a.body["reason"], len(a.body["alert_ids"])) for a in acks] == [
        ("sam.sup", "typos at shift start", 3)]


@pytest.mark.req("P11-300d")
async def test_the_acknowledgement_quotes_the_alert_and_its_buttons_stay_on_a_small_screen(demo, clock):
    """The table cuts a message at the screen's edge: the dialog quotes it, up to what leaves the note and the
    buttons on an 80x24 screen (a central alert may quote a reason of 2,000 characters)."""
    from screens.step import ReasonDialog
    from screens.supervisor import MESSAGE_QUOTED

    kiosk, users = demo
    long = "line-b:1 frozen at #5: " + " ".join(f"part{i:04d}" for i in range(220))
    kiosk.auth.raise_alert("chain.frozen", "critical", long, {"kind": "device", "id": "line-b:1"})
    raised = clock.now()
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_supervisor(pilot, app, clock, users["sam.sup"])
        await pilot.press("tab", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonDialog), "the acknowledgement dialog")
        body = str(app.screen.query_one(".dialog-body").render())
        assert body.startswith(f"critical · chain.frozen\nraised {raised:%Y-%m-%d %H:%M:%S} UTC on "
                               f"{kiosk.store.chain}\n{long[:MESSAGE_QUOTED]}…")
        assert f"(cut at {MESSAGE_QUOTED} of {len(long):,} characters" in body
        for widget in (app.screen.query_one("#reason"), app.screen.query_one("#ok"), app.screen.query_one("#cancel")):
            region = widget.region
            assert region.height > 0 and region.bottom <= 24, (widget, region)  # on the screen, not below it
        await type_text(pilot, "chain handed to IT")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ReasonDialog), "the dialog to close")
    assert [a["acknowledged_by"] for a in kiosk.auth.alerts(open_only=False) if a["kind"] == "chain.frozen"] == [
        "sam.sup"]


@pytest.mark.req("P11-300d")
async def test_an_unforeseen_failure_while_acknowledging_together_is_told_and_a_can_be_pressed_again(
        demo, clock, monkeypatch):
    from screens.step import ReasonDialog

    kiosk, users = demo
    kiosk.auth.raise_alert("auth.bad_password", "info", "failed sign-in", {"kind": "user", "id": "ana.op"})

    def broken(*args):
        raise RuntimeError("disk controller reset")

    monkeypatch.setattr(kiosk.auth, "acknowledge_alike", broken)
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_supervisor(pilot, app, clock, users["sam.sup"])
        screen.query_one("#alerts").focus()
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonDialog), "the note dialog")
        await type_text(pilot, "typos at shift start")
        await pilot.press("enter")
        await wait_for(pilot, lambda: str(screen.query_one("#message").render()) ==
                       "Not all of the alerts were acknowledged; the list shows those still open.", "the failure")
        assert screen.query_one("#alerts").row_count == 1
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonDialog), "the note dialog again")


@pytest.mark.req("P11-300b")
async def test_a_password_typed_into_the_step_leaves_the_screen_and_must_be_changed(demo, clock):
    from screens.onboarding import ChangePasswordDialog

    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    told = notices(app)
    async with app.run_test(size=(120, 40)) as pilot:
        step = await open_first_step(pilot, app, clock, users["ana.op"])
        await type_text(pilot, "yes")
        step.query_one("#comment").focus()
        await type_text(pilot, DEMO_PASSWORD)  # meant for the sign dialog, typed into the comment
        step.query_one("#sign-Performed").press()
        await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the sign dialog")
        await enter_credentials(pilot, clock, "ana.op", DEMO_PASSWORD, users["ana.op"].totp_secret)
        await wait_for(pilot, lambda: isinstance(app.screen, ChangePasswordDialog), "the password change")
        assert told[-1].startswith("Not signed: a value on this step is Ana Ortiz's password.")
        shown = " ".join(str(s.render()) for s in app.screen.query("Static"))
        assert "Your password was typed into a field of a step, where it was shown; choose a new one" in shown
        assert not any(DEMO_PASSWORD in str(i.value) for s in app.screen_stack for i in s.query("Input")
                       if not i.password)
    rows = list(kiosk.store.iter_rows())
    assert "step.signed" not in [r.type for r in rows] and not any(DEMO_PASSWORD.encode() in r.raw for r in rows)


@pytest.mark.req("P11-10g")
async def test_qa_verifies_an_operators_values_but_cannot_type_over_them(demo, clock):
    """The values are the operator's entry: QA reads them, may sign Verified, and has no field or Correct
    button that would change them (a correction would take back the operator's signature)."""
    kiosk, users = demo
    ana_performs_line_clearance(kiosk, clock, users["ana.op"].totp_secret)
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        step = await open_first_step(pilot, app, clock, users["quinn.qa"])
        field = step.query_one("#field-area_clear")
        assert field.value == "yes" and field.disabled
        assert str(step.query_one("#entry-note", Static).render()) == "Values are entered and corrected by operator."
        assert [b.id for b in step.query("#actions Button")] == ["sign-Verified", "back"]
        assert app.focused is step.query_one("#sign-Verified")  # gloved: Enter opens the signature
        await pilot.press("y")
        assert field.value == "yes" and kiosk.session.load_draft("PB-2026-001", "line-clearance") is None


@pytest.mark.req("P11-70")
async def test_an_operator_withdraws_a_signature_given_at_the_wrong_batch(demo, clock):
    kiosk, users = demo
    ana_performs_line_clearance(kiosk, clock, users["ana.op"].totp_secret)
    app = make_app(kiosk, idle_check_s=3600)
    told = notices(app)
    async with app.run_test(size=(120, 40)) as pilot:
        step = await open_first_step(pilot, app, clock, users["ana.op"])
        assert [b.id for b in step.query("#actions Button")] == ["sign-Verified", "correct", "withdraw", "back"]
        assert str(step.query_one("#withdraw").label) == "Withdraw my Performed"
        step.query_one("#withdraw").press()
        await wait_for(pilot, lambda: app.screen.query("#reason"), "the reason dialog")
        await type_text(pilot, "wrong batch, this was PB-2026-002")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist after withdrawing")
        assert told[-1] == "Performed withdrawn; the step must be signed again."
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the step again")
        assert "TAKEN BACK: sign again" in str(app.screen.query_one("#step-status").render())
        assert "[taken back: signed in error: wrong batch, this was PB-2026-002]" in str(
            app.screen.query_one("#signatures").render())
        assert not app.screen.query("#withdraw")  # nothing of Ana's stands on the step now
    last = parse_raw(list(kiosk.store.iter_rows())[-1].raw)[0]
    assert last.type == "signature.invalidated" and last.body["cause"] == "signed_in_error"


@pytest.mark.req("P11-70")
async def test_a_corrected_step_can_be_corrected_again_on_the_screen_before_it_is_signed(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        step = await open_first_step(pilot, app, clock, users["ana.op"])
        assert not step.query("#correct")  # nothing recorded yet: the values are simply typed
        await type_text(pilot, "yes")
        step.query_one("#sign-Performed").press()
        await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the sign dialog")
        await enter_credentials(pilot, clock, "ana.op", DEMO_PASSWORD, users["ana.op"].totp_secret)
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "back to the worklist")
        signed = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "step.signed"][-1]
        kiosk.signing.correct(signed.body["batch_id"], "line-clearance", {"area_clear": "no"}, "misread the checklist")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the step again")
        assert "TAKEN BACK: sign again" in str(app.screen.query_one("#step-status").render())
        assert app.screen.query("#correct")  # no valid signature left, but a value is recorded
        # The correction and the signature read as the printed record does: labels, units, times.
        shown = screen_text(app)
        assert "UTC by ana.op: Area clear: yes → no (misread the checklist)" in shown, shown
        assert "GMT (2026-" in shown and " UTC)" in shown and "000Z" not in shown
        # Corrected again on the screen: the new value, a reason, and the step is to be signed again.
        told = notices(app)
        app.screen.query_one("#field-area_clear").value = "yes"
        app.screen.query_one("#correct").press()
        await wait_for(pilot, lambda: app.screen.query("#reason"), "the reason dialog")
        await type_text(pilot, "checklist re-read with the supervisor")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist after the correction")
        assert told[-1] == "Correction recorded; the step must be signed again."
    corrections = [parse_raw(r.raw)[0].body for r in kiosk.store.iter_rows() if r.type == "step.corrected"]
    assert [(c["old"], c["new"]) for c in corrections][-1] == ({"area_clear": "no"}, {"area_clear": "yes"})
