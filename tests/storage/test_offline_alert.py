"""A terminal that stops syncing is noticed, and every terminal's alert stays its own (A11-16, P11-10c).

Until a terminal reconnects, what is signed on it exists only on its disk,
and a suspension made on another terminal does not reach it. The status bar
says OFFLINE, but nobody may be looking: after ``sync.alert_offline_after_s``
one warning alert per outage goes to its supervisor screen, and to the central
store once it is back; meanwhile `kiosk central status` names it, and an idle
terminal writes a checkpoint now and then so that it is not named. Alerts of all
terminals meet in one central directory, so an alert id names one alert, and
ingest reads a batch's alerts together. Real SQLite and PostgreSQL, FakeClock,
a closed port for the outage.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from kiosk import __version__
from kiosk.app import central_sync
from kiosk.config import KioskConfig, SyncConfig
from kiosk.services.config_trail import record_settings
from kiosk.services.sync import CentralUntrusted
from storage.central import CentralStore
from storage.keyfile import load_or_create_central_key
from tests.storage.test_central_trust import ADMIN, PASSWORD, admin_terminal, cycle, terminal, two_approved_terminals
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
    assert alert["message"].startswith(
        f"{a.store.chain} has not synced with the central store since {started:%Y-%m-%d %H:%M:%S} GMT (1.0 h): "
        f"{waiting} records exist only on this terminal, and changes made elsewhere (a suspension) do not reach "
        "it. Last error: OperationalError")
    from screens.supervisor import MESSAGE_QUOTED
    assert len(alert["message"]) <= MESSAGE_QUOTED  # the acknowledgement dialog quotes it whole
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
    a.config = replace(a.config, sync=replace(a.config.sync, alert_offline_after_s=900))
    _, sync_a = central_sync(a, central.url, central=central)  # the kiosk's sync, as `kiosk run` builds it
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
    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
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


@pytest.mark.req("A11-16")
def test_the_central_store_shows_which_terminal_it_has_not_heard_from(central, tmp_path, clock):
    """The terminal's own alert arrives only once it is back; while it is still offline, IT sees it centrally."""
    import subprocess
    import sys

    from kiosk.domain.clock import format_ts

    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
    record_settings(a.store, KioskConfig().settings(), "kiosk.toml", "line-a")  # as `kiosk run` does at start
    cycle(central, sync_a, sync_b)
    last_heard = format_ts(clock.now())
    reach_b = sync_b.connect
    go_offline(sync_b, clock)
    clock.advance(2 * 3600)
    assert b.session.login("ana.op", PASSWORD, None).ok  # recorded on line-b only
    assert a.session.login("ana.op", PASSWORD, None).ok
    cycle(central, sync_a, sync_b)
    rows = {r["chain"]: r for r in central.chain_status()}
    assert set(rows) == {a.store.chain, b.store.chain}  # the central chain is not a terminal
    assert rows[a.store.chain]["taken_in"] == format_ts(clock.now())
    assert rows[b.store.chain]["taken_in"] == last_heard and rows[b.store.chain]["status"] == "approved"
    assert rows[b.store.chain]["last_kiosk_ts"] <= last_heard
    # Which version each terminal last started with: line-b never recorded one (built here, not `kiosk run`).
    assert (rows[a.store.chain]["kiosk_version"], rows[b.store.chain]["kiosk_version"]) == (__version__, None)
    sync_b.connect = reach_b
    sync_b.sync_once()  # pushed, not taken in yet
    waiting = central.chain_status()[1]
    assert waiting["chain"] == b.store.chain and waiting["waiting"] == b.store.head().seq - waiting["seq"] > 0
    assert waiting["quarantined"] == 0

    def status(*args):
        done = subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "status", "--url", central.url, *args],
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout.splitlines()

    # Run on the real clock, these FakeClock times lie days back: every approved terminal is named, and
    # line-b's rows have waited in the inbox for days (no ingest worker is running here).
    code, lines = status()
    assert code == 1 and lines[0].startswith("CHAIN") and lines[-3] == "2 device chains"
    pushed = format_ts(clock.now())
    assert lines[-2] == (f"records of approved terminals waiting in the inbox for more than 15 min: {b.store.chain} "
                         f"({waiting['waiting']} since {pushed[:10]} {pushed[11:16]} UTC): is `kiosk central ingest` "
                         "running? (its log says why it fails)")
    assert lines[-1].startswith(f"not heard from for more than 24 h: {a.store.chain} (") and b.store.chain in lines[-1]
    row_b = next(line for line in lines if line.startswith(b.store.chain))
    assert row_b.split()[:3] == [b.store.chain, "approved", str(waiting["seq"])]
    assert f"{last_heard[:10]} {last_heard[11:16]}" in row_b and f" {waiting['waiting']} " in row_b
    assert lines[0].endswith("  KIOSK") and row_b.endswith("  -")
    assert next(line for line in lines if line.startswith(a.store.chain)).endswith(f"  {__version__}")
    code, lines = status("--silent-after-h", "1000000")
    assert code == 1 and lines[-1].startswith("records of approved terminals waiting in the inbox")
    central.ingest_all()
    code, lines = status("--silent-after-h", "1000000")
    assert code == 0 and lines[-1] == "2 device chains"
    a.close(), b.close()


