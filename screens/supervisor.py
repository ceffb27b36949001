"""Supervisor screen: open alerts (acknowledge) and suspended accounts (unlock).

An unlock needs a reason and the supervisor's own full credentials typed at
that moment; the services refuse a self-unlock or a deactivated account and
the message says so. Info alerts (single failed sign-ins) of one kind are
acknowledged together under one required note; any other alert one by one.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from kiosk.domain.clock import utc_text, utc_time
from screens.dialogs import CredentialsDialog
from screens.nav import Navigator, NavScreen
from screens.ports import ActionResult, AlertView, AlikeAlerts, Credentials, SupervisorServices
from screens.step import ReasonDialog
from screens.widgets import StatusBar, safe_text

# The newest open alerts the table holds: the directory keeps every terminal's alerts (each failed sign-in is
# one), tens of thousands may be open, and a table of them all would not load on a thin client.
ALERTS_SHOWN = 200

# The characters of an alert's message its acknowledgement dialog quotes: five lines at 80 columns, so the note
# and the buttons stay on a 24-line screen whatever the message (a central alert may quote 2,000 characters).
MESSAGE_QUOTED = 340


def alert_text(alert: AlertView) -> Text:
    """The alert, as the dialog that acknowledges it shows it: the table's message column is cut at the screen's
    edge, and an acknowledgement names what was read."""
    text = Text()
    text.append_text(safe_text(f"{alert.severity} · {alert.kind}", style="bold"))
    where = f" on {alert.device}" if alert.device else ""
    text.append_text(safe_text(f"\nraised {utc_time(alert.at)}{where}\n", multiline=True))
    message = alert.message
    text.append_text(safe_text(message if len(message) <= MESSAGE_QUOTED else message[:MESSAGE_QUOTED] + "…"))
    if len(message) > MESSAGE_QUOTED:
        text.append(f"\n(cut at {MESSAGE_QUOTED} of {len(message):,} characters: the audit viewer, F4, shows the "
                    "whole alert.raised record)")
    text.append("\n\nA note for the audit trail (optional):")
    return text


class SupervisorScreen(NavScreen):
    AREA = "supervisor"
    KEYS = (("Enter", "Acknowledge alert / unlock account"), ("Tab", "Next table"))
    BINDINGS: ClassVar[list[BindingType]] = [
        *NavScreen.BINDINGS,
        Binding("a", "ack_alike", "Acknowledge all alike"),
    ]

    def __init__(self, nav: Navigator) -> None:
        super().__init__(nav, id="supervisor")
        self._services = nav.services
        self._sup: SupervisorServices = nav.work
        self._clock = nav.clock
        self._shown: dict[str, AlertView] = {}
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="supervisor-box"):
            yield Static(Text("Supervisor — alerts and suspended accounts", style="bold"))
            yield Static(Text("Suspended accounts"), id="suspended-head")
            yield DataTable(id="suspended", cursor_type="row")
            yield Static(Text("Open alerts"), id="alerts-head")
            yield DataTable(id="alerts", cursor_type="row", zebra_stripes=True)
            yield Static("", id="message", classes="message")
        yield self.key_bar()
        yield StatusBar(self._clock, self._services.status)

    def on_mount(self) -> None:
        self.query_one("#suspended", DataTable).add_columns("User", "Name")
        self.query_one("#alerts", DataTable).add_columns("When (UTC)", "Severity", "Kind", "Message")
        self.action_refresh()
        self.query_one("#suspended", DataTable).focus()

    def action_refresh(self) -> None:
        # An empty table says so in its heading: a blank table could as well be one that failed to load.
        users = self.query_one("#suspended", DataTable)
        users.clear()
        suspended = self._sup.suspended()
        for u in suspended:
            users.add_row(safe_text(u.user_id), safe_text(u.name), key=u.user_id)
        self.query_one("#suspended-head", Static).update(
            f"Suspended accounts: {len(suspended)} (Enter unlocks)" if suspended else "Suspended accounts: none")
        alerts = self.query_one("#alerts", DataTable)
        alerts.clear()
        open_alerts, total = self._sup.open_alerts(ALERTS_SHOWN)
        self._shown = {a.alert_id: a for a in open_alerts}
        for a in open_alerts:
            alerts.add_row(utc_text(a.at, seconds=True), a.severity, safe_text(a.kind), safe_text(a.message), key=a.alert_id)
        shown = "newest first" if total <= len(open_alerts) else f"the newest {len(open_alerts):,} shown"
        self.query_one("#alerts-head", Static).update(
            f"Open alerts: {total:,}, {shown} (Enter acknowledges)" if total else "Open alerts: none")

    def show_message(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#message", Static).update(safe_text(text))

    @on(DataTable.RowSelected, "#alerts")
    def _ack(self, event: DataTable.RowSelected) -> None:
        alert_id = event.row_key.value
        dialog = ReasonDialog("Acknowledge alert", alert_text(self._shown[alert_id]), "Acknowledge", min_len=0)
        self.app.open_dialog(dialog, lambda note: self._acked(alert_id, note))  # type: ignore[attr-defined]

    def _acked(self, alert_id: str, note: str | None) -> None:
        if note is None or not self.is_attached:
            return
        self._done(self._sup.acknowledge(alert_id, note))

    def action_ack_alike(self) -> None:
        """Every open alert like the one under the cursor (same kind, info only), under one note."""
        table = self.query_one("#alerts", DataTable)
        if self._busy or not table.row_count:
            return
        if not table.has_focus:
            table.focus()
            self.show_message("Choose an alert in the open alerts table, then press A.")
            return
        alert = self._shown[table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value]
        alike = self._sup.alike(alert)
        if alike.refusal:
            self.show_message(alike.refusal)
            return
        dialog = ReasonDialog(
            f"Acknowledge {alike.count:,} alert{'s' if alike.count != 1 else ''}",
            f"Every open {alike.kind} alert raised up to {utc_time(alike.through)}, on every "
            f"terminal: {alike.count:,}. Your note is recorded for each of them.", "Acknowledge all")
        self.app.open_dialog(dialog, lambda note: self._alike_note(alike, note))  # type: ignore[attr-defined]

    def _alike_note(self, alike: AlikeAlerts, note: str | None) -> None:
        if note is None or not self.is_attached:
            return
        self._busy = True
        self.show_message(f"Acknowledging {alike.count:,} alerts…")
        self._alike_worker(alike, note)

    @work(thread=True, exit_on_error=False)
    def _alike_worker(self, alike: AlikeAlerts, note: str) -> None:
        # Whatever happens, the screen is told and takes A again: refusals come back as results, anything
        # unforeseen leaves the alerts it did not reach open (each transaction whole) and is logged by the worker.
        result = ActionResult(False, "Not all of the alerts were acknowledged; the list shows those still open.")
        try:
            result = self._sup.acknowledge_alike(alike, note)
        finally:
            self.app.call_from_thread(self._alike_done, result)

    def _alike_done(self, result: ActionResult) -> None:
        self._busy = False
        self._done(result)

    @on(DataTable.RowSelected, "#suspended")
    def _unlock(self, event: DataTable.RowSelected) -> None:
        user_id = event.row_key.value
        dialog = ReasonDialog(f"Unlock {user_id}", "Why is it safe to unlock this account? (recorded)", "Next")
        self.app.open_dialog(dialog, lambda reason: self._unlock_reason(user_id, reason))  # type: ignore[attr-defined]

    def _unlock_reason(self, user_id: str, reason: str | None) -> None:
        if reason is None or not self.is_attached:
            return
        dialog = CredentialsDialog("Your credentials", f"Unlock {user_id}: type your own user id, password and code.",
                                   ask_totp=True, ok_label="Unlock")
        self.app.open_dialog(dialog, lambda creds: self._unlock_go(user_id, reason, creds))  # type: ignore[attr-defined]

    def _unlock_go(self, user_id: str, reason: str, credentials: Credentials | None) -> None:
        if credentials is None or not self.is_attached:
            return
        self.show_message("Checking…")
        self._unlock_worker(user_id, reason, credentials)

    @work(thread=True, exit_on_error=False)
    def _unlock_worker(self, user_id: str, reason: str, credentials: Credentials) -> None:
        result = self._sup.unlock(user_id, reason, credentials)
        self.app.call_from_thread(self._done, result)

    def _done(self, result: ActionResult) -> None:
        """An acknowledgement or unlock came back, recorded or refused: what happened, and the lists as stored."""
        self.show_message(result.message)
        if self.is_attached:
            self.action_refresh()

