"""Starting a batch from the worklist (Pilot, real services, FakeClock)."""

import pytest

from textual.widgets import OptionList

from kiosk.app import make_app
from kiosk.domain.records import parse_raw
from screens.batch_dialog import NewBatchDialog
from screens.ports import RecipeChoice
from screens.worklist import WorklistScreen
from tests.ui.flows import login, notices, screen_text, type_text, wait_for


def problem(app):
    found = app.screen.query("#problem")
    return str(found.first().render()) if found else ""


@pytest.mark.req("P11-10f")
@pytest.mark.req("DI-ALCOA")
async def test_a_supervisor_starts_a_batch_from_a_registered_recipe(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    told = notices(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await login(pilot, clock, users["sam.sup"])
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewBatchDialog), "the new-batch dialog")
        app.screen.query_one("#ok").press()
        await pilot.pause()
        assert "Enter the batch ID." in str(app.screen.query_one("#message").render())
        # An id already used is refused; the dialog opens again as typed, with the reason at its top.
        await type_text(pilot, "PB-2026-001")
        first = app.screen
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NewBatchDialog) and app.screen is not first,
                       "the dialog again")
        assert problem(app) == "batch PB-2026-001 already exists"
        assert app.screen.query_one("#batch-id").value == "PB-2026-001"
        app.screen.query_one("#batch-id").value = "PB-2026-002"
        app.screen.query_one("#recipe").value = "buffer-prep@4"
        app.screen.query_one("#ok").press()
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist again")
        await pilot.pause()
        shown = screen_text(app)
        assert "Steps of batch PB-2026-002" in shown and "Line clearance" in shown
        assert told[-1] == "Batch PB-2026-002 started from buffer-prep@4; the start is recorded."
    created = [parse_raw(r.raw)[0].body for r in kiosk.store.iter_rows() if r.type == "batch.created"][-1]
    assert created["batch_id"] == "PB-2026-002" and created["recipe_key"] == "buffer-prep@4"
    assert created["actor"]["user_id"] == "sam.sup" and len(created["recipe_hash"]) == 64


async def test_with_no_recipe_registered_the_dialog_says_who_registers_one():
    from textual.app import App

    class OneDialog(App):
        def on_mount(self) -> None:
            self.push_screen(NewBatchDialog([]), self.exit)

    app = OneDialog()
    async with app.run_test(size=(100, 30)) as pilot:
        await type_text(pilot, "B-1")
        app.screen.query_one("#ok").press()
        await pilot.pause()
        assert "an admin registers one (kiosk admin recipes register)" in str(app.screen.query_one("#message").render())
        assert isinstance(app.screen, NewBatchDialog)  # nothing to start from: it stays open


@pytest.mark.req("P11-10g")
async def test_an_operator_is_offered_only_the_recipes_their_role_may_start(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await login(pilot, clock, users["ana.op"])
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist")
        shown = screen_text(app)
        assert "not started · 0/5 steps" in shown and "not started · 0/6 steps" in shown
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewBatchDialog), "the new-batch dialog")
        # tablet-compression@8 is started by supervisors and QA only (its start_roles).
        overlay = app.screen.query_one("#recipe").query_one(OptionList)
        offered = [str(overlay.get_option_at_index(i).prompt) for i in range(overlay.option_count)]
        assert offered == ["Phosphate buffer 0.1 M, pH 7.0 (buffer-prep@4)"]


async def test_a_role_that_may_start_no_recipe_is_told_who_starts_them():
    from textual.app import App

    class OneDialog(App):
        def on_mount(self) -> None:
            self.push_screen(NewBatchDialog([RecipeChoice("tablet-compression@8", "Tablets", "supervisor or qa",
                                                          False)]), self.exit)

    app = OneDialog()
    async with app.run_test(size=(100, 30)) as pilot:
        await type_text(pilot, "B-1")
        app.screen.query_one("#ok").press()
        await pilot.pause()
        assert str(app.screen.query_one("#message").render()) == (
            "Your role may not start a batch of any recipe registered here. "
            "They are started: tablet-compression@8 by supervisor or qa.")
        assert isinstance(app.screen, NewBatchDialog)


@pytest.mark.req("P11-10g")
@pytest.mark.req("DI-ALCOA")
async def test_qa_cancels_a_batch_started_in_error_at_an_operators_terminal(demo, clock):
    from screens.dialogs import CredentialsDialog
    from screens.step import ReasonDialog, StepScreen
    from tests.ui.flows import enter_credentials
    from kiosk.demo import DEMO_PASSWORD

    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    told = notices(app)

    async def cancel(who):
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonDialog), "the reason dialog")
        await type_text(pilot, "started against the wrong order")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the credentials dialog")
        await enter_credentials(pilot, clock, who.user_id, DEMO_PASSWORD, who.totp_secret)
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen) and told, "the outcome")

    async with app.run_test(size=(120, 40)) as pilot:
        await login(pilot, clock, users["ana.op"])
        assert "Steps of batch PB-2026-001" in screen_text(app)  # the newest batch, highlighted
        await cancel(users["ana.op"])  # the operator noticed, but may not cancel
        assert told.pop() == "a batch is cancelled by a supervisor or QA; Ana Ortiz is neither"
        await cancel(users["quinn.qa"])
        assert told.pop() == "Batch PB-2026-001 is cancelled; the cancellation is recorded."
        await pilot.pause()
        assert "CANCELLED · 0/5 steps" in screen_text(app)
        await pilot.press("enter")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the step screen")
        shown = screen_text(app)
        assert "CANCELLED: batch PB-2026-001 was cancelled by Quinn QA (qa)" in shown
        assert not app.screen.query("Button#correct") and not [b for b in app.screen.query("Button")
                                                                 if (b.id or "").startswith("sign-")]
        assert all(field.disabled for field in app.screen.query("Input"))
    cancelled = [parse_raw(r.raw)[0].body for r in kiosk.store.iter_rows() if r.type == "batch.cancelled"]
    assert [(c["batch_id"], c["actor"]["user_id"], c["reason"]) for c in cancelled] == [
        ("PB-2026-001", "quinn.qa", "started against the wrong order")]


@pytest.mark.req("A11-8")
async def test_qa_sees_the_batchs_exceptions_on_the_approval_step(demo, clock):
    from screens.step import StepScreen

    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await login(pilot, clock, users["quinn.qa"])
        await pilot.press("enter")  # PB-2026-001, then its last step: QA approval
        for _ in range(4):
            await pilot.press("down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the approval step")
        assert "Review by exception: none in this batch" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist")
        await pilot.press("up", "up", "up", "up", "enter")  # the first step takes no approval: no review line
        await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the first step")
        assert "Review by exception" not in screen_text(app)
