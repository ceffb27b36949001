"""Devices screen on the real services and an embedded central store: approve a terminal after comparing fingerprints."""

import pyotp
import pytest

from kiosk.app import make_app
from kiosk.demo import DEMO_PASSWORD, demo_central
from kiosk.domain.records import parse_raw
from kiosk.services.sync import SyncService
from screens.admin_devices import DevicesScreen
from screens.admin_dialogs import ChoiceDialog
from screens.dialogs import CredentialsDialog
from screens.step import ReasonDialog
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore
from tests.ui.flows import fixed_identity, login, make_demo, type_text, wait_for


@pytest.fixture
def site(tmp_path, clock):
    kiosk, users = make_demo(tmp_path, clock)
    central, sync = demo_central(kiosk)
    fixed_identity(tmp_path / "line-2", "line-2", 9)
    other = LocalStore.open(tmp_path / "line-2", load_or_create_identity(tmp_path / "line-2"), clock)
    SyncService(other, lambda: central, clock).sync_once()
    central.ingest_all()
    yield kiosk, users, central, sync, other
    other.close()
    central.close()
    kiosk.close()


async def open_devices(pilot, clock, users):
    await login(pilot, clock, users["admin"])
    await pilot.press("f7")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, DevicesScreen), "the devices screen")


@pytest.mark.req("P11-10h")
@pytest.mark.req("P11-10e")
async def test_admin_approves_a_pending_terminal_with_reason_and_fresh_credentials(site, clock):
    kiosk, users, central, sync, other = site
    app = make_app(kiosk, idle_check_s=3600, sync=sync, central=central)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_devices(pilot, clock, users)
        table = app.screen.query_one("#device-table")
        assert table.row_count == 2
        table.move_cursor(row=table.get_row_index(other.chain))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the registration")
        fingerprint = other.identity.key.public.fingerprint
        shown = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert fingerprint[:39] in shown and fingerprint[40:] in shown and "pending" in shown
        app.screen.query_one("#choice-approve").press()
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonDialog), "the reason")
        await type_text(pilot, "fingerprint read aloud and compared")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CredentialsDialog), "the credentials")
        clock.advance(31)
        await type_text(pilot, DEMO_PASSWORD)
        await pilot.press("tab")
        await type_text(pilot, pyotp.TOTP(users["admin"].totp_secret).at(clock.now()))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "approved" in app.screen.message_text, "the confirmation")
        assert "takes effect when the central store receives it" in app.screen.message_text
    approved = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "device.approved"]
    assert len(approved) == 1
    body = approved[0].body
    assert body["target"] == {"kind": "device", "id": other.chain} and body["fingerprint"] == fingerprint
    assert body["actor"]["user_id"] == "admin" and body["reason"] == "fingerprint read aloud and compared"


@pytest.mark.req("P11-10h")
async def test_this_terminal_is_listed_but_offers_no_decision(site, clock):
    kiosk, users, central, sync, other = site
    app = make_app(kiosk, idle_check_s=3600, sync=sync, central=central)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_devices(pilot, clock, users)
        table = app.screen.query_one("#device-table")
        table.move_cursor(row=table.get_row_index(kiosk.store.chain))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the registration")
        assert [b.id for b in app.screen.query("Button")] == ["cancel"]
        assert "terminal you are using" in " ".join(str(w.render()) for w in app.screen.query("Static"))


async def test_without_a_central_store_the_screen_says_so(tmp_path, clock):
    kiosk, users = make_demo(tmp_path, clock)
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_devices(pilot, clock, users)
        assert "no central store configured" in app.screen.message_text
        assert app.screen.query_one("#device-table").row_count == 0
    kiosk.close()
