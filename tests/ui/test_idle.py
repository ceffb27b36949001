"""Inactivity: warning with countdown, then lock; measured from real input (A11d-11)."""

from __future__ import annotations

import pytest
from textual.app import ComposeResult
from textual.widgets import Button, Input

from screens.base import KioskScreen
from screens.dialogs import IdleWarning
from tests.ui.conftest import POLICY, log_in, make_app

WARN_AT = POLICY.idle_timeout_s - POLICY.idle_warning_s  # 240 s


class CountingScreen(KioskScreen):
    def __init__(self) -> None:
        super().__init__()
        self.presses = 0

    def compose(self) -> ComposeResult:
        yield Input(id="entry")
        yield Button("Count", id="count")

    def on_button_pressed(self) -> None:
        self.presses += 1


@pytest.mark.req("A11d-11")
async def test_idle_warning_appears_at_timeout_minus_warning(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        clock.advance(WARN_AT - 1)
        app.check_inactivity()
        await pilot.pause()
        assert app.idle_warning is None
        clock.advance(1)
        app.check_inactivity()
        await pilot.pause()
        assert isinstance(app.screen, IdleWarning)
        assert app.screen.seconds_left == 60
        clock.advance(15)
        app.check_inactivity()
        await pilot.pause()
        assert app.screen.seconds_left == 45  # live countdown
        assert "45 s" in str(app.screen.query_one("#countdown").render())


@pytest.mark.req("A11d-11")
async def test_any_key_dismisses_the_warning_and_is_not_passed_on(clock, services) -> None:
    screen = CountingScreen()
    app = make_app(clock, services, home_factory=lambda s: screen)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        screen.query_one("#count").focus()
        clock.advance(WARN_AT)
        app.check_inactivity()
        await pilot.pause()
        assert isinstance(app.screen, IdleWarning)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert screen.presses == 0  # the key only dismissed the warning
        assert app.idle_warning is None
        clock.advance(WARN_AT - 1)  # idle counted again from that key
        app.check_inactivity()
        await pilot.pause()
        assert app.screen is screen and app.session is not None


@pytest.mark.req("A11d-11")
async def test_mouse_dismisses_the_warning_without_clicking_below(clock, services) -> None:
    screen = CountingScreen()
    app = make_app(clock, services, home_factory=lambda s: screen)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        await pilot.click("#count")
        assert screen.presses == 1
        clock.advance(WARN_AT)
        app.check_inactivity()
        await pilot.pause()
        assert isinstance(app.screen, IdleWarning)
        from textual import events

        # A real tap arrives at the App (pilot.click posts to the widget directly).
        app.post_message(events.MouseDown(None, 5, 5, 0, 0, 1, False, False, False, screen_x=5, screen_y=5))
        app.post_message(events.MouseUp(None, 5, 5, 0, 0, 1, False, False, False, screen_x=5, screen_y=5))
        await pilot.pause()
        await pilot.pause()
        assert app.screen is screen
        assert screen.presses == 1


@pytest.mark.req("A11d-11")
async def test_idle_lock_at_timeout(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        clock.advance(WARN_AT)
        app.check_inactivity()
        await pilot.pause()
        clock.advance(POLICY.idle_warning_s)
        app.check_inactivity()
        await pilot.pause()
        await pilot.pause()
        assert app.screen_stack == [app.lock_screen]
        assert app.session is None
        assert services.names()[-1] == "on_idle_lock"
        assert app.lock_screen.note_text == (
            "Locked — Ana Ortiz was logged in; any draft they had not signed is kept."
        )


@pytest.mark.req("A11d-11")
async def test_typing_into_a_field_counts_as_activity(clock, services) -> None:
    screen = CountingScreen()
    app = make_app(clock, services, home_factory=lambda s: screen)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        screen.query_one("#entry").focus()
        clock.advance(WARN_AT - 10)
        await pilot.press("4", "2")  # consumed by the Input, still seen by the App
        clock.advance(WARN_AT - 10)
        app.check_inactivity()
        await pilot.pause()
        assert app.idle_warning is None
        assert screen.query_one("#entry", Input).value == "42"


@pytest.mark.req("A11d-11")
async def test_no_idle_lock_without_a_session(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        clock.advance(10_000)
        app.check_inactivity()
        await pilot.pause()
        assert app.screen is app.lock_screen
        assert "on_idle_lock" not in services.names()


@pytest.mark.req("A11d-11")
async def test_idle_check_runs_on_an_interval(clock, services) -> None:
    """The real wiring: set_interval calls the check (short interval, FakeClock time)."""
    app = make_app(clock, services, idle_check_s=0.02)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        clock.advance(POLICY.idle_timeout_s)
        for _ in range(50):
            await pilot.pause(0.02)
            if app.session is None:
                break
        assert app.session is None
        assert "on_idle_lock" in services.names()


@pytest.mark.req("A11d-11")
def test_policy_warning_must_be_below_timeout(clock, services) -> None:
    from types import SimpleNamespace

    with pytest.raises(ValueError):
        make_app(clock, services, session_policy=SimpleNamespace(idle_timeout_s=60, idle_warning_s=60))


@pytest.mark.req("A11d-11")
async def test_half_typed_login_is_cleared_after_the_idle_timeout(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press(*"aortiz", "enter", *"corr")
        clock.advance(POLICY.idle_timeout_s - 1)
        app.check_inactivity()
        assert app.lock_screen.has_typed_input()
        clock.advance(1)
        app.check_inactivity()
        await pilot.pause()
        assert not app.lock_screen.has_typed_input()
        assert app.lock_screen.query_one("#password", Input).value == ""
