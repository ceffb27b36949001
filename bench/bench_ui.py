"""UI responsiveness, headless with Pilot, each figure next to a limit measured in the same run.

1. App start to the login screen: the kiosk app (real services, standalone) from ``run_test`` until
   the lock screen is mounted and painted, vs a bare Textual App showing one empty Static.
2. Keypress-to-render on a worklist holding N steps (default 10,000: N/5 batches of the 5-step
   buffer recipe, created through the real services; one recipe cannot hold 10,000 steps, a record
   is at most 256 KiB): the time from a key press (Down / PgDn in the batch table, which shows that
   batch's steps; Down in the steps table) until the key is handled and the screen repainted, vs the
   same measure for one row move in a bare DataTable of 10 rows. Also: opening the worklist.

A key is posted to the App as the terminal driver would post it; "handled" means every widget on
the screen has drained its message queue (three rounds, so messages caused by the key are handled
too); "repainted" is Textual's own screen update (``Screen._on_timer_update``, what its update timer
runs). ``Pilot.press`` is not used for timing: it waits for the whole process to look idle, twice,
which puts a ~60 ms floor under every key.

Run: python bench/bench_ui.py [N] [PRESSES]   (defaults 10,000 steps, 200 presses)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyotp  # noqa: E402
from textual import events  # noqa: E402
from textual.app import App  # noqa: E402
from textual.widgets import DataTable, Static  # noqa: E402

from bench._common import percentiles  # noqa: E402
from kiosk.domain.clock import FakeClock  # noqa: E402

SIZE = (120, 40)


class _Bare(App[None]):
    """The raw limit: the least a Textual app can do to show something."""

    def compose(self):
        yield Static("")


class _BareTable(App[None]):
    def compose(self):
        yield DataTable(cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "Step", "Status", "Signed")
        for i in range(10):
            table.add_row(str(i), f"Step {i}", "to do", "")
        table.focus()


def _steps(kiosk) -> int:
    signing = kiosk.signing
    return sum(len(signing.steps(b["batch_id"])) for b in signing.newest_batches(0, signing.batch_count()))


async def _start_time(make) -> float:
    start = time.perf_counter()
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        return time.perf_counter() - start


async def _press(pilot, key: str) -> None:
    """One key press, handled and painted (see the module docstring)."""
    app = pilot.app
    event = events.Key(key, None)
    event.set_sender(app)
    app.post_message(event)
    for _ in range(3):
        await pilot._wait_for_screen()
    app.screen._on_timer_update()


async def _latencies(app, keys: list[str], setup=None) -> list[float]:
    out = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if setup is not None:
            await setup(pilot)
        for key in keys:
            start = time.perf_counter()
            await _press(pilot, key)
            out.append(time.perf_counter() - start)
    return out


def build(tmp: Path, n: int):
    from kiosk.app import make_app
    from kiosk.demo import DEMO_PASSWORD, create_demo
    from kiosk.domain.passwords import PasswordHasher
    from screens.ports import SessionInfo

    clock = FakeClock()
    kiosk, users = create_demo(tmp / "data", clock, hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    for u in users:
        kiosk.auth.accept_first_use(kiosk.auth.user(u.user_id))
    sup = next(u for u in users if u.user_id == "sam.sup")
    clock.advance(31)
    assert kiosk.session.login("sam.sup", DEMO_PASSWORD, pyotp.TOTP(sup.totp_secret).at(clock.now())).ok
    steps_each = len(kiosk.signing.recipe("buffer-prep@4").steps)
    have = _steps(kiosk)
    for i in range(max(0, n - have) // steps_each):
        clock.advance(1)
        kiosk.session.activity()
        kiosk.signing.create_batch(f"PB-B{i:05d}", "buffer-prep@4")
    kiosk.session.logout()
    ana = next(u for u in users if u.user_id == "ana.op")
    total = _steps(kiosk)

    def app_with_session():
        app = make_app(kiosk, idle_check_s=3600)
        clock.advance(31)
        assert kiosk.session.login("ana.op", DEMO_PASSWORD, pyotp.TOTP(ana.totp_secret).at(clock.now())).ok
        return app

    session = SessionInfo("ana.op", "Ana Ortiz", "Operator")
    return kiosk, app_with_session, session, total


def main(n: int = 10_000, presses: int = 200) -> None:
    from screens.worklist import WorklistScreen

    bare_start = [asyncio.run(_start_time(_Bare)) for _ in range(3)]
    bare_keys = asyncio.run(_latencies(_BareTable(), ["down", "up"] * (presses // 2)))
    with tempfile.TemporaryDirectory() as tmp:
        kiosk, app_with_session, session, total = build(Path(tmp), n)

        def kiosk_app():
            from kiosk.app import make_app

            return make_app(kiosk, idle_check_s=3600)

        kiosk_start = [asyncio.run(_start_time(kiosk_app)) for _ in range(3)]

        open_times: list[float] = []

        async def open_worklist(pilot):
            app = pilot.app
            start = time.perf_counter()
            app.session = session
            app.push_screen(app._home_factory(session))
            await pilot.pause()
            while not isinstance(app.screen, WorklistScreen):
                await pilot.pause(0.01)
            await pilot.pause()
            open_times.append(time.perf_counter() - start)

        async def into_steps(pilot):
            await open_worklist(pilot)
            await pilot.press("enter")  # batch table -> steps table
            await pilot.pause()

        batch_keys = asyncio.run(_latencies(app_with_session(), ["down"] * presses, open_worklist))
        page_keys = asyncio.run(_latencies(app_with_session(), ["pagedown"] * min(presses, 20), open_worklist))
        step_keys = asyncio.run(_latencies(app_with_session(), ["down", "down", "up", "up"] * 10, into_steps))
        kiosk.close()

    def line(name: str, samples: list[float], limit: list[float]) -> None:
        p50, p99 = percentiles(samples)
        l50, l99 = percentiles(limit)
        print(f"{name:<46} p50 {p50 * 1000:8.2f} ms  p99 {p99 * 1000:8.2f} ms   "
              f"limit p50 {l50 * 1000:7.2f} ms  p99 {l99 * 1000:7.2f} ms   ratio p50 {p50 / l50:6.2f}  p99 {p99 / l99:6.2f}")

    print(f"UI (headless, {SIZE[0]}x{SIZE[1]}), worklist with {total} steps in {total // 5} batches; "
          "limits measured in this run")
    line("start to login screen", kiosk_start, bare_start)
    print("  (limit: a bare Textual App with one empty Static, start to first paint)")
    line("worklist: Down in the batch table", batch_keys, bare_keys)
    line("worklist: PgDn in the batch table", page_keys, bare_keys)
    line("worklist: Down/Up in the steps table", step_keys, bare_keys)
    line("worklist: open (login to painted worklist)", open_times, bare_start)
    print("  (limit for keys: one row move in a bare 10-row DataTable, press to repaint)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 200)
