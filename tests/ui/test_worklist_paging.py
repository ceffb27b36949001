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
