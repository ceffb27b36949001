"""Widgets shared by the kiosk screens.

* :func:`safe_text` - the only way user-supplied strings reach the screen:
  a ``rich.text.Text`` (never markup) with control and format characters
  (ANSI escapes, bidi overrides, newlines) shown as visible ``\\x..`` escapes.
* :class:`SecretInput` - a password field that can never be copied or cut.
* :class:`StatusBar` - user, role, device, site time + UTC, sync state.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from rich.text import Text
from textual.geometry import Size
from textual.selection import Selection
from textual.widget import Widget
from textual.widgets import Checkbox, Input

from kiosk.domain.clock import UTC, Clock, local_time
from kiosk.domain.display import safe_str
from screens.ports import KioskStatus

def safe_text(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """User-supplied text for display: never markup, never a terminal escape.

    ``multiline``: the text's own line breaks are kept (a message the program composed
    from lines); any other control character is still shown escaped.
    """
    if multiline:
        return Text("\n".join(safe_str(line) for line in str(value).split("\n")), style=style, no_wrap=False)
    return Text(safe_str(value), style=style, no_wrap=False)


class SecretInput(Input):
    """A password field: masked, and nothing typed in it ever leaves it.

    ``Input(password=True)`` only masks the display; its ``action_copy`` and
    ``action_cut`` (ctrl+c / super+c / ctrl+x) still send the selection to the
    terminal clipboard with OSC 52. Here they do nothing, whatever is selected
    (so "select all" followed by copy or cut yields nothing either), the
    field opts out of screen-level text selection, and ``password`` cannot be
    switched off.
    """

    ALLOW_SELECT = False

    def __init__(self, value: str | None = None, placeholder: str = "", **kwargs: object) -> None:
        kwargs["password"] = True
        super().__init__(value=value, placeholder=placeholder, **kwargs)  # type: ignore[arg-type]

    def validate_password(self, _value: bool) -> bool:
        return True

    def action_copy(self) -> None:
        """Copying a password is not allowed: nothing reaches the clipboard."""

    def action_cut(self) -> None:
        """Cutting a password is not allowed: nothing reaches the clipboard."""

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return None


def _fmt_site(now: dt.datetime, zone: str) -> str:
    local = local_time(now, zone)
    abbrev = local.tzname() or ""
    suffix = f" ({abbrev})" if abbrev and abbrev not in zone else ""
    return f"{local:%Y-%m-%d %H:%M:%S} {zone}{suffix}"


def _fmt_sync(status: KioskStatus, now: dt.datetime) -> str:
    sync = status.sync
    if sync.standalone:
        # Not "OFFLINE": a terminal that is never meant to sync would raise a false alarm all day, and
        # operators would learn to read past the word on the terminals where it matters.
        return "Standalone · no central store"
    if sync.last_sync is None:
        last = "never synced"
    else:
        when = sync.last_sync.astimezone(UTC)
        same_day = when.date() == now.astimezone(UTC).date()
        last = f"last sync {when:%H:%M} UTC" if same_day else f"last sync {when:%Y-%m-%d %H:%M} UTC"
    head = "OFFLINE" if sync.offline else "Online · DIRECTORY NOT UPDATING" if sync.not_pulling else "Online"
    return f"{head} · {sync.queued} queued · {last}"


class StatusBar(Widget):
    """Two lines: who and sync, then site time, UTC and device. Refreshes every second.

    Data comes from an injected ``status`` callable (the services' snapshot)
    and an injected ``Clock``; every string from them is rendered literally.
    """

    DEFAULT_CSS = """
    StatusBar {
        dock: bottom;
        height: 2;
        width: 1fr;
    }
    """

    def __init__(
        self,
        clock: Clock,
        status: Callable[[], KioskStatus],
        *,
        refresh_s: float = 1.0,
        id: str | None = "status-bar",
    ) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._status = status
        self._refresh_s = refresh_s
        self._snapshot: KioskStatus | None = None

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(self._refresh_s, self.poll, name="status-bar")

    def poll(self) -> None:
        """Take a fresh snapshot from the services and redraw."""
        try:
            self._snapshot = self._status()
        except Exception as exc:  # noqa: BLE001 - a status failure must not blank the bar
            self._snapshot = None
            handler = getattr(self.app, "handle_unexpected_error", None)
            if handler is not None:
                handler(exc, notify=False)
        self.refresh()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 2

    def line_texts(self, width: int = 0) -> tuple[Text, Text]:
        """The two lines as ``Text`` (also what tests inspect).

        Line 1: who (truncated first when space is short) │ sync state.
        Line 2: site date and time with zone │ UTC time │ device.
        """
        status = self._snapshot
        now = self._clock.now()
        who = Text()
        tail = Text()
        if status is None:
            who.append("Status unavailable", style="bold")
        else:
            if status.user_id:
                who.append_text(safe_text(status.display_name or status.user_id, style="bold"))
                who.append(" (")
                who.append_text(safe_text(status.user_id))
                who.append(")")
                if status.role:
                    who.append(" · ")
                    who.append_text(safe_text(status.role))
            else:
                who.append("Nobody logged in", style="bold")
            tail.append(" │ ")
            alarming = status.sync.offline or status.sync.not_pulling
            tail.append(_fmt_sync(status, now), style="bold reverse" if alarming else "")
        if width and who.cell_len + tail.cell_len > width:
            who.truncate(max(8, width - tail.cell_len), overflow="ellipsis")
        line1 = who + tail
        when = Text()
        when.append(_fmt_site(now, self._clock.zone))
        when.append(" │ ")
        when.append(f"{now.astimezone(UTC):%H:%M:%S} UTC")
        if status is not None:
            when.append(" │ Device ")
            when.append_text(safe_text(status.device_id or "unregistered"))
        return line1, when

    def render(self) -> Text:
        line1, line2 = self.line_texts(self.size.width)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append_text(line1)
        text.append("\n")
        text.append_text(line2)
        return text


class Tick(Checkbox):
    """A checkbox whose mark is visible only when ticked (Textual draws an X either way, told apart
    by colour alone, which a high-contrast or monochrome terminal does not show)."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]
        return "X" if self.value else " "
