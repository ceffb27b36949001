"""Recipes (admin, read-only): the master batch records loaded on this terminal, their versions and steps.

Recipes change only as new versions registered from files (a versioned,
signed record each, 11.10(k)); this screen shows what is loaded and, for one
recipe, every step with its fields and who may sign it with which meaning.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Static

from screens.base import KioskModal
from screens.nav import Navigator, NavScreen
from screens.ports import RecipeDetail, RecipeRow, RecipeServices
from screens.widgets import StatusBar, safe_text


def status_text(row: RecipeRow) -> str:
    if row.takes_effect:
        return f"takes effect {row.takes_effect}"
    return f"superseded by {row.superseded_by}" if row.superseded_by else "current"


def recipe_text(detail: RecipeDetail) -> Text:
    r = detail.row
    text = Text()
    text.append_text(safe_text(f"{r.title} — product {r.product or '-'}", style="bold"))
    text.append("\n")
    text.append_text(safe_text(f"{r.key} (version {r.version}), registered {r.registered_at}"))
    text.append("\n")
    text.append_text(safe_text(f"content SHA-256 {r.content_hash}"))
    text.append("\n")
    text.append_text(safe_text(f"batches started by {r.started_by}; {status_text(r)}"
                               + (" (until then, new batches start from the version in effect)" if r.takes_effect
                                  else " (new batches start from that version)" if r.superseded_by else "")))
    text.append("\n")
    for step in detail.steps:
        text.append("\n")
        text.append_text(safe_text(f"{step.number}. {step.title}", style="bold"))
        text.append_text(safe_text(f"  [{step.step_id}]"))
        text.append("\n")
        if step.after:
            text.append_text(safe_text("   after: " + ", ".join(step.after)))
            text.append("\n")
        if step.instructions:
            text.append_text(safe_text("   " + step.instructions))
            text.append("\n")
        for f in step.fields:
            text.append_text(safe_text("   field: " + f))
            text.append("\n")
        for s in step.signatures:
            text.append_text(safe_text("   signs: " + s))
            text.append("\n")
    return text


class RecipeDialog(KioskModal[None]):
    def __init__(self, detail: RecipeDetail) -> None:
        super().__init__(classes="dialog-screen", id="recipe-detail")
        self._detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide tall"):
            with VerticalScroll(classes="tall-scroll", id="recipe-scroll"):
                yield Static(recipe_text(self._detail), id="recipe-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        self.query_one("#recipe-scroll").focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)


class RecipesScreen(NavScreen):
    AREA = "recipes"
    KEYS = (("Enter", "Steps and meanings"),)

    def __init__(self, nav: Navigator) -> None:
        super().__init__(nav, id="recipes")
        self._recipes: RecipeServices = nav.admin

    def compose(self) -> ComposeResult:
        with Vertical(id="recipes-box"):
            yield Static(Text("Recipes — loaded master batch records (read-only)", style="bold"))
            yield DataTable(id="recipe-table", cursor_type="row", zebra_stripes=True)
        yield self.key_bar()
        yield StatusBar(self.nav.clock, self.nav.services.status)

    def on_mount(self) -> None:
        self.query_one("#recipe-table", DataTable).add_columns("Recipe", "Version", "Title", "Steps", "Registered",
                                                               "Status")
        self.action_refresh()
        self.query_one("#recipe-table", DataTable).focus()

    def action_refresh(self) -> None:
        table = self.query_one("#recipe-table", DataTable)
        table.clear()
        for r in self._recipes.recipes():
            table.add_row(safe_text(r.key.split("@")[0]), str(r.version), safe_text(r.title), str(r.steps),
                          safe_text(r.registered_at[:10]), safe_text(status_text(r)), key=r.key)

    @on(DataTable.RowSelected, "#recipe-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        self.app.open_dialog(RecipeDialog(self._recipes.recipe_detail(key)))  # type: ignore[attr-defined]
