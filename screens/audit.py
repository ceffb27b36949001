"""Audit viewer (admin, QA, supervisor): page through the audit trail, filter it, open a record, export it.

The services read one page at a time; the table lists it newest first (the
screen opens on the latest events; PgDn goes further back in time, PgUp
forward again). The services check each record's signature, and validate the
filters (user, batch, record type, UTC time range) with a message that
names the field. Reads run in a worker thread so a large store never
freezes the kiosk. Every value from a record is shown as text, never markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Static

from kiosk.domain.clock import utc_text
from screens.base import KioskModal
from screens.nav import Navigator, NavScreen
from screens.ports import ActionResult, AuditFilters, AuditPageView, AuditRecordView, AuditServices
from screens.widgets import StatusBar, safe_text

FILTERS = (("f-user", "User", "user id"), ("f-batch", "Batch", "batch id"),
           ("f-type", "Type", "e.g. step.signed"), ("f-from", "From (UTC)", "YYYY-MM-DD"),
           ("f-to", "To (UTC)", "YYYY-MM-DD"))


def record_text(view: AuditRecordView) -> Text:
    text = Text()
    width = max(len(label) for label, _ in view.fields) + 2
    for label, value in view.fields:
        text.append(f"{label:<{width}}", style="bold")
        text.append_text(safe_text(value))
        text.append("\n")
    text.append("\nbody\n", style="bold")
    for line in view.body.splitlines():
        text.append_text(safe_text(line))
        text.append("\n")
    return text


class AuditRecordDialog(KioskModal[None]):
    def __init__(self, view: AuditRecordView) -> None:
        super().__init__(classes="dialog-screen", id="audit-record")
        self._view = view

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide tall"):
            yield Static(safe_text(self._view.title, style="bold"), classes="dialog-title")
            with VerticalScroll(classes="tall-scroll", id="record-scroll"):
                yield Static(record_text(self._view), id="record-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        self.query_one("#record-scroll").focus()

    @property
    def shown_text(self) -> str:
        return str(self.query_one("#record-text", Static).render())

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)


class AuditScreen(NavScreen):
    AREA = "audit"
    KEYS = (("Enter", "Open / apply"),)
    BINDINGS: ClassVar[list[BindingType]] = [
        *NavScreen.BINDINGS,
        Binding("pagedown", "older", "Older", priority=True),
        Binding("pageup", "newer", "Newer", priority=True),
    ]

    def __init__(self, nav: Navigator) -> None:
        super().__init__(nav, id="audit")
        self._audit: AuditServices = nav.admin
        self._page = AuditPageView()
        self._filters = AuditFilters()
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="audit-box"):
            with Horizontal(id="audit-filters"):
                for fid, label, hint in FILTERS:
                    field = Input(placeholder=hint, id=fid, max_length=80)
                    field.border_title = label
                    yield field
            with Horizontal(id="audit-bar"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Export CSV", id="export")
                yield Static("", id="page-info")
            yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="message", classes="message")
        yield self.key_bar()
        yield StatusBar(self.nav.clock, self.nav.services.status)

    def on_mount(self) -> None:
        table = self.query_one("#audit-table", DataTable)
        # Fixed widths: the columns do not jump between pages, and do not wait for the table's
        # idle-time measuring (rows arrive from a worker).
        for label, width in (("When (UTC)", 19), ("Type", 24), ("Who", 28), ("About", 22), ("Reason", 40)):
            table.add_column(label, width=width)
        self._load("newest")
        table.focus()

    # -- reading pages ----------------------------------------------------------------
    def _read_filters(self) -> AuditFilters:
        value = {fid: self.query_one(f"#{fid}", Input).value for fid, _, _ in FILTERS}
        return AuditFilters(value["f-user"], value["f-batch"], value["f-type"], value["f-from"], value["f-to"])

    def _load(self, direction: str) -> None:
        if self._busy:
            return
        self._busy = True
        self.show_message("Reading…")
        self._page_worker(self._filters, direction, self._page.token)

    @work(thread=True, exit_on_error=False, group="audit-read")
    def _page_worker(self, filters: AuditFilters, direction: str, token: object) -> None:
        try:
            page = self._audit.audit_page(filters, direction, token)
        finally:
            self.app.call_from_thread(self._not_busy)
        self.app.call_from_thread(self._show_page, page)

    def _not_busy(self) -> None:
        self._busy = False

    def _show_page(self, page: AuditPageView) -> None:
        if not self.is_attached:
            return
        if not page.ok:
            self.show_message(page.message)
            return
        if page.stay and self._page.lines:
            self.show_message(page.message)  # nothing further that way: keep the current page
            return
        self._page = page
        table = self.query_one("#audit-table", DataTable)
        table.clear()
        for n, line in reversed(list(enumerate(page.lines))):  # newest at the top
            table.add_row(safe_text(utc_text(line.ts_utc, seconds=True)), safe_text(line.type), safe_text(line.who),
                          safe_text(line.about), safe_text(line.reason), key=f"{n}")
        info = f"{len(page.lines)} shown"
        info += " · PgDn older" if page.has_older else " · no older"
        info += " · PgUp newer" if page.has_newer else " · no newer"
        self.query_one("#page-info", Static).update(Text(info))
        self.show_message(page.message or ("No records match these filters." if not page.lines else ""))

    def action_older(self) -> None:
        if self._page.has_older:
            self._load("older")
        else:
            self.show_message("These are the oldest records for these filters.")

    def action_newer(self) -> None:
        if self._page.has_newer:
            self._load("newer")
        else:
            self.show_message("These are the newest records for these filters.")

    def action_refresh(self) -> None:
        self._page = AuditPageView()
        self._load("newest")

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self._filters = self._read_filters()
        self._page = AuditPageView()
        self._load("newest")

    # -- one record, export -------------------------------------------------------------
    @on(DataTable.RowSelected, "#audit-table")
    def _open_record(self, event: DataTable.RowSelected) -> None:
        try:
            line = self._page.lines[int(str(event.row_key.value))]
        except (ValueError, IndexError):
            return
        view = self._audit.audit_record(line.chain, line.seq)
        if isinstance(view, ActionResult):
            self.show_message(view.message)
            return
        self.app.open_dialog(AuditRecordDialog(view))  # type: ignore[attr-defined]

    @on(Button.Pressed, "#export")
    def _export(self) -> None:
        self.show_message("Exporting…")
        self._export_worker(self._filters)

    @work(thread=True, exit_on_error=False, group="audit-export")
    def _export_worker(self, filters: AuditFilters) -> None:
        result = self._audit.export_audit(filters)
        self.app.call_from_thread(self.show_message, result.message)

    def show_message(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#message", Static).update(safe_text(text))

    @property
    def message_text(self) -> str:
        return str(self.query_one("#message", Static).render())
