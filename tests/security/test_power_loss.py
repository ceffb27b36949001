"""Power loss: a child signing in a loop is SIGKILLed at random points; nothing reported is lost.

Two children: one appending records straight to the store (20 kills in CI, 200
in the long profile, `pytest -m soak`), and one signing real batch-record steps
through the services (10 kills in CI, 100 in the long profile). After each kill
the store opens, verify passes, every record or signature the child reported as
done is there, and no half record exists (record count equals the head marker;
every signature record has its projection in the batch and vice versa).
"""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from storage.verify_local import verify_local_store

CHILD = textwrap.dedent("""
    import sys
    from kiosk.domain.clock import FakeClock
    from storage.keyfile import load_or_create_identity
    from storage.local_store import LocalStore
    from storage.directory_local import directory_projector
    data = sys.argv[1]
    store = LocalStore.open(data, load_or_create_identity(data, "crash-1"), FakeClock(),
                            projectors=[directory_projector])
    print("ready", flush=True)
    i = 0
    while True:
        signed = store.append("note.added", {"i": i, "text": "x" * (i % 300)})
        print(signed.record.seq, signed.hash_hex, flush=True)   # reported only after the durable commit
        i += 1
""")


def killed_children(script: str, data, kills: int, rnd: random.Random, *, max_wait_s: float):
    """Run ``script`` on ``data`` in a child process ``kills`` times, each killed with SIGKILL (a power cut)
    at a random moment after it is ready; yields what each child printed before it died."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-c", script, str(data)], stdout=subprocess.PIPE, text=True,
                                 cwd=root, env={**os.environ, "PYTHONPATH": root})
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rnd.uniform(0.0, max_wait_s))
        child.send_signal(signal.SIGKILL)
        yield child.communicate()[0]


def run_kills(tmp_path, kills: int, seed: int) -> None:
    data = tmp_path / "data"
    reported: dict[int, str] = {}
    for out in killed_children(CHILD, data, kills, random.Random(seed), max_wait_s=0.15):
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                reported[int(parts[0])] = parts[1]
        report = verify_local_store(data)
        assert report.ok, report.error
        stored = {c.chain: c for c in report.chains}["crash-1:1"]
        import sqlite3
        conn = sqlite3.connect(data / "kiosk.db")
        hashes = dict((seq, bytes(h).hex()) for seq, h in conn.execute("SELECT seq, hash FROM records"))
        conn.close()
        for seq, digest in reported.items():
            assert hashes.get(seq) == digest, f"record #{seq} was reported committed but is missing or different"
        assert stored.records == len(hashes)
    assert len(reported) > kills  # the child made progress between kills
    figures("power loss, store appends", kills=kills, reported_records=len(reported), stored_records=stored.records)


@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_sigkill_while_signing_loses_nothing_reported(tmp_path):
    run_kills(tmp_path, kills=20, seed=11)


@pytest.mark.soak
@pytest.mark.req("A11-16")
def test_sigkill_200_times(tmp_path):
    run_kills(tmp_path, kills=200, seed=7)


SIGNER = textwrap.dedent("""
    import datetime as dt, json, sqlite3, sys
    from pathlib import Path
    import pyotp
    from kiosk.app import build_kiosk
    from kiosk.demo import DEMO_PASSWORD, create_demo, demo_config
    from kiosk.domain.clock import UTC, FakeClock, parse_ts
    from kiosk.domain.passwords import PasswordHasher
    data = Path(sys.argv[1])
    cheap = PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1)
    if (data / "kiosk.db").exists():
        # Start after the last record, so the clock never runs backwards and one-time codes stay fresh.
        conn = sqlite3.connect(data / "kiosk.db")
        last = conn.execute("SELECT max(ts) FROM records").fetchone()[0]
        conn.close()
        clock = FakeClock(parse_ts(last) + dt.timedelta(seconds=61), zone="Europe/Dublin")
        kiosk = build_kiosk(demo_config(), data, clock, device_id="crash-2", hasher=cheap)
        secret = (data / "ana.totp").read_text()
    else:
        clock = FakeClock(dt.datetime(2026, 11, 24, 10, 0, tzinfo=UTC), zone="Europe/Dublin")
        kiosk, users = create_demo(data, clock, hasher=cheap, device_id="crash-2")
        secret = next(u.totp_secret for u in users if u.user_id == "ana.op")
        (data / "ana.totp").write_text(secret)
        kiosk.auth.accept_first_use(kiosk.auth.user("ana.op"))
    kiosk.session.restart()
    clock.advance(31)
    assert kiosk.session.login("ana.op", DEMO_PASSWORD, pyotp.TOTP(secret).at(clock.now())).ok
    print("ready", flush=True)
    n = kiosk.signing.batch_count()
    while True:
        n += 1
        batch = f"P-{n:05d}"
        clock.advance(1)
        kiosk.session.activity()
        kiosk.signing.create_batch(batch, "buffer-prep@4")
        prepared = kiosk.signing.prepare(batch, "line-clearance", "Performed", {"area_clear": "yes"})
        totp = None
        if "totp" in prepared.components:
            clock.advance(31)
            totp = pyotp.TOTP(secret).at(clock.now())
        signature = kiosk.signing.sign(prepared, DEMO_PASSWORD, "ana.op", totp)
        print(batch, signature["content_hash"], flush=True)   # reported only after the durable commit
