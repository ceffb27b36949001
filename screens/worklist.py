"""The worklist: batches, their steps in order, who signed what. The home screen after login.

Tables are filled from plain rows the services return; a step opens on Enter.
Batches come a page at a time (newest first), so a site with thousands of
batches (tens of thousands of steps) opens and scrolls as fast as one with
ten: moving past the last row of a page (Down, PgDn) loads the next page,
moving above the first row loads the previous one.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from kiosk.domain.clock import Clock
from screens.nav import Navigator, NavScreen
from screens.ports import ActionResult, KioskServices, SessionInfo, WorkServices
from screens.widgets import StatusBar, safe_text

BATCH_PAGE = 50

STATUS_LABEL = {"locked": "waiting for earlier step", "open": "to do", "in_progress": "in progress",
                "needs_resign": "TAKEN BACK: sign again", "done": "done"}
BATCH_STATUS_LABEL = {"not_started": "not started", "in_progress": "in progress",
                      "needs_resign": "TAKEN BACK: re-sign", "complete": "complete", "released": "RELEASED",
                      "cancelled": "CANCELLED"}


def signatures_text(step) -> Text:
    text = Text()
    for i, sig in enumerate(s for s in step.signatures if s.valid):
        if i:
            text.append("; ")
        text.append(f"{sig.meaning}: ")
        text.append_text(safe_text(sig.name))
    return text


class BatchTable(DataTable):
    """The batch table: past either end of the loaded page it asks the screen for the next one."""

    def _page(self, step: int) -> bool:
        screen = self.screen
        return isinstance(screen, WorklistScreen) and screen.turn_batch_page(step)

    def action_cursor_down(self) -> None:
        if self.cursor_row >= self.row_count - 1 and self._page(+1):
            return
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.cursor_row <= 0 and self._page(-1):
            return
        super().action_cursor_up()

    def action_page_down(self) -> None:
        if self.cursor_row >= self.row_count - 1 and self._page(+1):
            return
        super().action_page_down()

    def action_page_up(self) -> None:
        if self.cursor_row <= 0 and self._page(-1):
            return
        super().action_page_up()


class WorklistScreen(NavScreen):
    """Home after login. F-keys open the other areas this session may use (see ``screens.nav``)."""

    AREA = "worklist"
    KEYS = (("Enter", "Open"), ("Tab", "Next table"))
    BINDINGS: ClassVar[list[BindingType]] = [
        *NavScreen.BINDINGS,
        Binding("n", "new_batch", "New batch"),
        Binding("x", "cancel_batch", "Cancel batch"),
        Binding("g", "find_batch", "Go to batch"),
    ]

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
        self._offset = 0
        self._total = 0
        self._loaded = False
        self._onboarding = False  # an onboarding dialog is open: its callback asks again, not a resume

    def compose(self) -> ComposeResult:
        with Vertical(id="worklist-box"):
            head = Text("Worklist — ")
            head.append_text(safe_text(self._session.display_name, style="bold"))
            head.append(f" ({self._session.role})")
            yield Static(head, id="worklist-head")
            yield BatchTable(id="batches", cursor_type="row", zebra_stripes=True)
            yield Static("", id="batch-title")
            yield DataTable(id="steps", cursor_type="row", zebra_stripes=True)
        yield self.key_bar()
        yield StatusBar(self._clock, self._services.status)

    def on_mount(self) -> None:
        self._onboard()
        batches = self.query_one("#batches", DataTable)
        # Status before the product: it is what an 80-column screen must still show.
        batches.add_columns("Batch", "Status", "Product / recipe")
        steps = self.query_one("#steps", DataTable)
        steps.add_columns("#", "Step", "Status", "Signed")
        self.action_refresh()
        batches.focus()

    def on_screen_resume(self) -> None:
        if self._loaded:  # back from a step or another area: show what changed (not on the first show)
            self.action_refresh()
            if not self._onboarding:  # e.g. back from a step whose fields held the password
                self._onboard()

    def _onboard(self, _result: bool | None = True) -> None:
        """Before any work: accept the e-signature statement, change a temporary password."""
        from screens.onboarding import ChangePasswordDialog, FirstUseDialog

        self._onboarding = False
        if _result is False:
            self.app.logout()  # type: ignore[attr-defined]
            return
        step = self._work.onboarding()  # type: ignore[attr-defined]
        if step is None:
            return
        dialog = FirstUseDialog(step, self._work) if step.kind == "first_use" else ChangePasswordDialog(step, self._work)
        self._onboarding = True
        self.app.open_dialog(dialog, self._onboard)  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        self._load_page(self._offset, keep=self._batch)

    def turn_batch_page(self, step: int) -> bool:
        """Load the next (+1) or previous (-1) page of batches; False when there is none."""
        offset = self._offset + step * BATCH_PAGE
        if offset < 0 or offset >= self._total:
            return False
        self._load_page(offset, at_end=step < 0)
        return True

    def _load_page(self, offset: int, *, keep: str | None = None, at_end: bool = False) -> None:
        table = self.query_one("#batches", DataTable)
        rows, self._total = self._work.batch_page(offset, BATCH_PAGE)
        if not rows and offset > 0:  # the page emptied meanwhile: show the last one that exists
            offset = max(0, (self._total - 1) // BATCH_PAGE * BATCH_PAGE)
            rows, self._total = self._work.batch_page(offset, BATCH_PAGE)
        self._offset = offset
        self._loaded = True
        table.clear()
        for row in rows:
            status = f"{BATCH_STATUS_LABEL.get(row.status, row.status)} · {row.done_steps}/{row.total_steps} steps"
            table.add_row(safe_text(row.batch_id), status, safe_text(f"{row.title} ({row.recipe})"), key=row.batch_id)
        head = self.query_one("#worklist-head", Static)
        title = Text("Worklist — ")
        title.append_text(safe_text(self._session.display_name, style="bold"))
        title.append(f" ({self._session.role})")
        if self._total > len(rows):
            title.append(f"   batches {offset + 1}–{offset + len(rows)} of {self._total}, newest first")
        head.update(title)
        if rows:
            ids = [r.batch_id for r in rows]
            target = keep if keep in ids else ids[-1] if at_end else ids[0]
            self._show_batch(target)
            table.move_cursor(row=ids.index(target))

    def _show_batch(self, batch_id: str) -> None:
        self._batch = batch_id
        self.query_one("#batch-title", Static).update(Text.assemble("Steps of batch ", safe_text(batch_id, style="bold")))
        table = self.query_one("#steps", DataTable)
        table.clear()
        rows = self._work.steps(batch_id)
        for n, step in enumerate(rows, start=1):
            table.add_row(str(n), safe_text(step.title), STATUS_LABEL.get(step.status, step.status),
                          signatures_text(step), key=step.step_id)
        # The cursor rests on the step to work on next, so that Enter opens it.
        table.move_cursor(row=next((i for i, s in enumerate(rows) if s.status not in ("done", "locked")), 0))

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

    # -- start a batch ---------------------------------------------------------------
    def action_new_batch(self, typed: tuple[str, str] | None = None, problem: str = "") -> None:
        from screens.batch_dialog import NewBatchDialog

        self.app.open_dialog(NewBatchDialog(self._work.recipes(), typed, problem), self._start)  # type: ignore[attr-defined]

    def _start(self, chosen: tuple[str, str] | None) -> None:
        if chosen is None or not self.is_attached:
            return
        result = self._work.start_batch(*chosen)
        if not result.ok:
            # The dialog again, as typed, with the refusal in it.
            self.action_new_batch(chosen, result.message)
            return
        self.app.notify(result.message, markup=False)
        self._load_page(0, keep=chosen[0].strip())  # newest first: the new batch is on the first page

    # -- go to a batch (a scanned barcode or a typed id) ---------------------------
    def action_find_batch(self, typed: str = "", problem: str = "") -> None:
        from screens.batch_dialog import FindBatchDialog

        self.app.open_dialog(FindBatchDialog(typed, problem), self._found)  # type: ignore[attr-defined]

    def _found(self, typed: str | None) -> None:
        if typed is None or not self.is_attached:
            return
        found = self._work.find_batch(typed)
        if isinstance(found, ActionResult):
            self.action_find_batch(typed, found.message)
            return
        batch_id, index = found
        self._load_page(index // BATCH_PAGE * BATCH_PAGE, keep=batch_id)
        self.query_one("#steps", DataTable).focus()  # on the step to work on next: Enter opens it

    # -- cancel a batch (a supervisor or QA, their own credentials) ----------------
    def action_cancel_batch(self) -> None:
        from screens.step import ReasonDialog

        batch_id = self._batch
        if batch_id is None:
            return
        dialog = ReasonDialog(f"Cancel batch {batch_id}",
                              "A supervisor or QA cancels a batch started in error or abandoned. What is recorded "
                              "on it stays; nothing more can be. Why is it cancelled? (recorded)", "Next",
                              back_label="Keep the batch")
        self.app.open_dialog(dialog, lambda reason: self._cancel_reason(batch_id, reason))  # type: ignore[attr-defined]

    def _cancel_reason(self, batch_id: str, reason: str | None) -> None:
        from screens.dialogs import CredentialsDialog

        if reason is None or not self.is_attached:
            return
        dialog = CredentialsDialog("Supervisor or QA credentials",
                                   f"Cancel batch {batch_id}: the supervisor or QA types their own user id, password "
                                   "and code.", ask_totp=True, ok_label="Cancel the batch",
                                   back_label="Keep the batch")
        self.app.open_dialog(dialog, lambda creds: creds and self._cancel_worker(batch_id, reason, creds))  # type: ignore[attr-defined]

    @work(thread=True, exit_on_error=False)
    def _cancel_worker(self, batch_id: str, reason: str, credentials) -> None:
        result = self._work.cancel_batch(batch_id, reason, credentials)
        self.app.call_from_thread(self._cancel_done, result)

    def _cancel_done(self, result) -> None:
        self.app.notify(result.message, markup=False, severity="information" if result.ok else "error")
        if self.is_attached:
            self.action_refresh()

    def action_supervisor(self) -> None:
        self.action_nav("supervisor")
