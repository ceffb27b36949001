"""Admin user screens on the real services (Pilot, FakeClock): create, roles, (de)activate, reset, badges."""

import pytest

from kiosk.app import make_app
from kiosk.domain.records import parse_raw
from screens.admin_dialogs import BadgeDialog, ChoiceDialog, IssuedDialog, NewUserDialog, ResetDialog, RolesDialog
from screens.admin_users import UsersScreen
from screens.step import ReasonDialog
from screens.worklist import WorklistScreen
from tests.ui.flows import login, screen_text, type_text, wait_for


def records(kiosk, rtype):
    return [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == rtype]


async def open_users(pilot, clock, users):
    await login(pilot, clock, users["admin"])
    await pilot.press("f6")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, UsersScreen), "the users screen")


async def open_new_user_form(pilot, clock, users):
    await open_users(pilot, clock, users)
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, NewUserDialog), "the new-user form")


async def choose(pilot, label_key):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChoiceDialog), "the action menu")
    pilot.app.screen.query_one(f"#choice-{label_key}").press()


async def give_reason(pilot, reason):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ReasonDialog), "the reason dialog")
    await type_text(pilot, reason)
    await pilot.press("enter")


def form_problem(app):
    """The refusal a form opened again shows at its top."""
    problem = app.screen.query("#problem")
    return str(problem.first().render()) if problem else ""


async def select_user(pilot, user_id):
    table = pilot.app.screen.query_one("#user-table")
    table.move_cursor(row=table.get_row_index(user_id))
    await pilot.press("enter")


@pytest.mark.req("P11-100")
@pytest.mark.req("P11-10d")
@pytest.mark.req("P11-10e")
async def test_admin_creates_a_user_and_sees_the_credentials_once(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_new_user_form(pilot, clock, users)
        await type_text(pilot, "new.op")
        await pilot.press("enter")
        await type_text(pilot, "Nia Operator")
        await pilot.press("enter")
        await type_text(pilot, ";4242")  # the badge reader's prefix, then the id
        dialog = app.screen
        dialog.query_one("#identity").value = True
        dialog.query_one("#reason").focus()
        await type_text(pilot, "new starter, line 2")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, IssuedDialog), "the one-time credentials")
        shown = screen_text(app)
        issued = app.screen._issued
        assert "Temporary password" in shown and issued.password in shown
        assert "█" in str(app.screen.query_one("#issued-qr").render())  # the enrolment QR
        await pilot.press("enter")  # Done
        await wait_for(pilot, lambda: isinstance(app.screen, UsersScreen), "back to the users")
        assert "User new.op created" in app.screen.message_text
        assert "new.op" in screen_text(app) and "4242" in screen_text(app)
    created = records(kiosk, "user.created")[-1].body
    assert created["new"]["badge_id"] == "4242" and created["reason"] == "new starter, line 2"
    assert created["identity_verification"]["attested_by"] == "admin"
    assert kiosk.auth.authenticate("new.op", issued.password, None, require_totp=False).ok


@pytest.mark.req("P11-100")
async def test_without_the_identity_check_nothing_is_issued_and_the_reason_shows(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_new_user_form(pilot, clock, users)
        await type_text(pilot, "new.op")
        app.screen.query_one("#name").value = "Nia Operator"
        app.screen.query_one("#reason").value = "new starter"
        app.screen.query_one("#ok").press()
        # The form opens again as typed, with the refusal in it; the admin only ticks what was missing.
        await wait_for(pilot, lambda: isinstance(app.screen, NewUserDialog) and "identity" in form_problem(app),
                       "the form again, with the refusal")
        form = app.screen
        assert form.query_one("#user-id").value == "new.op" and form.query_one("#name").value == "Nia Operator"
        assert form.query_one("#reason").value == "new starter" and form.query_one("#role-operator").value
        assert kiosk.auth.user("new.op") is None
        form.query_one("#identity").value = True
        form.query_one("#ok").press()
        await wait_for(pilot, lambda: isinstance(app.screen, IssuedDialog), "the one-time credentials")
    assert kiosk.auth.user("new.op") is not None


async def test_the_form_names_every_problem_at_once_in_its_own_order(demo, clock):
    """An admin who got four things wrong fixes them in one pass, not four tries."""
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_new_user_form(pilot, clock, users)
        await type_text(pilot, "Jane Doe")
        form = app.screen
        form.query_one("#role-operator").value = False
        form.query_one("#ok").press()
        await wait_for(pilot, lambda: isinstance(app.screen, NewUserDialog) and app.screen is not form,
                       "the form again")
        assert form_problem(app).splitlines() == [
            "a user id is 2-64 characters: letters a-z, digits, '.', '_' or '-', starting with a letter or digit",
            "printed name cannot be empty",
            "roles must be one or more of admin, operator, qa, supervisor",
            "confirm that you verified this person's identity before issuing a signature (11.100(b))",
            "reason cannot be empty"]
        assert "reason cannot be empty" in screen_text(app)  # all of them in sight, even on an 80x24 terminal
        assert app.screen.query_one("#user-id").value == "Jane Doe"
    assert [u.user_id for u in kiosk.auth.users() if u.user_id.startswith("jane")] == []


async def test_a_taken_user_id_reopens_the_form_as_typed(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_new_user_form(pilot, clock, users)
        await type_text(pilot, "Ana.Op")
        form = app.screen
        form.query_one("#name").value = "Ana Other"
        form.query_one("#identity").value = True
        form.query_one("#reason").value = "new starter"
        form.query_one("#ok").press()
        await wait_for(pilot, lambda: isinstance(app.screen, NewUserDialog) and app.screen is not form,
                       "the form again")
        assert "user id 'ana.op' is taken" in form_problem(app)
        assert "user id 'ana.op' is taken" in screen_text(app)  # in sight, even on an 80x24 terminal
        assert app.screen.query_one("#name").value == "Ana Other" and app.screen.query_one("#identity").value
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, UsersScreen), "back to the users")
    assert [u.printed_name for u in kiosk.auth.users() if u.user_id == "ana.op"] == ["Ana Ortiz"]


