"""Dialogs of the admin screens: choose an action, fill a form, see issued credentials once.

Each returns its result through ``dismiss``; None means cancelled (Escape,
Cancel, or a lock). They collect input only: the services validate it and
their refusal is shown on the screen that opened the dialog (the new-user
form, the one with most to type, opens again as typed with the refusal in it).
"""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from screens.base import KioskModal
from screens.dialogs import BADGE_PREFIX
from screens.ports import IssuedView, NewUser, UserRow
from screens.qr import qr_text
from screens.widgets import Tick, safe_text

REASON_MAX = 500


def _title(text: str | Text) -> Static:
    return Static(text if isinstance(text, Text) else safe_text(text, style="bold"), classes="dialog-title")


def badge_value(raw: str) -> str:
    """A scanned badge arrives with the reader's prefix; the id is what follows it."""
    raw = raw.strip()
    return raw[len(BADGE_PREFIX):].strip() if raw.startswith(BADGE_PREFIX) else raw


class ChoiceDialog(KioskModal[str | None]):
    """A list of buttons, one per action; returns the chosen action's key."""

    def __init__(self, title: str | Text, body: Text | None, choices: Sequence[tuple[str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self._title = title
        self._body = body
        self._choices = list(choices)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="choice"):
            yield _title(self._title)
            if self._body is not None:
                yield Static(self._body, classes="dialog-body")
            with Vertical(id="choices"):
                for key, label in self._choices:
                    yield Button(label, id=f"choice-{key}", classes="choice")
                yield Button("Cancel", id="cancel", classes="choice")

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        self.dismiss(bid[len("choice-"):] if bid.startswith("choice-") else None)


class _Form(KioskModal[object]):
    """Shared behaviour: Enter moves to the next field, OK checks the form, messages show as text."""

    def show_message(self, text: str) -> None:
        self.query_one("#message", Static).update(safe_text(text))

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "reason":
            self._ok()
        else:
            self.focus_next()

    @on(Button.Pressed, "#ok")
    def _ok_pressed(self) -> None:
        self._ok()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def _ok(self) -> None:  # pragma: no cover - every form defines it
        raise NotImplementedError

    def _reason(self) -> str | None:
        reason = self.query_one("#reason", Input).value.strip()
        if len(reason) < 4:
            self.show_message("Give a reason (at least 4 characters); it is recorded with the change.")
            self.query_one("#reason").focus()
            return None
        return reason

    def _buttons(self, ok_label: str) -> ComposeResult:
        yield Static("", id="message", classes="message")
        with Horizontal(classes="dialog-buttons"):
            yield Button(ok_label, variant="primary", id="ok")
            yield Button("Cancel", id="cancel")

    @staticmethod
    def _reason_input() -> Input:
        field = Input(placeholder="why (recorded in the audit trail)", id="reason", max_length=REASON_MAX)
        field.border_title = "Reason"
        return field


def _roles_row(roles: Sequence[str], checked: Sequence[str]) -> ComposeResult:
    with Horizontal(id="roles", classes="checks"):
        for role in roles:
            yield Tick(role, value=role in checked, id=f"role-{role}")


class NewUserDialog(_Form):
    """Create a user: who they are, their roles, the identity check (11.100(b)) and a reason.

    ``typed`` and ``problem``: the form again as the admin filled it, with why it was refused.
    """

    def __init__(self, roles: Sequence[str], typed: NewUser | None = None, problem: str = "") -> None:
        # No id: the form may open again while the refused one is still being removed (ids must be unique).
        super().__init__(classes="dialog-screen")
        self._roles = list(roles)
        self._typed = typed
        self._problem = problem

    def compose(self) -> ComposeResult:
        typed = self._typed
        values = {"user-id": typed.user_id, "name": typed.name, "badge": typed.badge} if typed else {}
        with VerticalScroll(classes="dialog", id="new-user-box"):
            yield _title("New user")
            if self._problem:  # at the top, beside the fields to fix, not below them out of sight
                yield Static(safe_text(self._problem, multiline=True), classes="message", id="problem")
            for fid, label, hint, size in (("user-id", "User ID", "e.g. jane.doe (never reused)", 64),
                                          ("name", "Printed name", "as it appears on signatures", 120),
                                          ("badge", "Badge (optional)", "scan or type the badge id", 70)):
                field = Input(value=values.get(fid, ""), placeholder=hint, id=fid, max_length=size)
                field.border_title = label
                yield field
            yield Label("Roles")
            yield from _roles_row(self._roles, typed.roles if typed else ("operator",))
            with Horizontal(classes="checks"):
                yield Tick("TOTP codes", value=typed.with_totp if typed else True, id="with-totp")
                yield Tick("Identity verified", value=typed.identity_verified if typed else False, id="identity")
            method = Input(value=typed.verification_method if typed else "photo ID checked in person", id="method",
                           max_length=200)
            method.border_title = "How the identity was verified"
            yield method
            reason = self._reason_input()
            reason.value = typed.reason if typed else ""
            yield reason
            yield from self._buttons("Create user")

    def on_mount(self) -> None:
        self.query_one("#user-id").focus()

    def _ok(self) -> None:
        # Checked as a whole by the service, which names every problem at once; the form opens again with them.
        self.dismiss(NewUser(
            user_id=self.query_one("#user-id", Input).value.strip(),
            name=self.query_one("#name", Input).value.strip(),
            roles=tuple(r for r in self._roles if self.query_one(f"#role-{r}", Tick).value),
            reason=self.query_one("#reason", Input).value.strip(),
            identity_verified=self.query_one("#identity", Tick).value,
            verification_method=self.query_one("#method", Input).value.strip(),
            badge=badge_value(self.query_one("#badge", Input).value),
            with_totp=self.query_one("#with-totp", Tick).value,
        ))


class RolesDialog(_Form):
    """Change a user's roles, with a reason. Returns (roles, reason)."""

    def __init__(self, user: UserRow, roles: Sequence[str]) -> None:
        super().__init__(classes="dialog-screen")
        self._user = user
        self._roles = list(roles)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield _title(Text.assemble(("Roles of ", "bold"), safe_text(self._user.user_id, style="bold")))
            yield from _roles_row(self._roles, self._user.roles)
            yield self._reason_input()
            yield from self._buttons("Change roles")

    def on_mount(self) -> None:
        self.query(Tick).first().focus()

    def _ok(self) -> None:
        roles = tuple(r for r in self._roles if self.query_one(f"#role-{r}", Tick).value)
        if not roles:
            self.show_message("Choose at least one role (to stop all access, deactivate the account).")
            return
        reason = self._reason()
        if reason is not None:
            self.dismiss((roles, reason))


class BadgeDialog(_Form):
    """Assign a badge (scanned or typed). Returns (badge, reason)."""

    def __init__(self, user: UserRow) -> None:
        super().__init__(classes="dialog-screen")
        self._user = user

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield _title(Text.assemble(("Badge for ", "bold"), safe_text(self._user.user_id, style="bold")))
            yield Static(Text("A badge id is assigned once, ever: a revoked badge is never reused. "
                              "A badge never replaces the password."), classes="dialog-body")
            field = Input(placeholder="scan the badge or type its id", id="badge", max_length=70)
            field.border_title = "Badge"
            yield field
            yield self._reason_input()
            yield from self._buttons("Assign badge")

    def on_mount(self) -> None:
        self.query_one("#badge").focus()

    def _ok(self) -> None:
        badge = badge_value(self.query_one("#badge", Input).value)
        if not badge:
            self.show_message("Scan or type the badge id.")
            self.query_one("#badge").focus()
            return
        reason = self._reason()
        if reason is not None:
            self.dismiss((badge, reason))


class ResetDialog(_Form):
    """Re-issue credentials after an identity check (11.300(c)). Returns the reason."""

    def __init__(self, user: UserRow) -> None:
        super().__init__(classes="dialog-screen")
        self._user = user

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield _title(Text.assemble(("Reset credentials of ", "bold"), safe_text(self._user.user_id, style="bold")))
            yield Static(Text("The current password and one-time-code enrolment stop working at once; new ones "
                              "are shown to you once."), classes="dialog-body")
            yield Tick("I verified this person's identity", value=False, id="identity")
            yield self._reason_input()
            yield from self._buttons("Reset credentials")

    def on_mount(self) -> None:
        self.query_one("#identity").focus()

    def _ok(self) -> None:
        if not self.query_one("#identity", Tick).value:
            self.show_message("Confirm that you verified this person's identity first.")
            return
        reason = self._reason()
        if reason is not None:
            self.dismiss(reason)


class IssuedDialog(KioskModal[None]):
    """The one-time display of issued credentials. Nothing here is stored or logged; a lock closes it."""

    def __init__(self, issued: IssuedView, heading: str) -> None:
        super().__init__(classes="dialog-screen", id="issued")
        self._issued = issued
        self._heading = heading

    def compose(self) -> ComposeResult:
        i = self._issued
        with Vertical(classes="dialog tall", id="issued-box"):
            yield _title(self._heading)
            with VerticalScroll(classes="tall-scroll", id="issued-scroll"):
                text = Text()
                text.append("User ID             ", style="bold")
                text.append_text(safe_text(i.user_id))
                text.append("\nTemporary password  ", style="bold")
                text.append_text(safe_text(i.password, style="bold reverse"))
                text.append("\n(must be changed at first login)")
                if i.totp_secret:
                    secret = " ".join(i.totp_secret[n:n + 4] for n in range(0, len(i.totp_secret), 4))
                    text.append("\nOne-time-code key   ", style="bold")
                    text.append_text(safe_text(secret))
                    text.append("\nScan the code below with the authenticator app (or type the key):")
                yield Static(text, id="issued-text")
                if i.totp_uri:
                    yield Static(qr_text(i.totp_uri), id="issued-qr")
            yield Static(Text("Shown once, stored nowhere in clear. Hand it over in person, then press Done.",
                              style="bold"), classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Done", variant="primary", id="done")

    def on_mount(self) -> None:
        self.query_one("#done").focus()

    @on(Button.Pressed, "#done")
    def _done(self) -> None:
        self.dismiss(None)
