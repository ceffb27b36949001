"""Modal dialogs. Each is a ``ModalScreen[T]`` that returns its result through
``dismiss``; None always means "cancelled" - including when the lock (F12 or
idle) pops the dialog away, so a dismissed sign dialog means *not signed*.

Keyboard: Tab / Shift+Tab move between fields and buttons, Enter in a field
moves to the next field (and submits from the last one), Escape cancels.

Badge readers (keyboard wedge)
------------------------------
A badge reader "types" the badge id followed by Enter into the focused field,
fast. Readers are configured to send :data:`BADGE_PREFIX` (``;`` - the ISO
7811 track-2 start sentinel, the usual factory setting) before the id. When
the user-id field is submitted with a value starting with the prefix, the
value is taken as a badge, not a user id: the field is cleared (the badge id
is never displayed), a "Badge read" note appears and focus moves to the
password. A badge never replaces the password; resolving the badge (and
counting an unknown badge as a failed attempt) is the service's job. Typing
into the user-id field afterwards discards the badge.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from screens.base import GuardedPump, KioskModal
from screens.ports import Credentials
from screens.widgets import SecretInput, safe_text

BADGE_PREFIX = ";"
USER_ID_MAX = 64
PASSWORD_MAX = 1024
TOTP_MAX = 10


def split_identity(raw: str) -> tuple[str, str | None]:
    """``(user_id, badge)`` from what arrived in the user-id field."""
    if raw.startswith(BADGE_PREFIX):
        badge = raw[len(BADGE_PREFIX):].strip()
        return "", badge or None
    return raw.strip(), None


class CredentialsForm(GuardedPump, Vertical):
    """User id (or badge), password, optional one-time code; posts ``Submitted``.

    Used by :class:`CredentialsDialog`, :class:`AdminExitDialog` and the lock
    screen, so badge handling and the Enter chain are the same everywhere.
    """

    DEFAULT_CSS = """
    CredentialsForm { height: auto; }
    """

    class Submitted(Message):
        def __init__(self, form: "CredentialsForm", credentials: Credentials) -> None:
            super().__init__()
            self.form = form
            self.credentials = credentials

        @property
        def control(self) -> "CredentialsForm":
            return self.form

    def __init__(
        self,
        *,
        ask_totp: bool = False,
        allow_badge: bool = True,
        user_id: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="credentials-form")
        self.ask_totp = ask_totp
        self.allow_badge = allow_badge
        self._fixed_user_id = user_id
        self._badge: str | None = None

    def compose(self) -> ComposeResult:
        user = Input(
            value=self._fixed_user_id or "",
            placeholder="scan badge or type user ID" if self.allow_badge else "user ID",
            max_length=USER_ID_MAX + len(BADGE_PREFIX) + 64,
            id="user-id",
            disabled=self._fixed_user_id is not None,
        )
        user.border_title = "User ID"
        yield user
        yield Label("", id="badge-note")
        password = SecretInput(placeholder="password", max_length=PASSWORD_MAX, id="password")
        password.border_title = "Password"
        yield password
        if self.ask_totp:
            totp = Input(placeholder="6-digit code", restrict=r"[0-9]*", max_length=TOTP_MAX, id="totp")
            totp.border_title = "One-time code"
            yield totp

    def on_mount(self) -> None:
        self.query_one("#badge-note", Label).display = False

    @property
    def badge(self) -> str | None:
        return self._badge

    def focus_first(self) -> None:
        target = "#password" if self._fixed_user_id is not None else "#user-id"
        self.query_one(target).focus()

    def clear_secrets(self) -> None:
        """Empty the password and code fields (after a failure or a lock)."""
        self.query_one("#password", SecretInput).value = ""
        if self.ask_totp:
            self.query_one("#totp", Input).value = ""

    def reset(self) -> None:
        self.clear_secrets()
        self._set_badge(None)
        if self._fixed_user_id is None:
            self.query_one("#user-id", Input).value = ""

    def _set_badge(self, badge: str | None) -> None:
        self._badge = badge
        note = self.query_one("#badge-note", Label)
        note.update("Badge read. Now enter your password." if badge else "")
        note.display = badge is not None

    @on(Input.Changed, "#user-id")
    def _user_typed(self, event: Input.Changed) -> None:
        # A badge prefix arriving starts a new scan; any other typing after a
        # scan means the person is typing a user id instead.
        if self._badge is not None and event.value and not event.value.startswith(BADGE_PREFIX):
            self._set_badge(None)

    @on(Input.Submitted)
    def _field_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        field = event.input.id
        if field == "user-id":
            badge = split_identity(event.value)[1] if self.allow_badge else None
            if badge is not None:
                event.input.value = ""
                self._set_badge(badge)
            self.query_one("#password").focus()
        elif field == "password" and self.ask_totp:
            self.query_one("#totp").focus()
        else:
            self.submit()

    def credentials(self) -> Credentials | str:
        """The credentials, or a message saying what is missing."""
        raw = self._fixed_user_id if self._fixed_user_id is not None else self.query_one("#user-id", Input).value
        user_id, badge = split_identity(raw) if self.allow_badge else (raw.strip(), None)
        badge = badge or self._badge
        password = self.query_one("#password", SecretInput).value
        totp = self.query_one("#totp", Input).value.strip() if self.ask_totp else None
        if not user_id and not badge:
            return "Enter your user ID or scan your badge."
        if not password:
            return "Enter your password."
        return Credentials(user_id=user_id, password=password, totp=totp, badge=badge)

    def submit(self) -> None:
        result = self.credentials()
        if isinstance(result, str):
            self.post_message(FormProblem(self, result))
            if "password" in result:
                self.query_one("#password").focus()
            else:
                self.focus_first()
            return
        self.post_message(self.Submitted(self, result))


class FormProblem(Message):
    """The form is incomplete; ``text`` says what to fix."""

    def __init__(self, form: CredentialsForm, text: str) -> None:
        super().__init__()
        self.form = form
        self.text = text


class _Buttons(Horizontal):
    DEFAULT_CSS = "_Buttons { height: auto; }"


class ConfirmDialog(KioskModal[bool]):
    """Yes / No. Escape, a lock, or "No" gives False; focus starts on "No"."""

    def __init__(self, title: str, message: str | Text, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(classes="dialog-screen")
        self._title = title
        self._message = message if isinstance(message, Text) else safe_text(message)
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Static(safe_text(self._title, style="bold"), classes="dialog-title")
            yield Static(self._message, classes="dialog-body")
            with _Buttons(classes="dialog-buttons"):
                yield Button(self._yes, variant="primary", id="yes")
                yield Button(self._no, id="no")

    def on_mount(self) -> None:
        self.query_one("#no").focus()

    @on(Button.Pressed, "#yes")
    def _yes_pressed(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no_pressed(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)


class IdleWarning(KioskModal[None]):
    """"Still there?" with a live countdown. The App dismisses it on any input."""

    def __init__(self, seconds_left: int) -> None:
        super().__init__(classes="dialog-screen", id="idle-warning")
        self._seconds_left = max(0, int(seconds_left))

    @property
    def seconds_left(self) -> int:
        return self._seconds_left

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog warning", id="idle-box"):
            yield Static(Text("Are you still there?", style="bold"), classes="dialog-title")
            yield Static(self._countdown_text(), id="countdown")
            yield Static(
                Text("Press any key or touch the screen to stay logged in."),
                classes="dialog-body",
            )
            with _Buttons(classes="dialog-buttons"):
                yield Button("I'm still here", variant="primary", id="stay")

    def _countdown_text(self) -> Text:
        return Text(f"This terminal locks in {self._seconds_left} s", style="bold")

    def set_seconds_left(self, seconds: int) -> None:
        self._seconds_left = max(0, int(seconds))
        if self.is_mounted:
            self.query_one("#countdown", Static).update(self._countdown_text())

    def on_mount(self) -> None:
        self.query_one("#stay").focus()

    def on_screen_resume(self) -> None:
        if getattr(self.app, "idle_warning", self) is not self:
            self.dismiss(None)  # the App no longer wants this warning

    @on(Button.Pressed, "#stay")
    def _stay(self) -> None:
        self.dismiss(None)


ResultT = TypeVar("ResultT")


class _CredentialsModal(KioskModal[ResultT]):
    """What every credentials dialog does around its form: focus, messages, OK and Cancel.

    A subclass composes the dialog (a ``CredentialsForm`` with id ``form``, a ``#message`` line, ``#ok``
    and ``#cancel`` buttons) and says in ``on_credentials`` what happens with what was entered.
    """

    def on_mount(self) -> None:
        self.query_one(CredentialsForm).focus_first()

    def show_message(self, text: str) -> None:
        self.query_one("#message", Static).update(safe_text(text))

    @on(FormProblem)
    def _problem(self, event: FormProblem) -> None:
        self.show_message(event.text)

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.query_one(CredentialsForm).submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(CredentialsForm.Submitted)
    def _submitted(self, event: CredentialsForm.Submitted) -> None:
        self.on_credentials(event.credentials)

    def on_credentials(self, credentials: Credentials) -> None:
        raise NotImplementedError


class CredentialsDialog(_CredentialsModal[Credentials | None]):
    """Ask for credentials (sign, witness, re-authenticate). None = cancelled/not signed.

    ``user_id`` fixes the user (e.g. "password only" for a later signature in
    a continuous session); ``ask_totp`` adds the one-time-code field.
    """

    def __init__(
        self,
        title: str,
        prompt: str | Text = "",
        *,
        ask_totp: bool = False,
        allow_badge: bool = True,
        user_id: str | None = None,
        ok_label: str = "OK",
        back_label: str = "Cancel",
    ) -> None:
        super().__init__(classes="dialog-screen")
        self._title = title
        self._prompt = prompt if isinstance(prompt, Text) else safe_text(prompt)
        self._ask_totp = ask_totp
        self._allow_badge = allow_badge
        self._user_id = user_id
        self._ok_label = ok_label
        self._back_label = back_label  # where the action itself is a cancellation, "Cancel" would be ambiguous

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="credentials"):
            yield Static(safe_text(self._title, style="bold"), classes="dialog-title")
            if self._prompt.plain:
                yield Static(self._prompt, classes="dialog-body")
            yield CredentialsForm(
                ask_totp=self._ask_totp, allow_badge=self._allow_badge, user_id=self._user_id, id="form"
            )
            yield Static("", id="message", classes="message")
            with _Buttons(classes="dialog-buttons"):
                yield Button(self._ok_label, variant="primary", id="ok")
                yield Button(self._back_label, id="cancel")

    def on_credentials(self, credentials: Credentials) -> None:
        self.dismiss(credentials)


class AdminExitDialog(_CredentialsModal[str | None]):
    """Exit the kiosk: an administrator's user id and password, checked by ``verify``.

    ``verify(user_id, password) -> bool`` is the services' ``verify_admin_exit``;
    it runs in a worker thread. The dialog returns the admin's user id once
    verified, None if cancelled. A refusal keeps the dialog open with a
    message that does not say which part was wrong.
    """

    REFUSED = "Not accepted. Only an administrator can exit the kiosk."

    def __init__(self, verify: Callable[[str, str], bool]) -> None:
        super().__init__(classes="dialog-screen", id="admin-exit")
        self._verify = verify
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="admin-box"):
            yield Static(Text("Exit the kiosk (administrator only)", style="bold"), classes="dialog-title")
            yield CredentialsForm(ask_totp=False, allow_badge=False, id="form")
            yield Static("", id="message", classes="message")
            with _Buttons(classes="dialog-buttons"):
                yield Button("Exit kiosk", variant="error", id="ok")
                yield Button("Cancel", id="cancel")

    def on_credentials(self, credentials: Credentials) -> None:
        if self._busy:
            return
        self._busy = True
        self.query_one("#ok", Button).disabled = True
        self.show_message("Checking…")
        self._check(credentials.user_id, credentials.password)

    @work(thread=True, exclusive=True, exit_on_error=False, group="admin-exit")
    def _check(self, user_id: str, password: str) -> None:
        try:
            ok = bool(self._verify(user_id, password))
        except Exception as exc:  # noqa: BLE001 - reported, and the answer is "no"
            self.app.call_from_thread(self._checked, False, user_id, exc)
            return
        self.app.call_from_thread(self._checked, ok, user_id, None)

    def _checked(self, ok: bool, user_id: str, error: Exception | None) -> None:
        self._busy = False
        if error is not None:
            handler = getattr(self.app, "handle_unexpected_error", None)
            if handler is not None:
                handler(error)
        if not self.is_attached or self.app.screen is not self:
            return  # locked away (F12 / idle) while checking: the answer no longer applies
        if ok:
            self.dismiss(user_id)
            return
        self.query_one(CredentialsForm).clear_secrets()
        self.query_one("#ok", Button).disabled = False
        self.show_message(self.REFUSED)
        self.query_one("#password").focus()


__all__ = [
    "BADGE_PREFIX",
    "AdminExitDialog",
    "ConfirmDialog",
    "CredentialsDialog",
    "CredentialsForm",
    "FormProblem",
    "IdleWarning",
    "split_identity",
]
