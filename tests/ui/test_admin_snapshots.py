"""SVG snapshots of the device status, admin and audit screens at 80x24 and 120x40.

Real services (the demo kiosk with fixed device keys, so fingerprints are stable), except the device
status screen, which is shown for a fixed registration through the shell's fake services. Update after
a deliberate visual change with ``pytest tests/ui --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import pyotp
import pytest

from kiosk.app import make_app
from kiosk.demo import DEMO_PASSWORD, demo_central
from kiosk.services.sync import SyncService
from screens.ports import DeviceView, SessionInfo
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore
from tests.ui.conftest import make_app as make_shell_app
from tests.ui.fakes import FakeServices
from tests.ui.flows import fixed_identity, make_demo

SIZES = [(80, 24), (120, 40)]
ADMIN = SessionInfo("admin", "Ada Admin", "Administrator",
                    ("worklist", "supervisor", "audit", "users", "devices", "recipes"))
FINGERPRINT = "3f9a 0c1d 77e2 b604 91aa 5c3e 0d88 e1f7 2b6c 4a90 c3d5 18e4 6f02 9b7a d4c1 e580"


def admin_app(tmp_path, clock, *, central=False, setup=None):
    kiosk, users = make_demo(tmp_path, clock)
    if setup is not None:
        setup(kiosk)
    kwargs = {}
    if central:
        c, sync = demo_central(kiosk)
        fixed_identity(tmp_path / "line-2", "line-2", 9)
        other = LocalStore.open(tmp_path / "line-2", load_or_create_identity(tmp_path / "line-2"), clock)
        SyncService(other, lambda: c, clock).sync_once()
        c.ingest_all()
        other.close()
        kwargs = {"central": c, "sync": sync}
    app = make_app(kiosk, idle_check_s=3600, **kwargs)  # start-up ends any open session
    clock.advance(31)
    code = pyotp.TOTP(users["admin"].totp_secret).at(clock.now())
    assert kiosk.session.login("admin", DEMO_PASSWORD, code).ok
    return app


def go(app, *keys, wait=0.3):
    async def run_before(pilot):
        app.session = ADMIN
        app.push_screen(app._home_factory(ADMIN))
        await pilot.pause(0.2)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.2)
        await app.workers.wait_for_complete()
        await pilot.pause(wait)
        for field in app.screen.query("Input"):
            field.cursor_blink = False  # a blinking cursor would make the snapshot depend on timing
        for _ in range(3):  # let tables finish their deferred layout and scroll the cursor into view
            await pilot.wait_for_scheduled_animations()
            await pilot.pause()

    return run_before


@pytest.mark.req("P11-10h")
@pytest.mark.parametrize("status", ["pending", "revoked"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_device_status(snap_compare, clock, size, status):
    reason = "" if status == "pending" else "site.admin: terminal replaced"
    services = FakeServices(device=DeviceView(status, "line-7", "line-7:1", FINGERPRINT, reason))
    app = make_shell_app(clock, services)
    assert snap_compare(app, terminal_size=size)


@pytest.mark.req("P11-10d")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_users(snap_compare, tmp_path, clock, size):
    app = admin_app(tmp_path, clock)
    assert snap_compare(app, terminal_size=size, run_before=go(app, "f6"))


@pytest.mark.req("P11-100")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_new_user_dialog(snap_compare, tmp_path, clock, size):
    app = admin_app(tmp_path, clock)
    assert snap_compare(app, terminal_size=size, run_before=go(app, "f6", "n"))


@pytest.mark.req("P11-10h")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_devices(snap_compare, tmp_path, clock, size):
    app = admin_app(tmp_path, clock, central=True)
    assert snap_compare(app, terminal_size=size, run_before=go(app, "f7"))


@pytest.mark.req("P11-10k")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_recipe_detail(snap_compare, tmp_path, clock, size):
    app = admin_app(tmp_path, clock)
    assert snap_compare(app, terminal_size=size, run_before=go(app, "f8", "enter"))


def some_alerts(kiosk):
    """Three failed sign-ins (info), a minute apart, and the suspension after the third (critical)."""
    for i in range(3):
        kiosk.clock.advance(60)
        kiosk.auth.raise_alert("auth.bad_password", "info", f"failed sign-in (bad password) for user id 'ana.op' "
                               f"on line-1; failures: {i + 1}", {"kind": "user", "id": "ana.op"})
    kiosk.clock.advance(1)
    kiosk.auth.raise_alert("account.suspended", "critical", "account 'ana.op' suspended after 3 failed attempts "
                           "on line-1", {"kind": "user", "id": "ana.op"})


@pytest.mark.req("P11-300d")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_supervisor(snap_compare, tmp_path, clock, size):
    app = admin_app(tmp_path, clock, setup=some_alerts)
    assert snap_compare(app, terminal_size=size, run_before=go(app, "f3", "tab", "down"))


@pytest.mark.req("P11-300d")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_acknowledge_alert(snap_compare, tmp_path, clock, size):
    """The dialog quotes the whole alert (the table cuts the message at the screen's edge at 80 columns)."""
    app = admin_app(tmp_path, clock, setup=some_alerts)
    assert snap_compare(app, terminal_size=size, run_before=go(app, "f3", "tab", "enter"))


@pytest.mark.req("A11-9")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_audit_viewer(snap_compare, tmp_path, clock, size):
    app = admin_app(tmp_path, clock)
    assert snap_compare(app, terminal_size=size, run_before=go(app, "f4"))
