"""UI test helpers: a KioskApp built from a FakeClock and FakeServices."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.config import SessionConfig
from kiosk.domain.clock import FakeClock
from screens.app import KioskApp
from tests.ui.fakes import FakeServices

POLICY = SessionConfig(idle_timeout_s=300, idle_warning_s=60)


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def demo(tmp_path, clock):
    """The demo kiosk on the real services, every demo user past the e-signature statement (flows.make_demo).
    A module with a demo of its own (created another way) defines its own fixture of this name."""
    from tests.ui.flows import make_demo

    kiosk, users = make_demo(tmp_path, clock)
    yield kiosk, users
    kiosk.close()


def make_app(clock: FakeClock, services: FakeServices, **kwargs: Any) -> KioskApp:
    kwargs.setdefault("session_policy", POLICY)
    # The idle check is driven by the tests (check_inactivity) so nothing depends on real time.
    kwargs.setdefault("idle_check_s", 3600)
    return KioskApp(clock=clock, services=services, **kwargs)


async def settle(app: KioskApp, pilot: Any) -> None:
    """Wait for workers (login, admin check) and the messages they post."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def log_in(app: KioskApp, pilot: Any, user: str = "aortiz", password: str = "correct horse") -> None:
    await pilot.pause()  # the lock screen has focused its first field
    await pilot.press(*user, "enter", *password, "enter")
    await settle(app, pilot)
    assert app.session is not None, app.lock_screen.message_text
