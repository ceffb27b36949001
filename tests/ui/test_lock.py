"""F12 locks from every screen and dialog; a dialog locked away returns None (A11d-11)."""

from __future__ import annotations

import pytest
from textual.app import ComposeResult
from textual.widgets import Button, Input

from screens.base import KioskScreen
from screens.dialogs import ConfirmDialog, CredentialsDialog, IdleWarning
from tests.ui.conftest import log_in, make_app


class WorkScreen(KioskScreen):
    """A tiny home screen that opens a sign dialog itself (the screen is the requester)."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[object] = []

    def compose(self) -> ComposeResult:
        yield Input(id="value")
        yield Button("Sign", id="sign")

    def on_button_pressed(self) -> None:
        self.app.push_screen(CredentialsDialog("Sign step 4", "Meaning: Performed"), self.results.append)


@pytest.mark.req("A11d-11")
async def test_f12_in_sign_dialog_locks_and_dialog_result_is_none(clock, services) -> None:
    results: list[object] = []
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        app.open_dialog(CredentialsDialog("Sign step 4", "Meaning: Performed"), results.append)
        await pilot.pause()
        assert isinstance(app.screen, CredentialsDialog)
        await pilot.press(*"correct h")  # half-typed password, focus in a field
        await pilot.press("f12")
        await pilot.pause()
        await pilot.pause()
        assert app.screen is app.lock_screen
        assert results == [None]  # None = not signed
        assert app.session is None
        assert services.names()[-1] == "on_manual_lock"
        assert "Ana Ortiz" in app.lock_screen.note_text
        assert "any draft they had not signed is kept" in app.lock_screen.note_text


@pytest.mark.req("A11d-11")
async def test_f12_pops_nested_dialogs_opened_by_a_screen(clock, services) -> None:
    work = WorkScreen()
    app = make_app(clock, services, home_factory=lambda session: work)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        assert app.screen is work
        await pilot.click("#sign")
        await pilot.pause()
        app.open_dialog(ConfirmDialog("Really?", "Nested"))
        await pilot.pause()
        assert len(app.screen_stack) == 4
        await pilot.press("f12")
        await pilot.pause()
        await pilot.pause()
        assert app.screen_stack == [app.lock_screen]
        assert work.results == [None]  # the sign dialog's callback: not signed


@pytest.mark.req("A11d-11")
async def test_f12_with_focus_in_an_input_on_the_lock_screen_clears_the_form(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(*"aortiz", "enter", *"half")
        await pilot.press("f12")
        await pilot.pause()
        assert app.screen is app.lock_screen
        assert app.lock_screen.query_one("#password", Input).value == ""
        assert app.lock_screen.query_one("#user-id", Input).value == ""
        assert "on_manual_lock" not in services.names()  # nobody was logged in


@pytest.mark.req("A11d-11")
async def test_f12_from_idle_warning_locks(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        clock.advance(240)
        app.check_inactivity()
        await pilot.pause()
        assert isinstance(app.screen, IdleWarning)
        await pilot.press("f12")
        await pilot.pause()
        await pilot.pause()
        assert app.screen_stack == [app.lock_screen]
        assert services.names()[-1] == "on_manual_lock"


@pytest.mark.req("A11d-11")
async def test_lock_button_and_logout(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        await pilot.click("#lock")
        await pilot.pause()
        assert app.screen is app.lock_screen and app.session is None
        await log_in(app, pilot)
        await pilot.click("#logout")
        await pilot.pause()
        assert app.screen is app.lock_screen
        assert services.names()[-1] == "logout"
        assert app.lock_screen.note_text == "Ana Ortiz logged out."
