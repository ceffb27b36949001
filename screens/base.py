"""Base classes for every kiosk screen and dialog.

Two things every screen needs and Textual does not give by default:

* Handlers that survive their own exceptions. In Textual 8.2.8 an exception
  raised while a message pump dispatches a message goes to
  ``App._handle_exception`` and then the pump's loop *ends*
  (``MessagePump._process_messages_loop``: ``except Exception: ...; break``):
  the screen stops reacting even if the App does not exit. ``GuardedPump``
  catches the exception around ``_dispatch_message`` and hands it to the
  App's error handler, so the screen keeps working.
* Only the bindings we chose: ``inherit_bindings=False`` drops Screen's
  ``ctrl+c -> screen.copy_text`` (OSC 52 copy of selected screen text on a
  shared terminal); Tab / Shift+Tab focus movement is kept.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import ModalScreen, Screen

T = TypeVar("T")

FOCUS_BINDINGS: list[BindingType] = [
    Binding("tab", "app.focus_next", "Next field", show=False),
    Binding("shift+tab", "app.focus_previous", "Previous field", show=False),
]


def report_to_app(node: object, exc: Exception) -> None:
    """Send an unexpected exception to the App's handler (never raises)."""
    app = getattr(node, "app", None)
    handler = getattr(app, "handle_unexpected_error", None)
    if handler is None:  # not a KioskApp: fall back to Textual's behaviour
        raise exc
    handler(exc)


class GuardedPump:
    """Mixin: an exception in a handler becomes an error notice, not a dead pump."""

    async def _dispatch_message(self, message: Message) -> None:  # type: ignore[override]
        try:
            await super()._dispatch_message(message)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - every handler error is reported, none kills the pump
            report_to_app(self, exc)


class KioskScreen(GuardedPump, Screen[None], inherit_bindings=False):
    """A full screen in the kiosk."""

    BINDINGS: ClassVar[list[BindingType]] = list(FOCUS_BINDINGS)


class KioskModal(GuardedPump, ModalScreen[T], inherit_bindings=False):
    """A modal dialog returning a ``T`` (or None when cancelled or locked away)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *FOCUS_BINDINGS,
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    def action_cancel(self) -> None:
        self.dismiss(None)
