"""Dialogs return typed results; login and badge flows; argon2 runs off the UI thread."""

from __future__ import annotations

import threading

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from screens.dialogs import ConfirmDialog, CredentialsDialog, split_identity
from screens.ports import Credentials
from tests.ui.conftest import make_app, settle


class DialogApp(App[None]):
    """One tiny app: push a dialog, collect its result."""

    def __init__(self, dialog) -> None:
        super().__init__()
        self.dialog = dialog
        self.results: list[object] = []

    def compose(self) -> ComposeResult:
        yield Static("base")

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)


@pytest.mark.parametrize(("keys", "expected"), [(("enter",), False), (("escape",), False),
                                                (("shift+tab", "enter"), True), (("tab", "enter"), True)])
async def test_confirm_dialog_defaults_to_no(keys, expected) -> None:
    app = DialogApp(ConfirmDialog("Discard draft?", "The values you typed will be lost."))
    async with app.run_test() as pilot:
        await pilot.press(*keys)
        await pilot.pause()
        assert app.results == [expected]


@pytest.mark.req("P11-200a1")
async def test_credentials_dialog_enter_chain_returns_credentials() -> None:
    app = DialogApp(CredentialsDialog("Sign step 4", "Meaning: Performed", ask_totp=True))
    async with app.run_test() as pilot:
        await pilot.press(*"aortiz", "enter", *"pw", "enter", *"12a34", "enter")
        await pilot.pause()
        assert app.results == [Credentials(user_id="aortiz", password="pw", totp="1234", badge=None)]
        assert "pw" not in repr(app.results[0])


@pytest.mark.req("P11-200a1")
async def test_credentials_dialog_password_only_for_a_fixed_user() -> None:
    app = DialogApp(CredentialsDialog("Sign step 5", user_id="aortiz"))
    async with app.run_test() as pilot:
        assert app.focused is app.screen.query_one("#password")
        await pilot.press(*"pw", "enter")
        await pilot.pause()
        assert app.results == [Credentials(user_id="aortiz", password="pw")]


async def test_credentials_dialog_needs_a_password_and_escape_cancels() -> None:
    app = DialogApp(CredentialsDialog("Sign"))
    async with app.run_test() as pilot:
        await pilot.press(*"aortiz", "enter", "enter")
        await pilot.pause()
        assert app.results == []
        assert "Enter your password" in str(app.screen.query_one("#message").render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None]


@pytest.mark.req("P11-300d")
async def test_badge_scan_in_dialog_identifies_but_password_still_required() -> None:
    app = DialogApp(CredentialsDialog("Witness"))
    async with app.run_test() as pilot:
        await pilot.press(";", *"B-1001", "enter")  # the wedge reader: prefix, id, Enter
        await pilot.pause()
        user_field = app.screen.query_one("#user-id", Input)
        assert user_field.value == ""  # the badge id is never displayed
        assert app.focused is app.screen.query_one("#password")
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == []  # a badge never replaces the password
        await pilot.press(*"pw", "enter")
        await pilot.pause()
        assert app.results == [Credentials(user_id="", password="pw", badge="B-1001")]


def test_split_identity() -> None:
    assert split_identity(";123") == ("", "123")
    assert split_identity(" bob ") == ("bob", None)
    assert split_identity(";") == ("", None)


@pytest.mark.req("P11-300d")
async def test_badge_login_on_lock_screen(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(";", *"B-1001", "enter", *"correct horse", "enter")
        await settle(app, pilot)
        assert app.session is not None and app.session.user_id == "aortiz"
        assert services.calls[0] == ("login", "", "B-1001", None)


@pytest.mark.req("P11-300d")
async def test_unknown_badge_fails_with_the_service_message(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(";", *"B-9999", "enter", *"correct horse", "enter")
        await settle(app, pilot)
        assert app.session is None
        assert app.lock_screen.message_text == "User ID, password or code not accepted."
        assert app.lock_screen.query_one("#password", Input).value == ""


@pytest.mark.req("P11-300d")
async def test_failed_login_shows_service_message_and_clears_password(clock, services) -> None:
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(*"aortiz", "enter", *"wrong", "enter")
        await settle(app, pilot)
        assert app.session is None
        assert app.lock_screen.message_text == "User ID, password or code not accepted."
        assert app.lock_screen.query_one("#password", Input).value == ""


async def test_login_with_totp_field(clock, services) -> None:
    services.totp = True
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(*"aortiz", "enter", *"correct horse", "enter", *"123456", "enter")
        await settle(app, pilot)
        assert app.session is not None


async def test_login_runs_in_a_worker_thread_and_ui_stays_responsive(clock, services) -> None:
    services.login_gate = threading.Event()
    threads: list[int] = []
    original = services.login

    def login(credentials):
        threads.append(threading.get_ident())
        return original(credentials)

    services.login = login  # type: ignore[method-assign]
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(*"aortiz", "enter", *"correct horse", "enter")
        await pilot.pause()
        assert app.lock_screen.message_text == "Checking…"
        await pilot.press("shift+tab")  # the event loop still handles keys while login blocks
        await pilot.pause()
        assert app.focused is app.lock_screen.query_one("#user-id")
        services.login_gate.set()
        await settle(app, pilot)
        assert threads and threads[0] != threading.get_ident()
        assert app.session is not None


async def test_lock_during_login_drops_the_stale_answer(clock, services) -> None:
    services.login_gate = threading.Event()
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(*"aortiz", "enter", *"correct horse", "enter")
        await pilot.pause()
        await pilot.press("f12")  # someone else steps up and clears the form
        await pilot.pause()
        services.login_gate.set()
        await settle(app, pilot)
        assert app.session is None
        assert app.screen is app.lock_screen
        assert services.names() == ["login", "logout"]  # the stale session was ended
