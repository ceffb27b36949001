"""No traceback ever reaches the screen: errors become a notice and a record (A11-12)."""

from __future__ import annotations

from typing import ClassVar

import pytest
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Button

from screens.app import ERROR_NOTICE, KioskApp
from screens.base import KioskScreen
from tests.ui.conftest import POLICY, log_in, make_app, settle


class Boom(RuntimeError):
    pass


class FaultyScreen(KioskScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("f5", "explode", "Explode")]

    def __init__(self) -> None:
        super().__init__()
        self.ok_presses = 0

    def compose(self) -> ComposeResult:
        yield Button("Explode", id="explode")
        yield Button("Fine", id="fine")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "explode":
            raise Boom("handler failed")
        self.ok_presses += 1

    def action_explode(self) -> None:
        raise Boom("action failed")

    @work(thread=True)  # exit_on_error defaults to True: Textual would exit
    def failing_worker(self) -> None:
        raise Boom("worker failed")


class FaultyApp(KioskApp):
    BINDINGS: ClassVar[list[BindingType]] = [
        *KioskApp.BINDINGS,
        Binding("f6", "app_explode", "Explode"),
    ]

    def action_app_explode(self) -> None:
        raise Boom("app action failed")


def _notices(app: KioskApp) -> list[str]:
    return [n.message for n in app._notifications]


async def _start(clock, services):
    screen = FaultyScreen()
    app = FaultyApp(
        clock=clock,
        services=services,
        session_policy=POLICY,
        home_factory=lambda s: screen,
        idle_check_s=3600,
    )
    return app, screen


def _assert_survived(app: KioskApp, services, count: int = 1) -> None:
    assert app.is_running and not app._exit and app.return_code is None
    assert app._exception is None  # nothing for Textual to print
    assert len(services.errors) == count
    assert all(isinstance(e, Boom) for e in services.errors)
    assert ERROR_NOTICE in _notices(app)


@pytest.mark.req("A11-12")
async def test_exception_in_a_screen_handler_is_a_notice_and_the_screen_still_works(clock, services) -> None:
    app, screen = await _start(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        await pilot.click("#explode")
        await pilot.pause()
        _assert_survived(app, services)
        await pilot.click("#fine")  # the screen's message loop is still alive
        await pilot.pause()
        assert screen.ok_presses == 1


@pytest.mark.req("A11-12")
async def test_exception_in_a_screen_action_via_key(clock, services) -> None:
    app, screen = await _start(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        await pilot.press("f5")
        await pilot.pause()
        _assert_survived(app, services)
        await pilot.press("f12")  # the App still handles keys
        await pilot.pause()
        assert app.screen is app.lock_screen


@pytest.mark.req("A11-12")
async def test_exception_in_an_app_action_keeps_the_app_loop_alive(clock, services) -> None:
    app, screen = await _start(clock, services)
    async with app.run_test() as pilot:
        await pilot.press("f6")
        await pilot.pause()
        _assert_survived(app, services)
        await pilot.press("f6")  # repeated: recorded again, one notice is enough
        await pilot.pause()
        assert len(services.errors) == 2
        assert _notices(app).count(ERROR_NOTICE) == 1
        await log_in(app, pilot)  # typing still works


@pytest.mark.req("A11-12")
async def test_exception_in_a_worker_does_not_exit(clock, services) -> None:
    app, screen = await _start(clock, services)
    async with app.run_test() as pilot:
        await log_in(app, pilot)
        screen.failing_worker()
        await settle(app, pilot)
        _assert_survived(app, services)


@pytest.mark.req("A11-12")
async def test_exception_in_a_timer_callback(clock, services) -> None:
    app, screen = await _start(clock, services)
    async with app.run_test() as pilot:
        def tick() -> None:
            raise Boom("timer failed")

        app.set_timer(0.01, tick)
        await pilot.pause(0.1)
        _assert_survived(app, services)


@pytest.mark.req("A11-12")
async def test_login_service_crash_is_a_message_not_a_crash(clock, services) -> None:
    services.fail_login_with = Boom("database gone")
    app = make_app(clock, services)
    async with app.run_test() as pilot:
        await pilot.press(*"aortiz", "enter", *"correct horse", "enter")
        await settle(app, pilot)
        _assert_survived(app, services)
        assert app.lock_screen.message_text == "Login is not possible right now. Try again."
        assert app.session is None


@pytest.mark.req("A11-12")
async def test_report_error_failing_still_shows_the_notice(clock, services) -> None:
    def broken(exc):
        raise OSError("disk full")

    services.report_error = broken  # type: ignore[method-assign]
    app, screen = await _start(clock, services)
    async with app.run_test() as pilot:
        await pilot.press("f6")
        await pilot.pause()
        assert app.is_running and app._exception is None
        assert ERROR_NOTICE in _notices(app)
