"""Kiosk escape: no quit, no palette, no suspend for operators; admin exit only (A11-12)."""

from __future__ import annotations

import pytest
from textual import events
from textual.app import App
from textual.binding import Binding
from textual.command import CommandPalette
from textual.screen import ModalScreen, Screen
from textual.widgets import Input

from screens.app import KioskApp
from screens.dialogs import AdminExitDialog
from screens.login import LockScreen
from tests.ui.conftest import log_in, make_app, settle

ESCAPE_KEYS = ["ctrl+q", "ctrl+c", "ctrl+z", "ctrl+p", "ctrl+backslash", "escape", "ctrl+d", "ctrl+x"]


def _default_binding_keys() -> list[str]:
    """Every key in Textual's own App / Screen / ModalScreen bindings."""
    keys: set[str] = set()
    for cls in (App, Screen, ModalScreen):
        for binding in Binding.make_bindings(cls.BINDINGS):
            keys.add(binding.key)
    return sorted(keys)


def assert_still_running(app: KioskApp) -> None:
    assert app.is_running
    assert not app._exit
    assert app.return_code is None
    assert not any(isinstance(s, CommandPalette) for s in app.screen_stack)


@pytest.mark.req("A11-12")
def test_default_bindings_cover_the_known_escape_keys() -> None:
    keys = _default_binding_keys()
    assert {"ctrl+q", "ctrl+c"} <= set(keys)


@pytest.mark.req("A11-12")
async def test_app_binds_only_the_lock_key(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        assert KioskApp.ENABLE_COMMAND_PALETTE is False
        app_keys = {b.key for b in Binding.make_bindings(KioskApp.BINDINGS)}
        assert app_keys == {"f12"}
        assert all(b.priority for b in Binding.make_bindings(KioskApp.BINDINGS))
        screen_keys = set(app.screen._bindings.key_to_bindings)
        assert "ctrl+c" not in screen_keys and "ctrl+q" not in screen_keys
        await pilot.pause()


@pytest.mark.req("A11-12")
@pytest.mark.parametrize("key", ESCAPE_KEYS + _default_binding_keys())
async def test_quit_keys_ignored_on_lock_screen(clock, services, key) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(key)
        await pilot.pause()
        assert_still_running(app)
        assert isinstance(app.screen, LockScreen)


@pytest.mark.req("A11-12")
@pytest.mark.parametrize("key", ESCAPE_KEYS)
async def test_quit_keys_ignored_in_a_session(clock, services, key) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        session_screen = app.screen
        await pilot.press(key, key)
        await pilot.pause()
        assert_still_running(app)
        assert app.screen is session_screen
        assert app.session is not None


@pytest.mark.req("A11-12")
@pytest.mark.parametrize(
    "action",
    ["quit", "help_quit", "suspend_process", "command_palette", "pop_screen", "back",
     "switch_mode('x')", "push_screen('x')", "switch_screen('x')", "change_theme", "screenshot"],
)
async def test_quit_and_stack_actions_are_neutralised(clock, services, action) -> None:
    """Even if some markup (@click=app.quit) or a future binding reaches them."""
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await app.run_action(action)
        await pilot.pause()
        assert_still_running(app)
        assert app.screen is app.lock_screen


@pytest.mark.req("A11-12")
async def test_pasted_escape_sequences_stay_text(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        nasty = "\x1b[201~\x03\x1a\x11\x1c\x1b]52;c;ZXZpbA==\x07\x1b[2J"
        app.post_message(events.Paste(nasty))
        await pilot.pause()
        assert_still_running(app)
        assert isinstance(app.focused, Input)
        assert app.focused.value  # pasted as text into the field, nothing executed


@pytest.mark.req("A11-12")
async def test_admin_exit_refuses_an_operator(clock, services) -> None:
    exits: list[str] = []
    app = make_app(clock, services, on_exit_request=exits.append)
    async with app.run_test() as pilot:
        await pilot.press("f10")
        await pilot.pause()
        assert isinstance(app.screen, AdminExitDialog)
        await pilot.press(*"aortiz", "enter", *"correct horse", "enter")
        await settle(app, pilot)
        assert_still_running(app)
        assert isinstance(app.screen, AdminExitDialog)
        assert "Only an administrator" in str(app.screen.query_one("#message").render())
        assert ("verify_admin_exit", "aortiz") in services.calls
        assert exits == []
        # Escape cancels the dialog; still running.
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.lock_screen
        assert_still_running(app)


@pytest.mark.req("A11-12")
async def test_admin_exit_with_admin_credentials_exits(clock, services) -> None:
    exits: list[str] = []
    app = make_app(clock, services, on_exit_request=exits.append)
    async with app.run_test() as pilot:
        await pilot.click("#admin-exit")
        await pilot.pause()
        assert isinstance(app.screen, AdminExitDialog)
        await pilot.press(*"admin", "enter", *"admin secret", "enter")
        await settle(app, pilot)
        assert exits == ["admin"]
        assert app._exit
    assert app.return_code == 0


@pytest.mark.req("A11-12")
async def test_admin_exit_wrong_password_refused(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press("f10")
        await pilot.pause()
        await pilot.press(*"admin", "enter", *"guess", "enter")
        await settle(app, pilot)
        assert_still_running(app)
        assert isinstance(app.screen, AdminExitDialog)
        assert app.screen.query_one("#password", Input).value == ""


@pytest.mark.req("A11-12")
@pytest.mark.parametrize("key", ["ctrl+q", "ctrl+c", "ctrl+z", "ctrl+p", "ctrl+backslash", "ctrl+x", "super+c"])
async def test_quit_keys_ignored_inside_a_dialog(clock, services, key) -> None:
    from screens.dialogs import CredentialsDialog

    results: list[object] = []
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        dialog = CredentialsDialog("Sign step 4", "Meaning: Performed")
        app.open_dialog(dialog, results.append)
        await pilot.pause()
        await pilot.press(*"aortiz", "tab", *"pw", key)
        await pilot.pause()
        assert_still_running(app)
        assert app.screen is dialog and results == []
        assert app.clipboard == ""
