"""The demo banner: public demo credentials and the current one-time codes, refreshed every second."""

from __future__ import annotations

from typing import Callable

from textual.widgets import Static

from rich.text import Text


class DemoBanner(Static):
    DEFAULT_CSS = """
    DemoBanner { dock: top; height: auto; background: #FFD700; color: #000000; padding: 0 1; }
    """

    def __init__(self, text: Callable[[], str]) -> None:
        super().__init__(id="demo-banner")
        self._text = text

    def on_mount(self) -> None:
        self.refresh_text()
        self.set_interval(1.0, self.refresh_text)

    def refresh_text(self) -> None:
        self.update(Text(self._text()))  # plain text: never markup
