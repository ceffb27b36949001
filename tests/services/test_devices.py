"""An admin's decision about a terminal is a signed record in the admin terminal's own chain."""

import pytest

from kiosk.app import CentralDevices
from kiosk.domain.records import parse_raw
from kiosk.services.auth import AuthError, InvalidInput, NotPermitted, PasswordTyped
from kiosk.services.devices import SELF_DECISION, DeviceAdmin, DeviceDecisionError
from kiosk.services.sync import SyncService
from storage.central import CentralStore
from storage.keyfile import load_or_create_central_key

SITE_ADMIN = {"user_id": "site.admin", "name": "Site Admin", "role": "admin"}
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore
from tests.services.conftest import totp_now

PW = "lantern orchard seventeen"


@pytest.fixture
def site(kiosk, admin, tmp_path, clock):
    """This (admin) terminal and a new terminal 'line-2' whose registration request reached the central store."""
    actor, issued = admin
    clock.advance(31)
    assert kiosk.auth.change_password("site.admin", issued.temporary_password, PW,
                                      totp_now(issued.totp_secret, clock)).ok
    central = CentralStore.open(f"sqlite:///{tmp_path / 'central.db'}", clock,
                                load_or_create_central_key(tmp_path / "central.key"))
    other = LocalStore.open(tmp_path / "line-2", load_or_create_identity(tmp_path / "line-2", "line-2"), clock)
    SyncService(other, lambda: central, clock).sync_once()
    SyncService(kiosk.store, lambda: central, clock).sync_once()
    central.ingest_all()
    devices = DeviceAdmin(kiosk.store, kiosk.auth, CentralDevices(central))
    yield devices, other, issued
    other.close()
    central.close()


def decide(kiosk, clock, devices, issued, chain, decision, reason="fingerprint compared on site", user="site.admin"):
    clock.advance(31)
    return devices.decide(user, PW, totp_now(issued.totp_secret, clock), chain, decision, reason)


@pytest.mark.req("P11-10h")
@pytest.mark.req("P11-10e")
def test_lists_registrations_with_full_fingerprints(site, kiosk):
    devices, other, _ = site
    rows = {d.chain: d for d in devices.devices()}
    assert set(rows) == {other.chain, kiosk.store.chain}
    line2 = rows[other.chain]
    assert line2.status == "pending" and line2.fingerprint == other.identity.key.public.fingerprint
    assert len(line2.fingerprint.split(" ")) == 16


@pytest.mark.req("P11-10h")
@pytest.mark.req("P11-10e")
@pytest.mark.req("P11-10g")
def test_approval_is_a_record_with_actor_target_fingerprint_and_reason(site, kiosk, clock):
    devices, other, issued = site
    decide(kiosk, clock, devices, issued, other.chain, "approve")
    last = parse_raw(list(kiosk.store.iter_rows())[-1].raw)[0]
    assert last.type == "device.approved" and last.chain == kiosk.store.chain
    body = dict(last.body)
    assert body["actor"] == {"user_id": "site.admin", "name": "Ada Admin", "role": "admin"}
    assert body["target"] == {"kind": "device", "id": other.chain}
    assert body["fingerprint"] == other.identity.key.public.fingerprint
    assert body["reason"] == "fingerprint compared on site"
    assert body["auth"]["components"] == ["user_id", "password", "totp"]


@pytest.mark.req("P11-10h")
def test_a_terminal_cannot_approve_itself(site, kiosk, clock):
    devices, _, issued = site
    before = kiosk.store.head().seq
    with pytest.raises(DeviceDecisionError, match="cannot approve itself"):
        decide(kiosk, clock, devices, issued, kiosk.store.chain, "approve")
    assert kiosk.store.head().seq == before
    assert "cannot approve itself" in SELF_DECISION


@pytest.mark.req("P11-10g")
@pytest.mark.req("P11-300d")
def test_needs_an_admin_with_fresh_full_credentials(site, kiosk, admin, clock):
    devices, other, issued = site
    actor, _ = admin
    op = kiosk.auth.create_user(actor, "jane.op", "Jane Operator", ["operator"], reason="starter",
                                identity_verified=True)
    clock.advance(31)
    kiosk.auth.change_password("jane.op", op.temporary_password, PW, totp_now(op.totp_secret, clock))
    with pytest.raises(NotPermitted, match="only a site admin"):
        clock.advance(31)
        devices.decide("jane.op", PW, totp_now(op.totp_secret, clock), other.chain, "approve", "looks fine")
    with pytest.raises(AuthError, match="Invalid user id, password or one-time code"):
        devices.decide("site.admin", PW, "000000", other.chain, "approve", "looks fine")
    with pytest.raises(AuthError, match="Invalid"):
        devices.decide("site.admin", "wrong password!", None, other.chain, "approve", "looks fine")
    types = [r.type for r in kiosk.store.iter_rows()]
    assert "device.approved" not in types and types.count("auth.failed") == 2