@pytest.mark.req("A11-16")
def test_a_pending_terminals_held_records_are_no_stalled_ingest(central, tmp_path, clock):
    """Records of a terminal not yet approved wait in the inbox by design: `kiosk central status` does not send
    IT after the ingest worker for them."""
    import subprocess
    import sys

    a, sync_a = admin_terminal(tmp_path, clock, central)
    c, sync_c = terminal(tmp_path, clock, central, "line-c", site_of=a)
    cycle(central, sync_a, sync_c)
    pending = next(r for r in central.chain_status() if r["chain"] == c.store.chain)
    assert pending["status"] == "pending" and pending["waiting"] > 0
    # On the real clock these rows have waited for days.
    done = subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "status", "--url", central.url,
                           "--silent-after-h", "1000000"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "waiting in the inbox" not in done.stdout, done.stdout
    a.close(), c.close()


@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_an_idle_terminal_is_still_heard_and_anchors_its_head(central, tmp_path, clock):
    """Nobody signs at night: a terminal that is on and online writes a checkpoint after the site's idle
    interval, so the central store hears from it, and only from the terminals that can reach it."""
    from kiosk.domain.clock import format_ts
    from kiosk.domain.records import open_signed
    from storage.verify_local import verify_local_store

    idle_s = KioskConfig().checkpoint.idle_every_s
    assert idle_s == 4 * 3600 and idle_s * 6 <= 24 * 3600  # heard several times within status's default 24 h
    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
    def heads():
        return {"a": a.store.head().seq, "b": b.store.head().seq}

    before, setup = heads(), format_ts(clock.now())
    clock.advance(idle_s - 1)
    cycle(central, sync_a, sync_b)
    assert heads() == before  # not idle long enough: nothing written
    # A sync with nothing to send is not heard centrally: only records are taken in (and receipted).
    assert {r["taken_in"] for r in central.chain_status()} == {setup}
    reach_b = sync_b.connect
    go_offline(sync_b, clock)
    clock.advance(1)
    cycle(central, sync_a, sync_b)
    checkpoint = a.store.head().seq
    assert heads() == {"a": before["a"] + 1, "b": before["b"]}  # cut off: no record that goes nowhere
    row = next(iter(a.store.iter_rows(after_seq=checkpoint - 1)))
    record = open_signed(row.raw, row.sig, a.store.identity.key.public).record
    assert record.type == "checkpoint" and record.body["size"] == before["a"]
    rows = {r["chain"]: r for r in central.chain_status()}
    assert rows[a.store.chain]["taken_in"] == format_ts(clock.now()) and rows[a.store.chain]["seq"] == checkpoint
    assert rows[b.store.chain]["taken_in"] == setup
    cycle(central, sync_a, sync_b)
    assert a.store.head().seq == checkpoint  # one per idle interval, not one per sync
    sync_b.connect = reach_b
    cycle(central, sync_a, sync_b)
    assert heads()["b"] == before["b"] + 1 and central.chain_status()[1]["taken_in"] == format_ts(clock.now())
    for k in (a, b):
        assert verify_local_store(k.data_dir).ok  # its root is the chain's, as every checkpoint's
    # A revoked terminal's records after its revocation are quarantined: it writes none to be heard.
    central.decide_device(b.store.chain, "revoked", ADMIN, "terminal replaced")
    cycle(central, sync_a, sync_b)
    revoked = heads()["b"]
    clock.advance(idle_s)
    cycle(central, sync_a, sync_b)
    assert heads()["b"] == revoked and heads()["a"] == checkpoint + 1  # line-a, idle again, is heard again
    a.close(), b.close()


