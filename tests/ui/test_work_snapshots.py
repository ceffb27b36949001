"""SVG snapshots of the worklist and the sign dialog on the real services (80x24 and 120x40)."""

from __future__ import annotations

import pytest

from kiosk.app import make_app
from kiosk.demo import DEMO_PASSWORD, create_demo
from kiosk.domain.clock import FakeClock
from kiosk.domain.passwords import PasswordHasher
from screens.ports import SessionInfo
from tests.ui.flows import ana_performs_line_clearance

SIZES = [(80, 24), (120, 40)]


def _app(tmp_path, user=("ana.op", "Ana Ortiz", "Operator"), performed=False):
    """The demo kiosk with ``user`` logged in; ``performed``: Ana has signed the first step's Performed."""
    import pyotp

    clock = FakeClock()
    kiosk, users = create_demo(tmp_path / "demo", clock, hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    for u in users:
        kiosk.auth.accept_first_use(kiosk.auth.user(u.user_id))
    secrets = {u.user_id: u.totp_secret for u in users}

    def login(user_id):
        clock.advance(31)
        assert kiosk.session.login(user_id, DEMO_PASSWORD, pyotp.TOTP(secrets[user_id]).at(clock.now())).ok

    if performed:
        ana_performs_line_clearance(kiosk, clock, secrets["ana.op"])
    app = make_app(kiosk, idle_check_s=3600)  # a start-up: any open session ends here
    login(user[0])
    session = SessionInfo(*user)

    async def open_worklist(pilot):
        app.session = session
        app.push_screen(app._home_factory(session))
        await pilot.pause(0.2)

    return app, kiosk, open_worklist


@pytest.mark.req("P11-10f")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_worklist(snap_compare, tmp_path, size):
    app, kiosk, open_worklist = _app(tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=open_worklist)


@pytest.mark.req("P11-50")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sign_dialog_shows_the_manifestation(snap_compare, tmp_path, size):
    app, kiosk, open_worklist = _app(tmp_path)

    async def run_before(pilot):
        await open_worklist(pilot)
        await pilot.press("enter", "enter")
        await pilot.pause(0.2)
        for ch in "yes":
            await pilot.press(ch)
        app.screen.query_one("#sign-Performed").press()
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.req("P11-10g")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_verifier_reads_the_performers_values_without_typing_over_them(snap_compare, tmp_path, size):
    app, kiosk, open_worklist = _app(tmp_path, ("quinn.qa", "Quinn QA", "QA"), performed=True)

    async def run_before(pilot):
        await open_worklist(pilot)
        await pilot.press("enter", "enter")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