@pytest.mark.req("A11-9")
def test_reason_and_decision_are_checked_before_anything_is_written(site, kiosk, clock):
    devices, other, issued = site
    before = kiosk.store.head().seq
    with pytest.raises(InvalidInput, match="reason"):
        decide(kiosk, clock, devices, issued, other.chain, "approve", reason="ok")
    with pytest.raises(InvalidInput, match="decision must be one of"):
        decide(kiosk, clock, devices, issued, other.chain, "delete")
    with pytest.raises(DeviceDecisionError, match="no registration"):
        decide(kiosk, clock, devices, issued, "ghost:1", "revoke")
    assert kiosk.store.head().seq == before


@pytest.mark.req("P11-300c")
def test_revocation_is_final_and_a_pending_request_is_answered_once(site, kiosk, clock, tmp_path):
    devices, other, issued = site
    decide(kiosk, clock, devices, issued, other.chain, "revoke", reason="terminal stolen")
    # The central side applies decisions (lead); here its registry is moved the way ingest will.
    devices.source.central.decide_device(other.chain, "revoked", SITE_ADMIN, "terminal stolen")
    with pytest.raises(DeviceDecisionError, match="is revoked; it cannot be approved"):
        decide(kiosk, clock, devices, issued, other.chain, "approve")
    assert [r.type for r in kiosk.store.iter_rows()].count("device.revoked") == 1


def test_without_a_central_store_there_is_nothing_to_list(kiosk):
    devices = DeviceAdmin(kiosk.store, kiosk.auth, None)
    assert not devices.configured and devices.devices() == []


@pytest.mark.req("P11-300b")
@pytest.mark.req("P11-10h")
def test_a_password_typed_into_the_reason_is_refused_and_never_recorded(site, kiosk, clock):
    devices, other, issued = site
    rows_before = len(list(kiosk.store.iter_rows()))
    with pytest.raises(PasswordTyped, match="the reason for the decision holds Ada Admin's password"):
        decide(kiosk, clock, devices, issued, other.chain, "approve", reason=f"checked {PW}")
    assert {d.chain: d.status for d in devices.devices()}[other.chain] == "pending"
    assert [r.type for r in list(kiosk.store.iter_rows())[rows_before:] if r.type != "checkpoint"] == [
        "user.updated", "alert.raised"]
    assert not any(PW.encode() in r.raw for r in kiosk.store.iter_rows())
    assert kiosk.auth.user("site.admin").must_change_password


@pytest.mark.req("P11-10h")
def test_the_devices_list_says_when_each_terminals_records_were_last_taken_in(site, clock):
    """A terminal that stopped syncing holds its records alone: the admin's Devices screen shows it as silent."""
    from kiosk.domain.clock import format_ts
    from kiosk.services.devices import DeviceRow
    from screens.admin_devices import heard

    devices, other, _ = site
    central = devices.source.central
    rows = {d.chain: d for d in devices.devices()}
    assert [(r.status, r.last_heard) for r in rows.values()] == [("pending", "")] * 2  # held, not taken in
    central.decide_device(devices.store.chain, "approved", {**SITE_ADMIN, "user_id": "central-key-holder"},
                          "first terminal")
    clock.advance(60)
    central.ingest_all()
    rows = {d.chain: d for d in devices.devices()}
    assert rows[devices.store.chain].last_heard == format_ts(clock.now()) and rows[other.chain].last_heard == ""
    assert heard(rows[devices.store.chain].last_heard) == f"{clock.now():%Y-%m-%d %H:%M} UTC"
    assert heard("") == "never"
    # A central store of a version before 0.7.0 does not say: unknown, not "never".
    old = {k: v for k, v in central.devices()[0].items() if k != "taken_in"}
    assert DeviceRow.from_registry(old).last_heard is None and heard(None) == "unknown"
