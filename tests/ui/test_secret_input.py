"""Password fields can never be copied or cut (A11-12, SEC-63B)."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input

from screens.widgets import SecretInput


class SecretApp(App[None]):
    def __init__(self, field: Input) -> None:
        super().__init__()
        self.field = field
        self.copied: list[str] = []

    def compose(self) -> ComposeResult:
        yield self.field

    def copy_to_clipboard(self, text: str) -> None:  # the OSC 52 path, recorded
        self.copied.append(text)
        super().copy_to_clipboard(text)


@pytest.mark.req("A11-12")
@pytest.mark.parametrize("keys", [("ctrl+c",), ("ctrl+x",), ("super+c",), ("ctrl+shift+a", "ctrl+c"),
                                  ("ctrl+shift+a", "ctrl+x"), ("shift+home", "ctrl+c")])
async def test_secret_input_copy_and_cut_put_nothing_on_the_clipboard(keys) -> None:
    app = SecretApp(SecretInput(id="pw"))
    async with app.run_test() as pilot:
        await pilot.press(*"s3cret!")
        await pilot.press("ctrl+shift+a")  # select everything first
        assert app.field.selected_text == "s3cret!"
        await pilot.press(*keys)
        await pilot.pause()
        assert app.copied == []
        assert app.clipboard == ""
        assert app.field.value == "s3cret!"  # cut did not remove it either


@pytest.mark.req("A11-12")
async def test_plain_password_input_would_copy() -> None:
    """The control: Textual's own Input(password=True) does leak (why SecretInput exists)."""
    app = SecretApp(Input(password=True))
    async with app.run_test() as pilot:
        await pilot.press(*"s3cret!", "ctrl+shift+a", "ctrl+c")
        await pilot.pause()
        assert app.copied == ["s3cret!"]


@pytest.mark.req("A11-12")
async def test_secret_input_cannot_be_unmasked_or_screen_selected() -> None:
    app = SecretApp(SecretInput(id="pw"))
    async with app.run_test() as pilot:
        await pilot.press(*"abc")
        app.field.password = False
        await pilot.pause()
        assert app.field.password is True
        assert app.field.allow_select is False
        assert app.field.get_selection(None) is None  # type: ignore[arg-type]
        assert "abc" not in app.field.render_line(0).text
