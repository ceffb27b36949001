"""The configuration in effect is in the audit trail, with each change old and new (Annex 11 §10)."""

import pytest

from kiosk import __version__
from kiosk.config import KioskConfig
from kiosk.domain.audit import audit_row
from kiosk.services.config_trail import CONFIG_CHANGED, record_settings


def recorded(kiosk):
    from kiosk.domain.records import parse_raw

    return [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == CONFIG_CHANGED]


@pytest.mark.req("A11-10")
@pytest.mark.req("P11-10e")
def test_a_changed_setting_is_recorded_once_with_its_old_and_new_value(kiosk, clock):
    first = KioskConfig()
    assert record_settings(kiosk.store, first.settings(), "/etc/kiosk/kiosk.toml", "line-1") is not None
    # The same settings at the next start: nothing to record.
    clock.advance(3600)
    assert record_settings(kiosk.store, first.settings(), "/etc/kiosk/kiosk.toml", "line-1") is None
    longer = first.replace(session={"idle_timeout_s": 600}, auth={"lockout_threshold": 8})
    clock.advance(3600)
    record_settings(kiosk.store, longer.settings(), "/etc/kiosk/kiosk.toml", "line-1")
    assert record_settings(kiosk.store, longer.settings(), "/etc/kiosk/kiosk.toml", "line-1") is None
    opened, changed = recorded(kiosk)
    assert opened.body["old"] == {} and opened.body["new"] == opened.body["settings"] == {
        "kiosk.version": __version__, **first.settings()}
    assert opened.body["reason"].endswith("; the first recorded on this chain")
    assert changed.body["old"] == {"auth.lockout_threshold": 5, "session.idle_timeout_s": 300}
    assert changed.body["new"] == {"auth.lockout_threshold": 8, "session.idle_timeout_s": 600}
    assert changed.body["settings"]["session.idle_warning_s"] == 60  # every setting in effect, not only changes
    # The change is on the supervisors' alert list too; the first record, and an unchanged start, are not.
    [alert] = [a for a in kiosk.auth.alerts() if a["kind"] == "config.changed"]
    assert alert["severity"] == "warning" and alert["target"] == {"kind": "device", "id": "line-1"}
    assert alert["message"] == ("configuration changed on line-1 (found at start-up, from /etc/kiosk/kiosk.toml): "
                                "auth.lockout_threshold 5 → 8; session.idle_timeout_s 300 → 600")
    row = audit_row(changed, "00")
    assert row.type == "config.changed" and row.target == "device:line-1"
    assert row.old == '{"auth.lockout_threshold":5,"session.idle_timeout_s":300}'
    assert row.reason == f"found at start-up: kiosk {__version__}, settings from /etc/kiosk/kiosk.toml"


@pytest.mark.req("A11-10")
def test_an_upgrade_of_the_software_is_recorded_as_a_change(kiosk, monkeypatch):
    from kiosk.services import config_trail

    monkeypatch.setattr(config_trail, "__version__", "0.9.0")
    record_settings(kiosk.store, KioskConfig().settings(), "kiosk.toml", "line-1")
    monkeypatch.setattr(config_trail, "__version__", "0.10.0")
    assert record_settings(kiosk.store, KioskConfig().settings(), "kiosk.toml", "line-1") is not None
    upgraded = recorded(kiosk)[-1]
    assert (upgraded.body["old"], upgraded.body["new"]) == ({"kiosk.version": "0.9.0"}, {"kiosk.version": "0.10.0"})
    [alert] = [a for a in kiosk.auth.alerts() if a["kind"] == "config.changed"]
    assert alert["severity"] == "info" and alert["message"].endswith(": kiosk.version 0.9.0 → 0.10.0")


@pytest.mark.req("A11-10")
def test_a_password_in_the_central_url_never_reaches_the_record(kiosk):
    url = "postgresql+psycopg://kiosk_line1:S3cret-pw@db.site.local:5432/central"
    config = KioskConfig().replace(sync={"central_url": url})
    record_settings(kiosk.store, config.settings(), "kiosk.toml", "line-1")
    raw = b"".join(r.raw for r in kiosk.store.iter_rows())
    assert b"S3cret-pw" not in raw
    assert recorded(kiosk)[0].body["settings"]["sync.central_url"] == (
        "postgresql+psycopg://kiosk_line1:***@db.site.local:5432/central")
