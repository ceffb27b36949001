"""The worklist pages its batches: thousands of batches open as fast as ten (Pilot, real services)."""

import pyotp
import pytest

from kiosk.app import make_app
from kiosk.demo import DEMO_PASSWORD
from screens.worklist import BATCH_PAGE
from tests.ui.flows import login, make_demo


@pytest.fixture
def busy_site(tmp_path, clock):
    kiosk, users = make_demo(tmp_path, clock)
    sup = users["sam.sup"]
    clock.advance(31)
    assert kiosk.session.login("sam.sup", DEMO_PASSWORD, pyotp.TOTP(sup.totp_secret).at(clock.now())).ok
    for i in range(2 * BATCH_PAGE + 3):
        clock.advance(1)
        kiosk.session.activity()
        kiosk.signing.create_batch(f"PB-X{i:04d}", "buffer-prep@4")
    kiosk.session.logout()
    yield kiosk, users
    kiosk.close()


def batch_ids(table):
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


@pytest.mark.req("P11-10f")
async def test_moving_past_a_page_loads_the_next_and_back(busy_site, clock):
    kiosk, users = busy_site
    total = 2 * BATCH_PAGE + 3 + 2
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, clock, users["ana.op"])
        table = app.screen.query_one("#batches")
        head = str(app.screen.query_one("#worklist-head").render())
        assert table.row_count == BATCH_PAGE and f"batches 1–{BATCH_PAGE} of {total}" in head
        first_page = batch_ids(table)
        assert first_page[0] == f"PB-X{2 * BATCH_PAGE + 2:04d}"  # newest first
        await pilot.press("ctrl+end", "down")
        await pilot.pause(0.1)
        assert batch_ids(table)[0] == f"PB-X{BATCH_PAGE + 2:04d}" and table.cursor_row == 0
        assert f"batches {BATCH_PAGE + 1}–{2 * BATCH_PAGE} of {total}" in str(app.screen.query_one("#worklist-head").render())
        steps_title = str(app.screen.query_one("#batch-title").render())
        assert f"PB-X{BATCH_PAGE + 2:04d}" in steps_title  # the highlighted batch's steps are shown
        await pilot.press("up")
        await pilot.pause(0.1)
        assert batch_ids(table) == first_page and table.cursor_row == BATCH_PAGE - 1
        for _ in range(3):
            await pilot.press("ctrl+end", "pagedown")
            await pilot.pause(0.1)
        assert set(batch_ids(table)[-2:]) == {"PB-2026-001", "TAB-2026-014"} and table.row_count == total - 2 * BATCH_PAGE


@pytest.mark.req("P11-10f")
async def test_a_scanned_or_typed_batch_id_goes_to_its_page_and_its_next_step(busy_site, clock):
    from screens.batch_dialog import FindBatchDialog
    from screens.step import StepScreen
    from screens.worklist import WorklistScreen
    from tests.ui.flows import type_text, wait_for

    kiosk, users = busy_site
    ana, ben = users["ana.op"], users["ben.op"]
    clock.advance(31)
    assert kiosk.session.login("ana.op", DEMO_PASSWORD, pyotp.TOTP(ana.totp_secret).at(clock.now())).ok
    values = {"area_clear": "yes"}
    clock.advance(31)
    kiosk.signing.sign(kiosk.signing.prepare("PB-X0001", "line-clearance", "Performed", values), DEMO_PASSWORD,
                       "ana.op", pyotp.TOTP(ana.totp_secret).at(clock.now()))
    clock.advance(31)
    kiosk.signing.witness(kiosk.signing.prepare("PB-X0001", "line-clearance", "Verified", values, witness=True),
                          "ben.op", DEMO_PASSWORD, pyotp.TOTP(ben.totp_secret).at(clock.now()))
    kiosk.session.logout()
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, clock, ana)
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, FindBatchDialog), "the go-to-batch dialog")
        await type_text(pilot, "x000")  # part of an id, in any case: ten batches hold it
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.query("#problem"), "the dialog again, with why")
        assert str(app.screen.query_one("#problem").render()) == (
            "10 batches hold that text: PB-X0000, PB-X0001, PB-X0002, PB-X0003, PB-X0004 and 5 more. "
            "Type more of the id.")
        assert app.screen.query_one("#find").value == "x000"  # as typed
        await type_text(pilot, "1")  # "type more of the id": added to what is there
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist")
        table, steps = app.screen.query_one("#batches"), app.screen.query_one("#steps")
        assert f"batches {2 * BATCH_PAGE + 1}–" in str(app.screen.query_one("#worklist-head").render())
        assert batch_ids(table)[table.cursor_row] == "PB-X0001"
        assert app.focused is steps and steps.cursor_row == 1  # line clearance is done: the weighing is next
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the step screen")
        assert "Weigh sodium phosphate" in str(app.screen.query_one(".dialog-title").render())
        assert "PB-X0001" in str(app.screen.query_one(".dialog-title").render())
