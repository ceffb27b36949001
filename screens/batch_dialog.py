"""Batch dialogs: start a batch; go to a batch by its id.

NewBatchDialog returns ``(batch_id, recipe_key)``, or None when cancelled or locked away.
It offers the recipes the signed-in role may start (a recipe's
``start_roles``). The services refuse an id already used, an id that cannot be recorded, or a
role that may not start batches; the worklist then opens this dialog again
as typed, with the refusal at its top.
"""

from __future__ import annotations

from typing import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from screens.base import KioskModal
from screens.ports import RecipeChoice
from screens.widgets import safe_text


class NewBatchDialog(KioskModal["tuple[str, str] | None"]):
    def __init__(self, recipes: Sequence[RecipeChoice], typed: tuple[str, str] | None = None,
                 problem: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self._recipes = list(recipes)
        self._typed = typed
        self._problem = problem

    def compose(self) -> ComposeResult:
        batch_id, recipe = self._typed or ("", None)
        with Vertical(classes="dialog", id="new-batch-box"):
            yield Static(safe_text("Start a batch", style="bold"), classes="dialog-title")
            if self._problem:
                yield Static(safe_text(self._problem), classes="message", id="problem")
            field = Input(value=batch_id, placeholder="e.g. PB-2026-002 (never reused)", id="batch-id", max_length=40)
            field.border_title = "Batch ID"
            yield field
            yield Label("Master batch record (recipe version)")
            startable = [r for r in self._recipes if r.startable]
            options = [(f"{r.title} ({r.key})", r.key) for r in startable]
            keys = [r.key for r in startable]
            yield Select(options, id="recipe", allow_blank=not options,
                         value=recipe if recipe in keys else (keys[0] if keys else Select.NULL),
                         prompt="your role may not start any of them" if self._recipes
                         else "no recipe is registered on this terminal")
            yield Static("", id="message", classes="message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start batch", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#batch-id").focus()

    @on(Input.Submitted, "#batch-id")
    def _submitted(self) -> None:
        self._ok()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        batch_id = self.query_one("#batch-id", Input).value.strip()
        recipe = self.query_one("#recipe", Select).value
        if not batch_id:
            self.query_one("#message", Static).update("Enter the batch ID.")
            return
        if recipe is Select.NULL:
            self.query_one("#message", Static).update(safe_text(self._none_startable()))
            return
        self.dismiss((batch_id, str(recipe)))

    def _none_startable(self) -> str:
        if not self._recipes:
            return "No recipe is registered on this terminal; an admin registers one (kiosk admin recipes register)."
        who = "; ".join(f"{r.key} by {r.started_by}" for r in self._recipes)
        return f"Your role may not start a batch of any recipe registered here. They are started: {who}."

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class FindBatchDialog(KioskModal["str | None"]):
    """Go to a batch by scanning its barcode or typing its id (or part of it): what is typed, or None.

    A scanner types the id and Enter, so a scan opens the batch at once. A
    refusal (no such batch, several) opens the dialog again as typed, with
    the reason at its top, like the start dialog.
    """

    def __init__(self, typed: str = "", problem: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self._typed = typed
        self._problem = problem

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="find-batch-box"):
            yield Static(safe_text("Go to a batch", style="bold"), classes="dialog-title")
            if self._problem:
                yield Static(safe_text(self._problem), classes="message", id="problem")
            field = Input(value=self._typed, placeholder="scan the batch barcode, or type its id or part of it",
                          id="find", max_length=40, select_on_focus=False)  # "type more": added to it
            field.border_title = "Batch ID"
            yield field
            with Horizontal(classes="dialog-buttons"):
                yield Button("Go to batch", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#find").focus()

    @on(Input.Submitted, "#find")
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(self.query_one("#find", Input).value)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
