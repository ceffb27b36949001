"""The worklist: batches, their steps in order, who signed what. The home screen after login.

Tables are filled from plain rows the services return; a step opens on Enter.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from kiosk.domain.clock import Clock
from screens.nav import Navigator, NavScreen
from screens.ports import KioskServices, SessionInfo, WorkServices
from screens.widgets import StatusBar, safe_text

STATUS_LABEL = {"locked": "waiting for earlier step", "open": "to do", "in_progress": "in progress",
                "needs_resign": "CORRECTED: sign again", "done": "done"}


def signatures_text(step) -> Text:
    text = Text()
    for i, sig in enumerate(s for s in step.signatures if s.valid):
        if i:
            text.append("; ")
        text.append(f"{sig.meaning}: ")
        text.append_text(safe_text(sig.name))
    return text


class WorklistScreen(NavScreen):
    """Home after login. F-keys open the other areas this session may use (see ``screens.nav``)."""

    AREA = "worklist"
    KEYS = (("Enter", "Open"), ("Tab", "Next table"))

    def __init__(self, session: SessionInfo, services: KioskServices, work: WorkServices, clock: Clock,
                 admin: object | None = None) -> None:
        nav = Navigator(session, services, work, admin, clock)
        super().__init__(nav, id="worklist")
        nav.home = self
        self._session = session
        self._services = services
        self._work = work
        self._clock = clock
        self._batch: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="worklist-box"):
            head = Text("Worklist — ")
            head.append_text(safe_text(self._session.display_name, style="bold"))
            head.append(f" ({self._session.role})")
            yield Static(head, id="worklist-head")
            yield DataTable(id="batches", cursor_type="row", zebra_stripes=True)
            yield Static("", id="batch-title")
            yield DataTable(id="steps", cursor_type="row", zebra_stripes=True)
        yield self.key_bar()
        yield StatusBar(self._clock, self._services.status)

    def on_mount(self) -> None:
        self._onboard()
        batches = self.query_one("#batches", DataTable)
        batches.add_columns("Batch", "Product / recipe", "Steps done")
        steps = self.query_one("#steps", DataTable)
        steps.add_columns("#", "Step", "Status", "Signed")
        self.action_refresh()
        batches.focus()

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def _onboard(self, _result: bool | None = True) -> None:
        """Before any work: accept the e-signature statement, change a temporary password."""
        from screens.onboarding import ChangePasswordDialog, FirstUseDialog

        if _result is False:
            self.app.logout()  # type: ignore[attr-defined]
            return
        step = self._work.onboarding()  # type: ignore[attr-defined]
        if step is None:
            return
        dialog = FirstUseDialog(step, self._work) if step.kind == "first_use" else ChangePasswordDialog(step, self._work)
        self.app.open_dialog(dialog, self._onboard)  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        table = self.query_one("#batches", DataTable)
        keep = self._batch
        table.clear()
        rows = self._work.batches()
        for row in rows:
            table.add_row(safe_text(row.batch_id), safe_text(f"{row.title} ({row.recipe})"),
                          f"{row.done_steps}/{row.total_steps}", key=row.batch_id)
        if rows:
            ids = [r.batch_id for r in rows]
            self._show_batch(keep if keep in ids else ids[0])
            table.move_cursor(row=ids.index(self._batch))

    def _show_batch(self, batch_id: str) -> None:
        self._batch = batch_id
        self.query_one("#batch-title", Static).update(Text.assemble("Steps of batch ", safe_text(batch_id, style="bold")))
        table = self.query_one("#steps", DataTable)
        table.clear()
        for n, step in enumerate(self._work.steps(batch_id), start=1):
            table.add_row(str(n), safe_text(step.title), STATUS_LABEL.get(step.status, step.status),
                          signatures_text(step), key=step.step_id)

    @on(DataTable.RowHighlighted, "#batches")
    def _batch_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value and event.row_key.value != self._batch:
            self._show_batch(event.row_key.value)

    @on(DataTable.RowSelected, "#batches")
    def _batch_selected(self, event: DataTable.RowSelected) -> None:
        self.query_one("#steps", DataTable).focus()

    @on(DataTable.RowSelected, "#steps")
    def _step_selected(self, event: DataTable.RowSelected) -> None:
        from screens.step import StepScreen

        if self._batch and event.row_key.value:
            self.app.push_screen(StepScreen(self._batch, event.row_key.value, self._services, self._work, self._clock))

    def action_supervisor(self) -> None:
        self.action_nav("supervisor")