""")


def run_signing_kills(tmp_path, kills: int, seed: int) -> None:
    import json
    import sqlite3

    from kiosk.domain.records import parse_raw

    data = tmp_path / "data"
    reported: dict[str, str] = {}
    for out in killed_children(SIGNER, data, kills, random.Random(seed), max_wait_s=0.4):
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith("P-"):
                reported[parts[0]] = parts[1]
        report = verify_local_store(data)
        assert report.ok, report.error
        conn = sqlite3.connect(data / "kiosk.db")
        try:
            count, head = conn.execute("SELECT count(*), (SELECT head_seq FROM chain_state) FROM records").fetchone()
            assert count == head == report.records  # no half record, no record beyond the head marker
            signed = {}
            for (raw,) in conn.execute("SELECT raw FROM records WHERE type = 'step.signed'"):
                body = parse_raw(bytes(raw))[0].body
                signed[body["batch_id"]] = (body["content_hash"], parse_raw(bytes(raw))[0].id)
            projected = {}
            for key, doc in conn.execute("SELECT key, doc FROM directory WHERE kind = 'batch_step'"):
                batch_id, step_id = key.rsplit("/", 1)
                for sig in json.loads(doc)["signatures"] if step_id == "line-clearance" else []:
                    projected[batch_id] = (sig["content_hash"], sig["record_id"])
        finally:
            conn.close()
        for batch, content_hash in reported.items():
            assert signed.get(batch, (None,))[0] == content_hash, f"{batch} was reported signed but is not stored"
        assert projected == signed  # every signature record is in the batch view, and nothing else is
    assert len(reported) >= kills // 2  # the child really signed between kills
    figures("power loss, step signatures", kills=kills, reported_signatures=len(reported),
            stored_signatures=len(signed), stored_records=report.records)


def figures(name: str, **values) -> None:
    """For bench/reliability_report.py: the figures of this run, when it asks for them."""
    out = os.environ.get("KIOSK_RELIABILITY_OUT")
    if out:
        import json

        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, **values}) + "\n")


@pytest.mark.req("A11-16")
@pytest.mark.req("P11-70")
def test_sigkill_while_signing_steps_loses_no_reported_signature(tmp_path):
    run_signing_kills(tmp_path, kills=10, seed=3)


@pytest.mark.soak
@pytest.mark.req("A11-16")
def test_sigkill_while_signing_steps_100_times(tmp_path):
    run_signing_kills(tmp_path, kills=100, seed=5)