@pytest.mark.req("P11-300d")
@pytest.mark.req("DI-ALCOA")
def test_an_alert_raised_again_under_its_id_by_another_terminal_changes_nothing(central, tmp_path, clock):
    """Every terminal's alerts meet in one directory: a record reusing an alert's id (a bug, or someone with a
    terminal's key) must not replace the alert's text or reopen it on every supervisor screen."""
    from kiosk.domain.audit import alert_raised, target
    from kiosk.domain.directory import DirectoryConflict
    from kiosk.services.auth import Actor

    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
    a.auth.raise_alert("scale.drift", "critical", "balance BAL-7 out of calibration", target("device", "BAL-7"))
    [alert] = [x for x in a.auth.alerts() if x["kind"] == "scale.drift"]
    a.auth.acknowledge_alert(Actor("site.admin", "Site Admin", "admin"), alert["alert_id"], "balance replaced")
    cycle(central, sync_a)  # taken in centrally; line-b has not pulled it yet
    b.store.append(*alert_raised("scale.drift", "info", "nothing to see", target("device", "BAL-7"),
                                 alert["alert_id"]))
    cycle(central, sync_a, sync_b)
    kept = central.directory_doc("alert", alert["alert_id"])
    assert kept["message"] == "balance BAL-7 out of calibration" and kept["acknowledged_by"] == "site.admin"
    assert [x for x in central.alerts() if x["kind"] == "directory.conflict" and alert["alert_id"] in x["message"]]
    for kiosk in (a, b):
        assert [x["message"] for x in kiosk.auth.alerts(open_only=False) if x["kind"] == "scale.drift"] == [
            "balance BAL-7 out of calibration"]
    # A terminal that knows the alert refuses the record before writing it.
    with pytest.raises(DirectoryConflict, match="raised already"):
        a.store.append(*alert_raised("scale.drift", "info", "again", target("device", "BAL-7"), alert["alert_id"]))
    a.close(), b.close()


