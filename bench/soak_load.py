"""Load profile: N kiosk processes sign real steps concurrently against one central PostgreSQL.

Each kiosk is a separate process with its own local store, its own background
sync worker (kiosk.sync_worker.SyncWorker, as `kiosk run` uses it) and an
operator signing batch-record steps through the services. One ingest worker
verifies everything into the ledger of a per-run database (and approves the
new terminals, as an admin would after comparing fingerprints). At the end
every kiosk drains its queue and the ledger is checked against what each
kiosk reported: records, loss (must be 0), forks (must be 0), every chain
verified from its first record.

Signing latency (prepare + sign: rules, argon2 check, sealed record, durable
commit) is printed next to its raw limit measured in the same run under the
same load: a raw Ed25519 sign + SQLite insert committed with synchronous=FULL
+ one argon2 verify with the same parameters, sampled by the coordinator
while the kiosks run.

Run: python bench/soak_load.py [--kiosks 20] [--seconds 600] [--argon2 cheap|site] [--json out.json]
CI smoke: python bench/soak_load.py --kiosks 3 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import percentiles  # noqa: E402

PG_DEFAULT = os.environ.get("KIOSK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ARGON2 = {"cheap": dict(time_cost=1, memory_kib=1024, parallelism=1),
          "site": dict(time_cost=3, memory_kib=65536, parallelism=4)}


# -- one kiosk (child process) ---------------------------------------------------------------------

def kiosk_main(index: int, data: Path, url: str, go: Path, think_s: float, argon2: str, out: Path) -> None:
    import datetime as dt

    import pyotp

    from kiosk.demo import DEMO_PASSWORD, create_demo
    from kiosk.domain.passwords import PasswordHasher
    from kiosk.services.sync import SyncService
    from kiosk.sync_worker import SyncWorker
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore

    clock = SystemClock("Europe/Dublin")
    kiosk, users = create_demo(data, clock, hasher=PasswordHasher(**ARGON2[argon2]), device_id=f"load-{index:02d}")
    secret = next(u.totp_secret for u in users if u.user_id == "ana.op")
    kiosk.auth.accept_first_use(kiosk.auth.user("ana.op"))
    assert kiosk.session.login("ana.op", DEMO_PASSWORD, pyotp.TOTP(secret).now()).ok
    central = CentralStore(url, clock)
    sync = SyncService(kiosk.store, lambda: central, clock, batch_size=500, interval_s=5)
    worker = SyncWorker(sync, tick_s=0.5)
    worker.start()
    out.with_suffix(".ready").touch()
    while not go.exists():  # every kiosk starts signing at once, for the same time window
        time.sleep(0.1)
    deadline = float(go.read_text())
    latencies: list[float] = []
    signed: list[str] = []
    n = 0
    while time.time() < deadline:
        n += 1
        batch = f"L{index:02d}-{n:06d}"
        kiosk.session.activity()
        kiosk.signing.create_batch(batch, "buffer-prep@4")
        start = time.perf_counter()
        prepared = kiosk.signing.prepare(batch, "line-clearance", "Performed", {"area_clear": "yes"})
        totp = None
        if "totp" in prepared.components:  # the session's first signature; login used this step's code
            totp = pyotp.TOTP(secret).at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30))
        signature = kiosk.signing.sign(prepared, DEMO_PASSWORD, "ana.op", totp)
        latencies.append(time.perf_counter() - start)
        signed.append(signature["content_hash"])
        if think_s:
            time.sleep(think_s)
    # Drain: the worker keeps syncing; wait until the central store has receipted everything.
    drained_at = time.time() + 180
    while sync.status().queued and time.time() < drained_at:
        time.sleep(0.5)
    worker.stop()
    worker.join(10)
    head = kiosk.store.head()
    out.write_text(json.dumps({
        "chain": kiosk.store.chain, "head_seq": head.seq, "head_hash": head.hash_hex, "synced_upto": head.synced_upto,
        "signatures": len(signed), "latencies": latencies, "sync_failures": sync.status().failures,
        "halted": worker.halted,
    }))
    central.close()
    kiosk.close()


# -- the coordinator ----------------------------------------------------------------------------------

def raw_limit_sample(conn: sqlite3.Connection, key, hasher, stored: str, payload: bytes, i: int) -> float:
    start = time.perf_counter()
    hasher.verify(stored, "demo kiosk password")
    sig = key.sign(payload)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (?, ?, ?)", (i, payload, sig))
    conn.execute("COMMIT")
    return time.perf_counter() - start


LOAD_ADMIN = {"user_id": "load.admin", "name": "Load test", "role": "central-key-holder"}


def ingest_loop(url: str, key_file: Path, stop: threading.Event, stats: dict) -> None:
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore
    from storage.keyfile import load_central_key

    central = CentralStore(url, SystemClock(), load_central_key(key_file))
    try:
        while not stop.is_set():
            for device in central.devices():
                if device["status"] == "pending":
                    central.decide_device(device["chain"], "approved", LOAD_ADMIN, "load test terminal")
            report = central.ingest_all(batch=2000)
            stats["ingested"] += report.ingested
            stats["replays"] += report.replays
            stats["quarantined"] += report.quarantined
            stats["passes"] += 1
            if not (report.ingested or report.replays):
                stop.wait(0.2)
    finally:
        central.close()


def check_ledger(url: str, key_file: Path, results: list[dict]) -> dict:
    from sqlalchemy import text

    from kiosk.domain.chain import ChainVerifier
    from kiosk.domain.keys import PublicKey, unb64url
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore
    from storage.keyfile import load_central_key

    central = CentralStore(url, SystemClock(), load_central_key(key_file))
    loss = forks = verified = 0
    problems: list[str] = []
    try:
        central.ingest_all(batch=2000)
        quarantine = central.quarantine()
        forks = sum(1 for q in quarantine if q["reason"].startswith("fork"))
        for r in results:
            chain = r["chain"]
            head = central.head(chain)
            with central.engine.connect() as conn:
                signatures = conn.execute(text("SELECT count(*) FROM ledger WHERE chain = :c AND type = 'step.signed'"),
                                          {"c": chain}).scalar_one()
                rows = conn.execute(text("SELECT seq, raw, sig FROM ledger WHERE chain = :c ORDER BY seq"),
                                    {"c": chain})
                verifier = ChainVerifier(chain, PublicKey(unb64url(head["public_key"])))
                for seq, raw, sig in rows:
                    verifier.feed(bytes(raw), bytes(sig), seq)
                    verified += 1
            missing = r["head_seq"] - (verifier.next_seq - 1)
            if missing or head["hash"] != r["head_hash"]:
                problems.append(f"{chain}: kiosk head #{r['head_seq']}, ledger #{verifier.next_seq - 1}")
            loss += max(missing, 0) + max(r["signatures"] - signatures, 0)
            forks += head["status"] == "frozen"
        return {"loss": loss, "forks": forks, "verified_records": verified, "quarantined": len(quarantine),
                "problems": problems, "inbox_left": central.inbox_count()}
    finally:
        central.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--think-ms", type=float, default=200, help="pause between one operator's signatures")
    parser.add_argument("--argon2", choices=sorted(ARGON2), default="cheap",
                        help="cheap: argon2 t=1 m=1 MiB (load on the system, not on the hash); site: t=3 m=64 MiB p=4")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL; a database is created per run")
    parser.add_argument("--json", type=Path, help="write the figures here (bench/reliability_report.py reads them)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        index, data, url, go, think_s, out = args.child
        kiosk_main(int(index), Path(data), url, Path(go), float(think_s), args.argon2, Path(out))
        return 0

    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from kiosk.domain.passwords import PasswordHasher
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore

    name = f"kiosk_load_{uuid.uuid4().hex[:10]}"
    admin = args.pg.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    tmp = Path(tempfile.mkdtemp(prefix="kiosk-load-"))
    try:
        from storage.keyfile import load_or_create_central_key

        key_file = tmp / "central.key"
        CentralStore.open(url, SystemClock(), load_or_create_central_key(key_file)).close()
        stats = {"ingested": 0, "replays": 0, "quarantined": 0, "passes": 0}
        stop = threading.Event()
        ingest = threading.Thread(target=ingest_loop, args=(url, key_file, stop, stats), daemon=True)
        ingest.start()
        go = tmp / "go"
        children = []
        for i in range(args.kiosks):
            out = tmp / f"kiosk-{i:02d}.json"
            children.append((out, subprocess.Popen(
                [sys.executable, __file__, "--argon2", args.argon2, "--child", str(i), str(tmp / f"k{i:02d}"), url,
                 str(go), str(args.think_ms / 1000), str(out)], cwd=ROOT)))
        setup_limit = time.time() + 60 + 15 * args.kiosks
        while not all(out.with_suffix(".ready").exists() for out, _ in children):
            if time.time() > setup_limit or any(p.poll() is not None for _, p in children):
                break
            time.sleep(0.2)
        deadline = time.time() + args.seconds
        go.write_text(repr(deadline))
        # The raw limit, sampled under the same load.
        raw = sqlite3.connect(tmp / "raw.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, raw BLOB, sig BLOB)")
        key, hasher, payload = Ed25519PrivateKey.generate(), PasswordHasher(**ARGON2[args.argon2]), os.urandom(900)
        stored = hasher.hash("demo kiosk password")
        limit: list[float] = []
        i = 0
        while time.time() < deadline:
            i += 1
            limit.append(raw_limit_sample(raw, key, hasher, stored, payload, i))
            time.sleep(max(args.seconds / 300, 0.05))
        raw.close()
        codes = [p.wait() for _, p in children]
        stop.set()
        ingest.join(30)
        results = [json.loads(out.read_text()) for out, _ in children if out.exists()]
        ledger = check_ledger(url, key_file, results)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    latencies = [x for r in results for x in r["latencies"]]
    records = sum(r["head_seq"] for r in results)
    signatures = sum(r["signatures"] for r in results)
    s50, s99 = percentiles(latencies) if latencies else (float("nan"), float("nan"))
    l50, l99 = percentiles(limit) if limit else (float("nan"), float("nan"))
    figures = {
        "kiosks": args.kiosks, "seconds": args.seconds, "think_ms": args.think_ms, "argon2": args.argon2,
        "kiosks_finished": len(results), "exit_codes": codes, "records": records, "signatures": signatures,
        "signatures_per_s": signatures / args.seconds, "loss": ledger["loss"], "forks": ledger["forks"],
        "verified_records": ledger["verified_records"], "quarantined": ledger["quarantined"],
        "inbox_left": ledger["inbox_left"], "problems": ledger["problems"],
        "ingest_passes": stats["passes"], "replays": stats["replays"],
        "sign_p50_ms": s50 * 1000, "sign_p99_ms": s99 * 1000, "limit_p50_ms": l50 * 1000, "limit_p99_ms": l99 * 1000,
        "sync_halted": [r["chain"] for r in results if r["halted"]],
        "pg_version": pg_version, "cpus": os.cpu_count(),
    }
    print(f"{args.kiosks} kiosks x {args.seconds:.0f} s, argon2 {args.argon2}, think {args.think_ms:.0f} ms, "
          f"{os.cpu_count()} CPUs, PostgreSQL {pg_version}")
    print(f"  records {records:,} ({signatures:,} step signatures, {signatures / args.seconds:,.1f}/s); "
          f"ledger verified {ledger['verified_records']:,}; loss {ledger['loss']}; forks {ledger['forks']}; "
          f"quarantined {ledger['quarantined']}; inbox left {ledger['inbox_left']}")
    print(f"  signing latency p50 {s50 * 1000:8.2f} ms  p99 {s99 * 1000:8.2f} ms")
    print(f"  limit (argon2 verify + Ed25519 sign + SQLite commit, same load): p50 {l50 * 1000:8.2f} ms  "
          f"p99 {l99 * 1000:8.2f} ms")
    print(f"  ratio p50 {s50 / l50:5.2f}   ratio p99 {s99 / l99:5.2f}")
    for problem in ledger["problems"]:
        print(f"  PROBLEM {problem}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    ok = (ledger["loss"] == 0 and ledger["forks"] == 0 and len(results) == args.kiosks and not any(codes)
          and not ledger["problems"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
