"""Devices (admin): the site's terminal registrations; approve, reject or revoke one.

The admin compares the fingerprint shown here with the one on the terminal's
own device status screen (text or QR), gives a reason, and re-enters their
password and one-time code. The services record the decision in this
terminal's chain; the central store applies it when it receives it. This
terminal's own registration is listed but cannot be decided here.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from kiosk.domain.clock import utc_text
from screens.admin_dialogs import ChoiceDialog
from screens.dialogs import CredentialsDialog
from screens.nav import Navigator, NavScreen
from screens.ports import ActionResult, Credentials, DeviceAdminServices, DeviceRegistration
from screens.qr import qr_text
from screens.step import ReasonDialog
from screens.widgets import StatusBar, safe_text

DECISIONS = (("approve", "Approve (fingerprints match)"), ("reject", "Reject"), ("revoke", "Revoke"))


def heard(ts: str | None) -> str:
    """When the central store last took in a terminal's records: a silent terminal holds its records alone.
    ``None``: the central store runs a version that does not say."""
    if ts is None:
        return "unknown"
    return f"{utc_text(ts)} UTC" if ts else "never"


def registration_text(row: DeviceRegistration) -> Text:
    text = Text()
    for label, value in (("Chain", row.chain), ("Status", row.status), ("Reason", row.reason or "—"),
                         ("Records", str(row.head_seq)), ("Heard", heard(row.last_heard) + " (records last taken "
                                                                    "in centrally)")):
        text.append(f"{label:<9}", style="bold")
        text.append_text(safe_text(value))
        text.append("\n")
    text.append("Key fingerprint (compare with the terminal's screen):\n", style="bold")
    groups = row.fingerprint.split(" ")
    for i in range(0, len(groups), 8):
        text.append_text(safe_text(" ".join(groups[i:i + 8]), style="bold"))
        text.append("\n")
    if row.this_terminal:
        text.append("This is the terminal you are using: decide about it from another admin terminal or the CLI.",
                    style="bold")
    return text


class DevicesScreen(NavScreen):
    AREA = "devices"
    KEYS = (("Enter", "Decide about the terminal"),)

    def __init__(self, nav: Navigator) -> None:
        super().__init__(nav, id="devices")
        self._admin: DeviceAdminServices = nav.admin
        self._rows: dict[str, DeviceRegistration] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="devices-box"):
            yield Static(Text("Devices — terminal registrations (compare fingerprints before approving)",
                              style="bold"))
            yield DataTable(id="device-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="message", classes="message")
        yield self.key_bar()
        yield StatusBar(self.nav.clock, self.nav.services.status)

    def on_mount(self) -> None:
        self.query_one("#device-table", DataTable).add_columns("Chain", "Status", "Last heard", "Fingerprint",
                                                                "Reason")
        self.action_refresh()
        self.query_one("#device-table", DataTable).focus()

    def action_refresh(self) -> None:
        listing = self._admin.devices()
        table = self.query_one("#device-table", DataTable)
        table.clear()
        self._rows = {}
        for row in listing.rows:
            self._rows[row.chain] = row
            chain = safe_text(row.chain + (" (this terminal)" if row.this_terminal else ""))
            table.add_row(chain, safe_text(row.status), heard(row.last_heard), safe_text(row.fingerprint),
                          safe_text(row.reason), key=row.chain)
        if listing.message:
            self.show_message(listing.message)

    def show_message(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#message", Static).update(safe_text(text))

    @property
    def message_text(self) -> str:
        return str(self.query_one("#message", Static).render())

    @on(DataTable.RowSelected, "#device-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        row = self._rows.get(str(event.row_key.value))
        if row is None:
            return
        body = registration_text(row)
        body.append("\n")
        body.append_text(qr_text(row.fingerprint.replace(" ", "").upper()))
        choices = [] if row.this_terminal else list(DECISIONS)
        self.app.open_dialog(ChoiceDialog("Terminal registration", body, choices),  # type: ignore[attr-defined]
                             lambda decision: self._decision(row, decision))

    def _decision(self, row: DeviceRegistration, decision: str | None) -> None:
        if decision is None or not self.is_attached:
            return
        verb = decision.capitalize()
        dialog = ReasonDialog(f"{verb} {row.chain}", "Why? The reason is recorded with your name.", "Next")
        self.app.open_dialog(dialog, lambda reason: self._reason(row, decision, reason))  # type: ignore[attr-defined]

    def _reason(self, row: DeviceRegistration, decision: str, reason: str | None) -> None:
        if reason is None or not self.is_attached:
            return
        user = self.nav.session.user_id
        dialog = CredentialsDialog(f"{decision.capitalize()} {row.chain}",
                                   "Re-enter your password and one-time code to record this decision.",
                                   ask_totp=True, allow_badge=False, user_id=user, ok_label=decision.capitalize())
        self.app.open_dialog(dialog, lambda creds: self._go(row, decision, reason, creds))  # type: ignore[attr-defined]

    def _go(self, row: DeviceRegistration, decision: str, reason: str, credentials: Credentials | None) -> None:
        if credentials is None or not self.is_attached:
            return
        self.show_message("Checking…")
        self._decide_worker(row.chain, decision, reason, credentials)

    @work(thread=True, exit_on_error=False, group="device-decision")
    def _decide_worker(self, chain: str, decision: str, reason: str, credentials: Credentials) -> None:
        result = self._admin.decide_device(chain, decision, reason, credentials)
        self.app.call_from_thread(self._decided, result)

    def _decided(self, result: ActionResult) -> None:
        if not self.is_attached:
            return
        self.show_message(result.message)
        self.action_refresh()
        if result.message:
            self.show_message(result.message)
