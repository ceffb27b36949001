"""Kiosk escape on the real app (A11-12): the composition root's app over real services and a real
store, on the lock screen, the worklist and inside the sign dialog. Every key of Textual's default
App/Screen/ModalScreen and widget bindings, the usual quit/suspend/palette chords, and pasted ANSI/OSC
escape sequences: the app never exits, shows no error or traceback, opens no command palette, and
records no exit.
"""

from __future__ import annotations

import pytest
from textual import events
from textual.app import App
from textual.binding import Binding
from textual.command import CommandPalette
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Input

from kiosk.app import make_app
from kiosk.demo import create_demo
from kiosk.domain.passwords import PasswordHasher
from screens.app import ERROR_NOTICE
from screens.dialogs import CredentialsDialog
from screens.worklist import WorklistScreen
from storage.verify_local import verify_local_store
from tests.ui.flows import login, open_first_step, type_text, wait_for

OWN_KEYS = {"f9", "f12", "enter"}  # the kiosk's own log out, lock and open: leaving a screen is their job


def _keys() -> list[str]:
    keys: set[str] = set()
    for cls in (App, Screen, ModalScreen, Input, DataTable, Button):
        for binding in Binding.make_bindings(cls.BINDINGS):
            keys.update(k.strip() for k in binding.key.split(","))
    keys.add(App.COMMAND_PALETTE_BINDING)
    keys.update(["ctrl+c", "ctrl+q", "ctrl+z", "ctrl+p", "ctrl+backslash", "ctrl+d", "ctrl+s", "ctrl+l",
                 "escape", "alt+f4", "ctrl+alt+delete", "ctrl+shift+q", "super+q", "ctrl+shift+p", "f1", "f2",
                 "f4", "f6", "f7", "f8", "f11"])
    return sorted(keys - OWN_KEYS)


KEYS = _keys()
ESCAPES = [
    "\x1b[201~\x03\x1a\x11\x1c",                # end-of-paste marker, then ^C ^Z ^Q ^\
    "\x1b]52;c;ZXZpbA==\x07",                   # OSC 52: set the clipboard
    "\x1b]0;pwned\x07\x1b[2J\x1b[H",            # window title, clear screen, home
    "\x1b[?1049l\x1b[?25h",                     # leave the alternate screen, show the cursor
    "\x1bP+q544e\x1b\\",                        # DCS terminal query
    "\x9b31m\x9d0;x\x9c",                       # C1 controls (8-bit CSI / OSC / ST)
]


@pytest.fixture
def demo(tmp_path, clock):
    kiosk, users = create_demo(tmp_path / "demo", clock, hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    yield kiosk, {u.user_id: u for u in users}
    kiosk.close()
    assert verify_local_store(tmp_path / "demo").ok


def _intact(app, what: str) -> None:
    assert app.is_running and not app._exit and app.return_code is None, what
    assert app._exception is None, what
    assert not any(isinstance(s, CommandPalette) for s in app.screen_stack), what
    assert ERROR_NOTICE not in [n.message for n in app._notifications], what
    assert app.errors_reported == 0, what
    assert app.clipboard == "", what  # nothing copied out (password fields, OSC 52)


async def _hammer(app, pilot, where, ensure) -> None:
    """Press every key at ``where``; ``ensure()`` brings the app back there if a key moved it."""
    for key in KEYS:
        await ensure()
        await pilot.press(key)
        await pilot.pause()
        _intact(app, f"{key} on {where}")
    for text in ESCAPES:
        await ensure()
        app.post_message(events.Paste(text))
        await pilot.pause()
        _intact(app, f"paste {text!r} on {where}")


@pytest.mark.req("A11-12")
async def test_every_key_and_pasted_escape_on_the_lock_screen(demo, clock):
    kiosk, _ = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        async def on_lock_screen():
            while app.screen is not app.lock_screen:  # F10's admin-exit dialog: cancel it
                app.screen.dismiss(None)
                await pilot.pause()

        await _hammer(app, pilot, "the lock screen", on_lock_screen)
        assert app.session is None
    assert "kiosk.exited" not in [r.type for r in kiosk.store.iter_rows()]


@pytest.mark.req("A11-12")
async def test_every_key_and_pasted_escape_on_the_worklist(demo, clock):
    kiosk, users = demo
    start = kiosk.store.head().seq
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await login(pilot, clock, users["ana.op"])
        worklist = app.screen
        assert isinstance(worklist, WorklistScreen)

        async def on_worklist():
            assert app.session is not None and app.session.user_id == "ana.op"  # never logged out by a key
            while app.screen is not worklist:
                app.pop_screen()
                await pilot.pause()

        await _hammer(app, pilot, "the worklist", on_worklist)
        await on_worklist()
    types = [r.type for r in kiosk.store.iter_rows(after_seq=start)]
    assert "kiosk.exited" not in types and "session.logout" not in types


@pytest.mark.req("A11-12")
async def test_every_key_and_pasted_escape_inside_the_sign_dialog(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_first_step(pilot, app, clock, users["ana.op"])
        step = app.screen
        await type_text(pilot, "yes")

        async def in_dialog():
            assert app.session is not None
            if isinstance(app.screen, CredentialsDialog):
                return
            while app.screen is not step:
                app.pop_screen()
                await pilot.pause()
            step.query_one("#sign-Performed").press()
            await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the sign dialog")
            app.screen.query_one("#password", Input).focus()  # the most sensitive field
            await type_text(pilot, "secret pw")

        await _hammer(app, pilot, "the sign dialog", in_dialog)
    types = [r.type for r in kiosk.store.iter_rows()]
    assert "step.signed" not in types  # no key and no paste signed anything
    assert "kiosk.exited" not in types
