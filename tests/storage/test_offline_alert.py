"""A terminal that cannot reach the central store for longer than the site allows says so (A11-16, P11-10c).

Until it reconnects, what is signed on it exists only on its disk, and a
suspension made on another terminal does not reach it. The status bar says
OFFLINE, but nobody may be looking: after ``sync.alert_offline_after_s`` one
warning alert per outage goes to its supervisor screen, and to the central
store once it is back. Real SQLite and PostgreSQL, FakeClock, a closed port
for the outage.
"""

from __future__ import annotations

import pytest

from kiosk.app import central_sync
from kiosk.config import KioskConfig, SyncConfig
from kiosk.services.sync import CentralUntrusted
from storage.central import CentralStore
from storage.keyfile import load_or_create_central_key
from tests.storage.test_central_trust import PASSWORD, admin_terminal, cycle, second_terminal
from tests.storage.test_outage import CLOSED_PORT

ALLOWED_S = KioskConfig().sync.alert_offline_after_s


def offline_alerts(kiosk) -> list[dict]:
    return [a for a in kiosk.auth.alerts(open_only=False) if a["kind"] == "sync.offline"]


def go_offline(sync, clock):
    sync.connect = lambda: CentralStore(CLOSED_PORT, clock)


@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_an_outage_longer_than_the_site_allows_is_one_warning_on_the_terminal_and_then_centrally(
        central, tmp_path, clock):
    assert ALLOWED_S == 3600 and SyncConfig().alert_offline_after_s == ALLOWED_S
    a, sync_a = admin_terminal(tmp_path, clock, central)
    reach = sync_a.connect
    go_offline(sync_a, clock)
    clock.advance(60)
    assert a.session.login("ana.op", PASSWORD, None).ok  # work goes on offline: records only this terminal holds
    a.session.logout()
    assert sync_a.sync_once().offline_since == clock.now()
    started = clock.now()
    clock.advance(ALLOWED_S - 1)
    sync_a.sync_once()
    assert offline_alerts(a) == []  # an outage within the allowance is the status bar's, not an alert
    clock.advance(1)
    waiting = a.store.head().seq - a.store.head().synced_upto
    status = sync_a.sync_once()
    [alert] = offline_alerts(a)
    assert alert["severity"] == "warning" and alert["device"] == a.store.chain
    assert alert in a.auth.open_alerts(50)[0]  # on the supervisor screen's list
    assert status.queued > waiting  # the alert is one more record waiting (and a checkpoint after an hour)
    assert (f"{a.store.chain} has not synced with the central store since {started:%Y-%m-%d %H:%M:%S} GMT "
            "(1.0 h; last error: OperationalError") in alert["message"]
    assert f"{waiting} records exist only on this terminal" in alert["message"]
    assert "postgresql" not in alert["message"]  # the error names the server, never the URL it was reached by
    # Later attempts, and a restart of the terminal, keep the one alert for this outage.
    for _ in range(5):
        clock.advance(600)
        sync_a.sync_once()
    _, restarted = central_sync(a, central.url, central=central)
    go_offline(restarted, clock)
    clock.advance(600)
    assert restarted.sync_once().offline_since == started
    assert len(offline_alerts(a)) == 1
    # Back online: the alert reaches the central store with the records it counted.
    restarted.connect = reach
    clock.advance(600)
    cycle(central, restarted)
    assert a.store.head().synced_upto == a.store.head().seq
    assert central.directory_doc("alert", alert["alert_id"])["message"] == alert["message"]
    # A second outage is a second alert.
    go_offline(restarted, clock)
    clock.advance(60)
    restarted.sync_once()
    clock.advance(ALLOWED_S)
    restarted.sync_once()
    assert len(offline_alerts(a)) == 2
    a.close()


def test_a_site_sets_how_long_an_outage_may_last_before_it_is_alerted(central, tmp_path, clock):
    from kiosk.config import ConfigError, load_config

    path = tmp_path / "kiosk.toml"
    path.write_text("[sync]\nalert_offline_after_s = 900\n", encoding="utf-8")
    assert load_config(path).sync.alert_offline_after_s == 900
    path.write_text("[sync]\nalert_offline_after_s = 10\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alert_offline_after_s"):
        load_config(path)
    a, sync_a = admin_terminal(tmp_path, clock, central)
    _, sync_a = central_sync(a, central.url, central=central)
    sync_a.alert_offline_after_s = 900
    go_offline(sync_a, clock)
    sync_a.sync_once()
    clock.advance(900)
    sync_a.sync_once()
    assert len(offline_alerts(a)) == 1
    a.close()


@pytest.mark.req("P11-10c")
def test_alarms_raised_on_two_terminals_in_the_same_second_are_two_alerts_centrally(central, tmp_path, clock):
    """A halted sync's alarm was keyed by the time in seconds: two terminals halting together (a central store
    that changed its key halts every terminal at its next sync) made one alert centrally, the other replaced."""
    a, sync_a = admin_terminal(tmp_path, clock, central)
    b, sync_b = second_terminal(tmp_path, clock, central, a, sync_a)
    central.decide_device(b.store.chain, "approved", {"user_id": "site.admin", "name": "Site Admin",
                                                      "role": "admin"}, "fingerprint compared on site")
    cycle(central, sync_a, sync_b)
    impostor = CentralStore.open(f"sqlite:///{tmp_path / 'impostor.db'}", clock,
                                 load_or_create_central_key(tmp_path / "impostor.key"), central_time=clock)
    for sync in (sync_a, sync_b):
        sync.connect = lambda: impostor
    for sync in (sync_a, sync_b):
        with pytest.raises(CentralUntrusted):
            sync.sync_once()
    ids = {a_["alert_id"] for k in (a, b) for a_ in k.auth.alerts() if a_["kind"] == "sync.central_untrusted"}
    assert len(ids) == 2
    # The terminals are set right (the real central store again): both alarms arrive as two alerts.
    for kiosk in (a, b):
        _, sync = central_sync(kiosk, central.url, central=central)
        sync.sync_once()
    central.ingest_all()
    assert all(central.directory_doc("alert", alert_id) is not None for alert_id in ids)
    impostor.close(), a.close(), b.close()
