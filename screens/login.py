"""The lock / login screen: the bottom of the screen stack, always.

Every lock (F12, idle, logout) pops back to this screen. It says who was
logged in and that any draft they had not signed is kept, and takes user id (or
badge) + password (+ one-time code). ``services.login`` runs in a worker
thread (argon2 must never freeze the UI); its message is shown as plain text
on failure.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from kiosk.domain.clock import Clock
from screens.base import FOCUS_BINDINGS, KioskScreen
from screens.dialogs import CredentialsForm, FormProblem
from screens.ports import Credentials, KioskServices, LoginResult, SessionInfo
from screens.widgets import StatusBar, safe_text

LockReason = Literal["idle", "manual", "logout", "start", "device"]


def lock_note(session: SessionInfo | None, reason: LockReason) -> Text:
    """The sentence above the login form (names rendered literally)."""
    if session is None:
        return Text("Locked. Log in to continue.")
    name = safe_text(session.display_name or session.user_id, style="bold")
    text = Text()
    if reason == "idle":
        text.append("Locked — ")
        text.append_text(name)
        text.append(" was logged in; any draft they had not signed is kept.")
    elif reason == "manual":
        text.append("Locked — ")
        text.append_text(name)
        text.append(" locked this terminal; any draft they had not signed is kept.")
    elif reason == "device":
        text.append("Locked — this terminal is no longer approved; any draft ")
        text.append_text(name)
        text.append(" had not signed is kept.")
    elif reason == "logout":
        text.append_text(name)
        text.append(" logged out.")
    else:
        text.append("Locked. Log in to continue.")
    return text


class LockScreen(KioskScreen):
    """Log in. ``on_login(session)`` is called on the UI thread after success."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *FOCUS_BINDINGS,
        Binding("f10", "admin_exit", "Exit (admin)", show=False),
    ]

    def __init__(
        self,
        services: KioskServices,
        clock: Clock,
        on_login: Callable[[SessionInfo], None],
        on_admin_exit: Callable[[], None],
    ) -> None:
        super().__init__(id="lock-screen")
        self._services = services
        self._clock = clock
        self._on_login = on_login
        self._on_admin_exit = on_admin_exit
        self._generation = 0  # bumped by reset(): a login answer for an older form is dropped
        self._busy = False
        self._note = lock_note(None, "start")
        self._ask_totp = bool(services.totp_at_login())

    def compose(self) -> ComposeResult:
        with Vertical(id="login-box", classes="panel"):
            yield Static(Text("Signing kiosk", style="bold"), id="login-title", classes="dialog-title")
            yield Static(self._note, id="lock-note")
            yield CredentialsForm(ask_totp=self._ask_totp, allow_badge=True, id="login-form")
            yield Static("", id="message", classes="message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Log in", variant="primary", id="login")
                yield Button("Exit (admin, F10)", id="admin-exit", classes="minor")
        yield StatusBar(self._clock, self._services.status)

    def on_mount(self) -> None:
        self.query_one(CredentialsForm).focus_first()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.query_one(CredentialsForm).focus_first()

    # -- what the App calls --------------------------------------------------

    def show_locked(self, session: SessionInfo | None, reason: LockReason) -> None:
        """Say who was logged in, and clear the form for the next person."""
        self._note = lock_note(session, reason)
        if self.is_mounted:
            self.query_one("#lock-note", Static).update(self._note)
            self.reset()

    def reset(self) -> None:
        self._generation += 1
        self._busy = False
        self.query_one(CredentialsForm).reset()
        self.query_one("#message", Static).update("")
        self.query_one("#login", Button).disabled = False

    def has_typed_input(self) -> bool:
        form = self.query_one(CredentialsForm)
        fields = form.query("Input").results(Input)
        return form.badge is not None or any(field.value for field in fields if not field.disabled)

    @property
    def note_text(self) -> str:
        return self._note.plain

    @property
    def message_text(self) -> str:
        return str(self.query_one("#message", Static).render())

    # -- events ----------------------------------------------------------------

    def show_message(self, text: str) -> None:
        self.query_one("#message", Static).update(safe_text(text))

    @on(FormProblem)
    def _problem(self, event: FormProblem) -> None:
        self.show_message(event.text)

    @on(Button.Pressed, "#login")
    def _login_pressed(self) -> None:
        self.query_one(CredentialsForm).submit()

    @on(Button.Pressed, "#admin-exit")
    def _admin_pressed(self) -> None:
        self.action_admin_exit()

    def action_admin_exit(self) -> None:
        self._on_admin_exit()

    @on(CredentialsForm.Submitted)
    def _submitted(self, event: CredentialsForm.Submitted) -> None:
        if self._busy:
            return
        self._busy = True
        self.query_one("#login", Button).disabled = True
        self.show_message("Checking…")
        self._login(event.credentials, self._generation)

    @work(thread=True, exclusive=True, exit_on_error=False, group="login")
    def _login(self, credentials: Credentials, generation: int) -> None:
        try:
            result = self._services.login(credentials)
        except Exception as exc:  # noqa: BLE001 - shown as a notice, recorded by the App
            self.app.call_from_thread(self._login_failed_unexpectedly, exc, generation)
            return
        self.app.call_from_thread(self._login_done, result, generation)

    def _login_failed_unexpectedly(self, exc: Exception, generation: int) -> None:
        handler = getattr(self.app, "handle_unexpected_error", None)
        if handler is not None:
            handler(exc)
        if generation == self._generation:
            self._finish(LoginResult(ok=False, message="Login is not possible right now. Try again."))

    def _login_done(self, result: LoginResult, generation: int) -> None:
        if generation != self._generation:
            # The form was reset (F12, another person) while checking: never open
            # that session in the UI, and tell the services it ended at once.
            if result.ok:
                try:
                    self._services.logout()
                except Exception as exc:  # noqa: BLE001
                    handler = getattr(self.app, "handle_unexpected_error", None)
                    if handler is not None:
                        handler(exc)
            return
        self._finish(result)

    def _finish(self, result: LoginResult) -> None:
        self._busy = False
        form = self.query_one(CredentialsForm)
        self.query_one("#login", Button).disabled = False
        if result.ok and result.session is not None:
            form.reset()
            self.show_message("")
            self._on_login(result.session)
            return
        form.clear_secrets()
        self.show_message(result.message or "Login failed.")
        form.focus_first()


class SessionScreen(KioskScreen):
    """Placeholder home screen for a logged-in user until the worklist exists.

    The real worklist is plugged in through ``KioskApp(home_factory=...)``.
    """

    def __init__(
        self,
        session: SessionInfo,
        services: KioskServices,
        clock: Clock,
        on_logout: Callable[[], None],
    ) -> None:
        super().__init__(id="session-screen")
        self._session = session
        self._services = services
        self._clock = clock
        self._on_logout = on_logout

    def compose(self) -> ComposeResult:
        with Vertical(id="session-box", classes="panel"):
            greeting = Text("Logged in: ")
            greeting.append_text(safe_text(self._session.display_name, style="bold"))
            yield Static(greeting, classes="dialog-title")
            yield Static(Text("Press F12 to lock this terminal when you step away."))
            with Horizontal(classes="dialog-buttons"):
                yield Button("Lock (F12)", variant="primary", id="lock")
                yield Button("Log out", id="logout")
        yield StatusBar(self._clock, self._services.status)

    def on_mount(self) -> None:
        self.query_one("#lock").focus()

    @on(Button.Pressed, "#lock")
    async def _lock(self) -> None:
        await self.app.run_action("app.lock")

    @on(Button.Pressed, "#logout")
    def _logout(self) -> None:
        self._on_logout()
