"""Status bar content, and user-supplied text shown literally (A11-12, P11-50)."""

from __future__ import annotations

import datetime as dt

import pytest
from textual.app import App, ComposeResult

from kiosk.domain.clock import UTC
from screens.login import lock_note
from screens.ports import KioskStatus, SessionInfo, SyncState
from screens.widgets import StatusBar, safe_text
from tests.ui.conftest import make_app, settle

EVIL_NAME = "[bold]x[/bold]\x1b[31mred\u202e"


class BarApp(App[None]):
    def __init__(self, clock, status) -> None:
        super().__init__()
        self._clock = clock
        self._status = status

    def compose(self) -> ComposeResult:
        yield StatusBar(self._clock, lambda: self._status)


def _status(**kw) -> KioskStatus:
    base = dict(
        device_id="KX-01",
        user_id="aortiz",
        display_name="Ana Ortiz",
        role="Operator",
        sync=SyncState(queued=3, last_sync=dt.datetime(2026, 11, 24, 9, 58, tzinfo=UTC), offline=False),
    )
    base.update(kw)
    return KioskStatus(**base)


@pytest.mark.req("P11-50")
async def test_status_bar_shows_user_role_device_times_and_sync(clock) -> None:
    app = BarApp(clock, _status())
    async with app.run_test(size=(120, 10)) as pilot:
        await pilot.pause()
        bar = app.query_one(StatusBar)
        line1 = bar.render_line(0).text
        line2 = bar.render_line(1).text
        assert "Ana Ortiz (aortiz) · Operator" in line1
        assert "Device KX-01" in line2
        assert "Online · 3 queued · last sync 09:58 UTC" in line1
        assert "2026-11-24 10:00:00 Europe/Dublin (GMT)" in line2
        assert "10:00:00 UTC" in line2


@pytest.mark.req("A11-16")
async def test_status_bar_shows_offline_and_never_synced(clock) -> None:
    app = BarApp(clock, _status(user_id=None, display_name=None, role=None,
                                sync=SyncState(queued=12, last_sync=None, offline=True)))
    async with app.run_test(size=(120, 10)) as pilot:
        await pilot.pause()
        bar = app.query_one(StatusBar)
        assert "Nobody logged in" in bar.render_line(0).text
        assert "OFFLINE · 12 queued · never synced" in bar.render_line(0).text


@pytest.mark.req("A11-16")
async def test_status_bar_says_when_the_directory_is_not_updating(clock) -> None:
    """Online and sending, but not pulling (a central store restored from a backup): a suspension made at
    another terminal does not arrive, which the people at this one need to see as plainly as OFFLINE."""
    app = BarApp(clock, _status(sync=SyncState(queued=0, last_sync=dt.datetime(2026, 11, 24, 9, 58, tzinfo=UTC),
                                               not_pulling=True)))
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        bar = app.query_one(StatusBar)
        assert bar.render_line(0).text.rstrip().endswith("Online · DIRECTORY NOT UPDATING · 0 queued · last sync "
                                                         "09:58 UTC")
        line1, _ = bar.line_texts()
        shouted = [line1.plain[s.start:s.end] for s in line1.spans if "reverse" in str(s.style)]
        assert shouted == ["Online · DIRECTORY NOT UPDATING · 0 queued · last sync 09:58 UTC"]


async def test_a_standalone_terminal_is_not_shown_as_offline(clock) -> None:
    app = BarApp(clock, _status(user_id=None, display_name=None, role=None, sync=SyncState(standalone=True)))
    async with app.run_test(size=(120, 10)) as pilot:
        await pilot.pause()
        line = app.query_one(StatusBar).render_line(0).text
        assert "Standalone · no central store" in line and "OFFLINE" not in line


@pytest.mark.req("A11-16")
async def test_status_bar_fits_80_columns_with_a_long_name(clock) -> None:
    app = BarApp(clock, _status(display_name="Maximiliane Wolkenstein-Hohenberg von Ortiz"))
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        line1 = app.query_one(StatusBar).render_line(0).text
        assert line1.rstrip().endswith("Online · 3 queued · last sync 09:58 UTC")
        assert "Maximiliane" in line1 and "…" in line1


@pytest.mark.req("A11-12")
async def test_markup_and_ansi_in_a_name_are_shown_literally(clock) -> None:
    app = BarApp(clock, _status(display_name=EVIL_NAME, role="[@click=app.quit]Op[/]"))
    async with app.run_test(size=(120, 10)) as pilot:
        await pilot.pause()
        bar = app.query_one(StatusBar)
        line1 = bar.render_line(0).text
        assert "[bold]x[/bold]\\x1b[31mred\\u202e" in line1
        assert "\x1b" not in line1 and "\u202e" not in line1
        assert "[@click=app.quit]Op[/]" in line1
        who, _ = bar.line_texts()
        styled = [who.plain[s.start:s.end] for s in who.spans if "bold" in str(s.style)]
        assert styled == ["[bold]x[/bold]\\x1b[31mred\\u202e"]  # bold only from our own style
        assert app.is_running


@pytest.mark.req("A11-12")
async def test_markup_name_on_the_lock_screen_and_in_service_messages(clock, services) -> None:
    note = lock_note(SessionInfo("u1", EVIL_NAME, "Operator"), "idle")
    assert note.plain.startswith("Locked — [bold]x[/bold]\\x1b[31mred")
    services.users[0].display_name = EVIL_NAME
    app = make_app(clock, services)
    async with app.run_test(size=(120, 30)) as pilot:
        services_message = "[red]Wrong[/red] \x1b[2J for [b]you[/b]"
        services.fail_login_with = None
        orig = services.login

        def login(c):
            orig(c)
            from screens.ports import LoginResult

            return LoginResult(ok=False, message=services_message)

        services.login = login  # type: ignore[method-assign]
        await pilot.press(*"aortiz", "enter", *"whatever", "enter")
        await settle(app, pilot)
        assert app.lock_screen.message_text == "[red]Wrong[/red] \\x1b[2J for [b]you[/b]"


@pytest.mark.req("A11-12")
def test_safe_text_escapes_controls_and_is_never_markup() -> None:
    text = safe_text("a\tb\nc\x00[i]d[/i]\x9b")
    assert text.plain == "a\\x09b\\x0ac\\x00[i]d[/i]\\x9b"
    assert text.spans == []
    # A message the program composed from lines keeps its breaks; everything else stays escaped.
    lines = safe_text("Jane (jane.op):\n\nI certify\x1b[2J\r", multiline=True)
    assert lines.plain == "Jane (jane.op):\n\nI certify\\x1b[2J\\x0d"
