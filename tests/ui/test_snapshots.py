"""SVG snapshots of the main shell screens at 80x24 and 120x40 (reviewed in PRs).

Update after a deliberate visual change with ``pytest tests/ui --snapshot-update``.
"""

from __future__ import annotations

import datetime as dt

import pytest

from kiosk.domain.clock import UTC, FakeClock
from screens.dialogs import CredentialsDialog
from screens.ports import SessionInfo, SyncState
from screens.widgets import StatusBar
from tests.ui.conftest import POLICY, log_in, make_app
from tests.ui.fakes import FakeServices

SIZES = [(80, 24), (120, 40)]


def _app(totp: bool = True):
    clock = FakeClock(dt.datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC), zone="Europe/Dublin")
    services = FakeServices(
        totp=totp,
        sync=SyncState(queued=3, last_sync=dt.datetime(2026, 11, 24, 9, 58, tzinfo=UTC), offline=False),
    )
    return make_app(clock, services), clock, services


@pytest.mark.req("A11-12")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_login_screen(snap_compare, size) -> None:
    app, clock, services = _app()
    assert snap_compare(app, terminal_size=size)


@pytest.mark.req("A11d-11")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_locked_after_idle(snap_compare, size) -> None:
    app, clock, services = _app()

    async def run_before(pilot) -> None:
        app.lock_screen.show_locked(SessionInfo("aortiz", "Ana Ortiz", "Operator"), "idle")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.req("A11d-11")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_idle_warning(snap_compare, size) -> None:
    app, clock, services = _app(totp=False)

    async def run_before(pilot) -> None:
        await log_in(app, pilot)
        clock.advance(POLICY.idle_timeout_s - POLICY.idle_warning_s + 17)
        app.check_inactivity()
        for _ in range(3):  # under load the warning needs a few frames to mount and lay out
            await pilot.wait_for_scheduled_animations()
            await pilot.pause(0.05)
        for field in app.screen.query("Input"):
            field.cursor_blink = False  # a blinking cursor would make the snapshot depend on timing
        # The status bar redraws the (fake) time on a real 1 s timer: under load that timer fired during the
        # test and the bar showed the advanced time, otherwise the time of login. Redraw it now, always.
        for screen in app.screen_stack:
            for bar in screen.query(StatusBar):
                bar.poll()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sign_credentials_dialog(snap_compare, size) -> None:
    app, clock, services = _app(totp=False)

    async def run_before(pilot) -> None:
        await log_in(app, pilot)
        app.open_dialog(CredentialsDialog("Sign step 4: Weigh API", "Meaning: Performed", ask_totp=True))
        await pilot.pause()
        await pilot.press(*"aortiz", "enter", *"secret")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