@pytest.mark.req("A11-16")
@pytest.mark.req("P11-300d")
def test_the_central_store_lists_the_open_alerts_a_supervisor_screen_shows(central, tmp_path, clock):
    """IT at the server sees what waits on the floor's supervisors (`kiosk central alerts`): every terminal's
    open alerts and the central store's own, in the supervisor screen's order, and exit 1 while one is
    critical, for a monitoring job."""
    import subprocess
    import sys

    from kiosk.domain.audit import target
    from kiosk.services.auth import Actor

    admin = Actor("site.admin", "Site Admin", "admin")
    a, sync_a, b, sync_b = two_approved_terminals(tmp_path, clock, central)
    a.auth.raise_alert("scale.drift", "critical", "balance BAL-7 out of calibration", target("device", "BAL-7"))
    clock.advance(1)
    b.auth.raise_alert("scale.zeroed", "info", "balance BAL-8 re-zeroed", target("device", "BAL-8"))
    clock.advance(1)
    a.auth.raise_alert("room.pressure", "warning", "room 4 pressure low", target("device", "ROOM-4"))
    [seen] = [x for x in b.auth.alerts() if x["kind"] == "scale.zeroed"]
    b.auth.acknowledge_alert(admin, seen["alert_id"], "seen")
    cycle(central, sync_a, sync_b)
    cycle(central, sync_a, sync_b)  # b has pulled what a raised, a what b acknowledged

    on_screen, total = b.auth.open_alerts(100)
    assert [x["alert_id"] for x in a.auth.open_alerts(100)[0]] == [x["alert_id"] for x in on_screen]
    listed, counts = central.open_alerts(100)
    assert [x["alert_id"] for x in listed] == [x["alert_id"] for x in on_screen]
    mine = [x["kind"] for x in listed if x["kind"] in ("room.pressure", "scale.drift", "scale.zeroed")]
    assert mine == ["room.pressure", "scale.drift"]  # newest first; the acknowledged one is not listed
    assert counts == {s: sum(x["severity"] == s for x in on_screen) for s in ("critical", "warning", "info")}
    assert sum(counts.values()) == total and counts["critical"] == 1
    # The central store's own alerts (a terminal registered, approved) may be raised as late as this cycle.
    assert [x["alert_id"] for x in central.open_alerts(1)[0]] == [on_screen[0]["alert_id"]]
    assert [x["kind"] for x in central.open_alerts(100, "critical")[0]] == ["scale.drift"]
    warning_up = central.open_alerts(100, "warning")[0]
    assert {x["severity"] for x in warning_up} == {"critical", "warning"} and len(warning_up) == total - counts["info"]

    def alerts(*args):
        done = subprocess.run([sys.executable, "-m", "kiosk.cli", "central", "alerts", "--url", central.url, *args],
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout.splitlines()

    code, lines = alerts("--severity", "critical")
    assert code == 1 and lines[0].startswith("RAISED (UTC)") and len(lines) == 4, lines
    assert lines[1].split()[2:5] == ["critical", "scale.drift", a.store.chain]
    assert lines[1].endswith("balance BAL-7 out of calibration")
    assert lines[2] == (f"open alerts: 1 critical, {counts['warning']} warning, {counts['info']} info "
                        "(1 critical; the newest 1 shown)")
    code, lines = alerts("--limit", "2")
    assert code == 1 and [line.split()[3] for line in lines[1:3]] == [x["kind"] for x in on_screen[:2]]
    assert lines[3].endswith(f"info (the newest 2 shown)")
    [drift] = [x for x in listed if x["kind"] == "scale.drift"]
    b.auth.acknowledge_alert(admin, drift["alert_id"], "balance recalibrated")
    cycle(central, sync_a, sync_b)
    assert "scale.drift" not in str(central.open_alerts(100)[0]) and central.open_alerts(100)[1]["critical"] == 0
    code, lines = alerts("--severity", "critical")
    assert code == 0 and lines == [f"open alerts: 0 critical, {counts['warning']} warning, {counts['info']} info "
                                   "(none critical or above to show)"]
    code, lines = alerts("--severity", "urgent")
    assert code == 2
    a.close(), b.close()


def test_ingest_reads_the_alerts_a_batch_names_in_one_query_each_at_its_latest_version(central, clock):
    """Alerts are raised and acknowledged by the hundred: a batch's are read together (one round trip, not one
    per alert), and what is read is what a single read gives, the latest version."""
    from sqlalchemy import event

    from storage.central import _Tx

    with central.engine.begin() as conn:
        tx = _Tx(conn, central.pg)
        tx.put("alert", "a-1", {"v": 1}, "line-a:1", 1)
        tx.put("alert", "a-1", {"v": 2}, "line-a:1", 2)
        tx.put("alert", "a-2", {"v": 1}, "line-a:1", 3)
        tx.put("user", "a-1", {"v": "another kind"}, "line-a:1", 4)
        tx.flush()
    statements = []
    with central.engine.begin() as conn:
        event.listen(conn, "before_cursor_execute", lambda *args: statements.append(args[2]))
        tx = _Tx(conn, central.pg)
        tx.prefetch([("alert", f"a-{i}") for i in range(1, 4)])
        prefetched = [tx.get("alert", f"a-{i}") for i in range(1, 4)]
    assert prefetched == [{"v": 2}, {"v": 1}, None]
    assert len([s for s in statements if "directory_changes" in s]) == 1
    with central.engine.begin() as conn:
        one_by_one = _Tx(conn, central.pg)
        assert [one_by_one.get("alert", f"a-{i}") for i in range(1, 4)] == prefetched
