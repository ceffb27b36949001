"""Users (admin): list, create, change roles, deactivate / re-activate, reset credentials, badges.

Every change asks for a reason; the services check that the person acting
is an active admin, apply the rules (ids and badges never reused, identity
verified before credentials are issued) and record the change. Issued
credentials are shown once, in a dialog a lock closes. Every string that
came from a user (names, badges) is rendered as text, never markup.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Static

from screens.admin_dialogs import BadgeDialog, ChoiceDialog, IssuedDialog, NewUserDialog, ResetDialog, RolesDialog
from screens.nav import Navigator, NavScreen
from screens.ports import ActionResult, IssueResult, NewUser, UserAdminServices, UserRow
from screens.step import ReasonDialog
from screens.widgets import StatusBar, safe_text


class UsersScreen(NavScreen):
    AREA = "users"
    KEYS = (("Enter", "Change the user"),)
    BINDINGS: ClassVar[list[BindingType]] = [
        *NavScreen.BINDINGS,
        Binding("n", "new_user", "New user"),
    ]

    def __init__(self, nav: Navigator) -> None:
        super().__init__(nav, id="users")
        self._admin: UserAdminServices = nav.admin
        self._rows: dict[str, UserRow] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="users-box"):
            yield Static(Text("Users — ids are never reused; accounts are deactivated, never deleted", style="bold"))
            yield DataTable(id="user-table", cursor_type="row", zebra_stripes=True)
            with Horizontal(classes="dialog-buttons", id="user-actions"):
                yield Button("New user (N)", variant="primary", id="new-user")
            yield Static("", id="message", classes="message")
        yield self.key_bar()
        yield StatusBar(self.nav.clock, self.nav.services.status)

    def on_mount(self) -> None:
        self.query_one("#user-table", DataTable).add_columns("User ID", "Name", "Roles", "Status", "Badge")
        self.action_refresh()
        self.query_one("#user-table", DataTable).focus()

    def action_refresh(self) -> None:
        table = self.query_one("#user-table", DataTable)
        keep = table.cursor_row
        table.clear()
        self._rows = {}
        for u in self._admin.users():
            self._rows[u.user_id] = u
            table.add_row(safe_text(u.user_id), safe_text(u.name), safe_text(", ".join(u.roles)),
                          safe_text(u.status), safe_text(u.badge or "—"), key=u.user_id)
        if self._rows:
            table.move_cursor(row=min(keep, len(self._rows) - 1))

    def show_message(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#message", Static).update(safe_text(text, multiline=True))  # problems, one a line

    @property
    def message_text(self) -> str:
        return str(self.query_one("#message", Static).render())

    def _open(self, dialog: Any, callback: Callable[[Any], None]) -> None:
        self.app.open_dialog(dialog, callback)  # type: ignore[attr-defined]

    def _done(self, result: ActionResult) -> None:
        if not self.is_attached:
            return
        self.show_message(result.message)
        self.action_refresh()

    # -- create ---------------------------------------------------------------------
    @on(Button.Pressed, "#new-user")
    def action_new_user(self) -> None:
        self._open(NewUserDialog(self._admin.roles()), self._create)

    def _create(self, new: Any) -> None:
        if new is None or not self.is_attached:
            return
        self.show_message("Creating…")
        self._issue_worker(lambda: self._admin.create_user(new), "Credentials for the new user", new)

    @work(thread=True, exit_on_error=False, group="admin-issue")
    def _issue_worker(self, call: Callable[[], IssueResult], heading: str, typed: NewUser | None = None) -> None:
        result = call()  # argon2 hashes the temporary password: never on the UI thread
        self.app.call_from_thread(self._issued, result, heading, typed)

    def _issued(self, result: IssueResult, heading: str, typed: NewUser | None) -> None:
        if not self.is_attached:
            return  # locked meanwhile: the credentials are not shown to whoever comes next
        self._done(ActionResult(result.ok, result.message))
        if self.app.screen is not self:
            return
        if result.ok and result.issued is not None:
            self._open(IssuedDialog(result.issued, heading), lambda _: None)
        elif not result.ok and typed is not None:
            # The form again, as typed, with the refusal in it: nothing the admin entered is lost.
            self._open(NewUserDialog(self._admin.roles(), typed, result.message), self._create)

    # -- change one user ---------------------------------------------------------------
    @on(DataTable.RowSelected, "#user-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        user = self._rows.get(str(event.row_key.value))
        if user is None:
            return
        choices = [("roles", "Change roles")]
        if user.status == "deactivated":
            choices.append(("reactivate", "Re-activate account"))
        else:
            choices.append(("deactivate", "Deactivate account"))
        choices.append(("reset", "Reset password and one-time codes"))
        choices.append(("badge", "Assign a badge" if not user.badge else "Replace the badge"))
        if user.badge:
            choices.append(("revoke-badge", "Revoke the badge"))
        body = Text.assemble(safe_text(user.name, style="bold"), " (", safe_text(user.user_id), ") — ",
                             safe_text(", ".join(user.roles)), " — ", safe_text(user.status))
        self._open(ChoiceDialog("Change user", body, choices), lambda choice: self._chosen(user, choice))

    def _chosen(self, user: UserRow, choice: str | None) -> None:
        if choice is None or not self.is_attached:
            return
        a = self._admin
        if choice == "roles":
            self._open(RolesDialog(user, a.roles()),
                       lambda r: r and self._done(a.set_roles(user.user_id, r[0], r[1])))
        elif choice in ("deactivate", "reactivate"):
            active = choice == "reactivate"
            title = f"{'Re-activate' if active else 'Deactivate'} {user.user_id}"
            body = ("They can log in again with their current credentials." if active else
                    "They can no longer log in or sign. Their records and signatures stay; the id is never reused.")
            self._open(ReasonDialog(title, body, "Re-activate" if active else "Deactivate"),
                       lambda reason: reason and self._done(a.set_active(user.user_id, active, reason)))
        elif choice == "reset":
            self._open(ResetDialog(user), lambda reason: reason and self._reset(user, reason))
        elif choice == "badge":
            self._open(BadgeDialog(user), lambda r: r and self._done(a.assign_badge(user.user_id, r[0], r[1])))
        elif choice == "revoke-badge":
            self._open(ReasonDialog(f"Revoke the badge of {user.user_id}",
                                    "The badge stops working at once and can never be assigned again.", "Revoke"),
                       lambda reason: reason and self._done(a.revoke_badge(user.user_id, reason)))

    def _reset(self, user: UserRow, reason: str) -> None:
        if not self.is_attached:
            return
        self.show_message("Issuing new credentials…")
        self._issue_worker(lambda: self._admin.reset_credentials(user.user_id, reason, True),
                           f"New credentials for {user.user_id}")
