"""Device status screen on the real services and a real (SQLite) central store (Pilot, FakeClock).

Unregistered -> pending -> approved reaches the login screen; a revocation observed while someone is
logged in locks the terminal to the device status screen; nothing else is reachable meanwhile.
"""

import pytest

from kiosk.app import build_kiosk, make_app
from kiosk.config import KioskConfig
from kiosk.domain.passwords import PasswordHasher
from kiosk.domain.records import parse_raw
from kiosk.services.sync import SyncService
from screens.device_status import DeviceStatusScreen, qr_payload
from screens.dialogs import AdminExitDialog
from screens.qr import decode_lines
from screens.worklist import WorklistScreen
from storage.central import CentralStore
from storage.keyfile import load_or_create_central_key

SITE_ADMIN = {"user_id": "site.admin", "name": "Site Admin", "role": "admin"}
from tests.services.conftest import totp_now
from tests.ui.flows import CHEAP, enter_credentials, type_text, wait_for

PW = "lantern orchard seventeen"


@pytest.fixture
def site(tmp_path, clock):
    kiosk = build_kiosk(KioskConfig(), tmp_path / "k", clock, device_id="line-5", hasher=PasswordHasher(**CHEAP))
    issued = kiosk.auth.bootstrap("site.admin", "Ada Admin")
    clock.advance(31)
    assert kiosk.auth.change_password("site.admin", issued.temporary_password, PW,
                                      totp_now(issued.totp_secret, clock)).ok
    kiosk.auth.accept_first_use(kiosk.auth.user("site.admin"))
    central = CentralStore.open(f"sqlite:///{tmp_path / 'central.db'}", clock,
                                load_or_create_central_key(tmp_path / "central.key"))
    sync = SyncService(kiosk.store, lambda: central, clock)
    yield kiosk, central, sync, issued
    central.close()
    kiosk.close()


async def poll(app, pilot, clock):
    """Let the device poll interval pass on the FakeClock, then run the poll the App's timer would run."""
    clock.advance(app.device_poll_s)
    app.check_device()
    await pilot.pause(0.1)


def sync_and_ingest(sync, central):
    sync.sync_once()
    central.ingest_all()
    sync.sync_once()  # brings the status the central store now holds back as a device.status_observed record


@pytest.mark.req("P11-10h")
@pytest.mark.req("A11-12")
async def test_only_the_device_screen_until_approved_then_login(site, clock):
    kiosk, central, sync, issued = site
    app = make_app(kiosk, idle_check_s=3600, sync=sync, central=central)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, DeviceStatusScreen) and screen.view.status == "unregistered"
        shown = screen.shown_text
        fingerprint = kiosk.identity.key.public.fingerprint
        assert "line-5:1" in shown and fingerprint[:39] in shown and fingerprint[40:] in shown
        assert "compare this fingerprint" in shown
        qr = str(screen.query_one("#device-qr").render()).splitlines()
        import segno

        expected = [[bool(v) for v in row] for row in segno.make(qr_payload(screen.view), error="L",
                                                                  boost_error=False).matrix]
        assert decode_lines(qr) == expected  # the QR holds exactly this terminal's fingerprint
        # Nothing reaches the login form or any other screen.
        await type_text(pilot, "site.admin")
        for key in ("f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "escape", "tab", "ctrl+q", "ctrl+c"):
            await pilot.press(key)
        assert app.screen is screen and not app.lock_screen.has_typed_input()
        await pilot.press("enter")  # the only button: exit (admin)
        await wait_for(pilot, lambda: isinstance(app.screen, AdminExitDialog), "the admin exit dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "the device screen again")
        await pilot.press("f12")
        await pilot.pause(0.05)
        assert app.screen is screen
        sync_and_ingest(sync, central)
        await poll(app, pilot, clock)
        assert app.screen is screen and screen.view.status == "pending"
        assert "Waiting for approval" in screen.shown_text
        central.decide_device(kiosk.store.chain, "approved", SITE_ADMIN, "fingerprint compared on site")
        sync_and_ingest(sync, central)
        await poll(app, pilot, clock)
        assert app.screen is app.lock_screen and app.device_screen is None
        await enter_credentials(pilot, clock, "site.admin", PW, issued.totp_secret)
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist")


@pytest.mark.req("P11-10h")
@pytest.mark.req("P11-300e")
async def test_revocation_seen_while_logged_in_locks_to_the_device_screen(site, clock):
    kiosk, central, sync, issued = site
    sync_and_ingest(sync, central)
    central.decide_device(kiosk.store.chain, "approved", SITE_ADMIN, "fingerprint compared")
    sync_and_ingest(sync, central)
    app = make_app(kiosk, idle_check_s=3600, sync=sync, central=central)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        assert app.screen is app.lock_screen
        await enter_credentials(pilot, clock, "site.admin", PW, issued.totp_secret)
        await wait_for(pilot, lambda: isinstance(app.screen, WorklistScreen), "the worklist")
        await pilot.press("f6")  # somewhere deeper than home
        await pilot.pause(0.1)
        central.decide_device(kiosk.store.chain, "revoked", SITE_ADMIN, "terminal replaced")
        sync.sync_once()
        await poll(app, pilot, clock)
        screen = app.screen
        assert isinstance(screen, DeviceStatusScreen) and screen.view.status == "revoked"
        assert "terminal replaced" in screen.shown_text and app.session is None
        assert app.screen_stack == [app.lock_screen, screen]
        assert "no longer approved" in app.lock_screen.note_text
        await pilot.press("f12")
        await pilot.pause(0.05)
        assert app.screen is screen  # the lock leaves the device screen in place
    locked = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "session.locked"][-1]
    assert locked.body["reason"] == "device" and locked.body["actor"]["user_id"] == "site.admin"


@pytest.mark.req("A11-12")
async def test_an_admin_can_exit_from_the_device_screen_of_a_revoked_terminal(site, clock):
    kiosk, central, sync, issued = site
    sync_and_ingest(sync, central)
    central.decide_device(kiosk.store.chain, "revoked", SITE_ADMIN, "terminal replaced")
    sync_and_ingest(sync, central)
    app = make_app(kiosk, idle_check_s=3600, sync=sync, central=central)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        assert isinstance(app.screen, DeviceStatusScreen)
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, AdminExitDialog), "the admin exit dialog")
        await type_text(pilot, "site.admin")
        await pilot.press("enter")
        await type_text(pilot, PW)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app._exit, "the exit")
    assert app.return_code == 0
    assert "kiosk.exited" in [r.type for r in kiosk.store.iter_rows()]


async def test_a_standalone_kiosk_needs_no_registration(site, clock):
    kiosk, *_ = site
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        assert app.screen is app.lock_screen and app.device.usable
