"""First-use certification (21 CFR 11.100(c)) and the change of an admin-issued or expired password.

Both come before the worklist; declining logs out. The services refuse any
signature until both are done, so these screens are the way through, not the
guard.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from screens.base import KioskModal
from screens.ports import ActionResult, Onboarding, OnboardingServices
from screens.widgets import SecretInput, safe_text


class FirstUseDialog(KioskModal[bool]):
    def __init__(self, step: Onboarding, services: OnboardingServices) -> None:
        super().__init__(classes="dialog-screen", id="first-use")
        self._step = step
        self._services = services

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text("Your electronic signature", style="bold"), classes="dialog-title")
            yield Static(safe_text(self._step.text, multiline=True), classes="dialog-body")
            yield Static("", id="message", classes="message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("I accept", variant="primary", id="accept")
                yield Button("Decline and log out", id="decline")

    def on_mount(self) -> None:
        self.query_one("#accept").focus()

    @on(Button.Pressed, "#accept")
    def _accept(self) -> None:
        result = self._services.accept_first_use()
        if result.ok:
            self.dismiss(True)
        else:
            self.query_one("#message", Static).update(safe_text(result.message))

    @on(Button.Pressed, "#decline")
    def _decline(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ChangePasswordDialog(KioskModal[bool]):
    def __init__(self, step: Onboarding, services: OnboardingServices) -> None:
        super().__init__(classes="dialog-screen", id="change-password")
        self._step = step
        self._services = services

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text("Change your password", style="bold"), classes="dialog-title")
            yield Static(safe_text(self._step.text, multiline=True), classes="dialog-body")
            yield Label("Current password")
            yield SecretInput(id="current")
            yield Label("New password: at least 12 characters; a few words work well")
            yield SecretInput(id="new")
            yield Label("New password again")
            yield SecretInput(id="repeat")
            if self._step.ask_totp:
                yield Label("One-time code")
                yield Input(id="totp", max_length=6, restrict=r"[0-9]*")
            yield Static("", id="message", classes="message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Change password", variant="primary", id="ok")
                yield Button("Log out", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#current").focus()

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        self.focus_next()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        totp = self._value("#totp") if self._step.ask_totp else None
        self.query_one("#message", Static).update("Checking…")
        self._change(self._value("#current"), self._value("#new"), self._value("#repeat"), totp)

    @work(thread=True, exit_on_error=False)
    def _change(self, current: str, new: str, repeat: str, totp: str | None) -> None:
        result = self._services.change_password(current, new, repeat, totp)
        self.app.call_from_thread(self._done, result)

    def _done(self, result: ActionResult) -> None:
        if not self.is_attached:
            return
        if result.ok:
            self.dismiss(True)
            return
        self.query_one("#message", Static).update(safe_text(result.message))
        for selector in ("#current", "#new", "#repeat"):
            self.query_one(selector, Input).value = ""
        self.query_one("#current").focus()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)