@pytest.mark.req("P11-10d")
@pytest.mark.req("A11-9")
async def test_role_change_deactivation_and_reactivation_need_a_reason(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_users(pilot, clock, users)
        await select_user(pilot, "ben.op")
        await choose(pilot, "roles")
        await wait_for(pilot, lambda: isinstance(app.screen, RolesDialog), "the roles dialog")
        app.screen.query_one("#role-qa").value = True
        app.screen.query_one("#reason").focus()
        await type_text(pilot, "qualified as QA reviewer")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, UsersScreen), "the users screen")
        assert kiosk.auth.user("ben.op").roles == ("operator", "qa")
        await select_user(pilot, "ben.op")
        await choose(pilot, "deactivate")
        await give_reason(pilot, "left the company")
        await wait_for(pilot, lambda: kiosk.auth.user("ben.op").status == "deactivated", "the deactivation")
        await select_user(pilot, "ben.op")
        await choose(pilot, "reactivate")
        await give_reason(pilot, "rehired")
        await wait_for(pilot, lambda: kiosk.auth.user("ben.op").status == "active", "the re-activation")
        assert "ben.op is active" in app.screen.message_text
    changes = records(kiosk, "user.updated")
    assert [c.body["reason"] for c in changes[-3:]] == ["qualified as QA reviewer", "left the company", "rehired"]
    assert changes[-2].body["old"] == {"status": "active"} and changes[-2].body["new"] == {"status": "deactivated"}


@pytest.mark.req("P11-300c")
async def test_reset_credentials_shows_new_ones_once_and_old_ones_stop_working(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_users(pilot, clock, users)
        await select_user(pilot, "ana.op")
        await choose(pilot, "reset")
        await wait_for(pilot, lambda: isinstance(app.screen, ResetDialog), "the reset dialog")
        await pilot.press("space")  # identity verified
        app.screen.query_one("#reason").focus()
        await type_text(pilot, "lost phone")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, IssuedDialog), "the new credentials")
        issued = app.screen._issued
        assert issued.user_id == "ana.op" and issued.totp_uri.startswith("otpauth://")
        await pilot.press("f12")  # a lock closes the one-time display: nobody else sees it later
        await wait_for(pilot, lambda: app.screen is app.lock_screen, "the lock screen")
    assert not kiosk.auth.authenticate("ana.op", "demo kiosk password", None, require_totp=False).ok
    assert kiosk.auth.authenticate("ana.op", issued.password, None, require_totp=False).ok


@pytest.mark.req("P11-100")
@pytest.mark.req("P11-300c")
async def test_badges_are_assigned_revoked_and_never_reused(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_users(pilot, clock, users)
        await select_user(pilot, "ana.op")
        await choose(pilot, "revoke-badge")
        await give_reason(pilot, "badge lost")
        await wait_for(pilot, lambda: kiosk.auth.user("ana.op").badge_id is None, "the revocation")
        await select_user(pilot, "ben.op")
        await choose(pilot, "badge")
        await wait_for(pilot, lambda: isinstance(app.screen, BadgeDialog), "the badge dialog")
        await type_text(pilot, ";1001")  # Ana's old badge
        await pilot.press("tab")
        await type_text(pilot, "found in a drawer")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "never reused" in app.screen.message_text, "the refusal")
        assert kiosk.auth.user("ben.op").badge_id == "1002"
        assert kiosk.auth.user_by_badge("1001") is None


@pytest.mark.req("P11-10g")
async def test_an_operator_has_no_admin_keys(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, clock, users["ana.op"])
        keys = dict(app.screen.query_one("KeyBar").keys())
        assert "F6" not in keys and "F4" not in keys and "F3" not in keys and keys["F12"] == "Lock"
        for key in ("f3", "f4", "f6", "f7", "f8"):
            await pilot.press(key)
            await pilot.pause(0.05)
            assert isinstance(app.screen, WorklistScreen)
