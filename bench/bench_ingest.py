"""Central ingest throughput with full verification, next to the limits measured in the same run.

Ingest checks every record (canonical bytes, hash, Ed25519 signature, seq,
prev, checkpoint Merkle roots) and moves it from the inbox to the ledger. Its
ceiling is signature verification, so the figures are printed against:
- a raw Ed25519 verify loop over the same records, in 1 and in 2 processes
  (the verify-bound limit; the goal is ingest >= 70% of it);
- a raw PostgreSQL COPY of the same rows into a temporary table (the
  database-bound limit).
Each ingest run gets its own fresh database (dropped afterwards), workers are
separate processes started before the clock runs. The CPU each record costs
(the worker's threads, and the rest of the machine: PostgreSQL) is printed
too: with as many workers as cores, the database's share comes out of
verification, so it sets the ceiling the multi-worker figure is read against. The main workload is records
the directory does not project (verification, ledger, signed receipts); a
second line shows ingest when every record also changes a directory document.

Run: python bench/bench_ingest.py [N [ROUNDS]]   (N records over 4 device chains, default 20000;
     each figure the best of ROUNDS interleaved rounds, default 3; the goal's verdict is the median of the
     rounds' own ratios)
     python bench/bench_ingest.py --instructions [N]   (the same work counted by valgrind, not timed;
     default 4000 records)
PostgreSQL: $KIOSK_BENCH_PG_URL, else $KIOSK_TEST_PG_URL, else the local test server.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench._common import differenced, instructions, need_valgrind, report  # noqa: E402

PG = os.environ.get("KIOSK_BENCH_PG_URL") or os.environ.get(
    "KIOSK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CHAINS = 4
ADMIN = {"user_id": "bench.admin", "name": "Bench Admin", "role": "admin"}
# A record the directory derivation does not project: ingest = verification + ledger + receipts.
PLAIN = ("note.added", {"batch": "B-2026-0042", "step": "weigh-api", "values": {"net_kg": "12.503", "tare_kg": "0.750"},
                        "text": "scale re-zeroed before weighing", "printed_name": "Jane Operator",
                        "user_id": "jane.op", "role": "operator", "content_sha256": "9f" * 32})
# A record the directory derives a document from (one directory change per record, as most real traffic does).
DERIVED = ("alert.raised", {"kind": "scale.drift", "severity": "warning", "message": "scale drift above 0.1 %",
                            "target": {"kind": "device", "id": "scale-7"}})


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextlib.contextmanager
def fresh_database():
    name = f"bench_ingest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq(PG), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(libpq(PG), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def make_records(base: Path, n: int, kind=PLAIN) -> list[tuple[str, int, bytes, bytes, bytes]]:
    """n signed records over CHAINS real kiosk chains (genesis and checkpoints included)."""
    from kiosk.domain.clock import FakeClock
    from storage.keyfile import load_or_create_identity
    from storage.local_store import LocalStore

    rows = []
    clock = FakeClock()
    for k in range(CHAINS):
        data = base / f"{kind[0]}-line-{k}"
        store = LocalStore.open(data, load_or_create_identity(data, f"line-{k}"), clock)
        left, i = n // CHAINS - 1, 0
        while left > 0:
            clock.advance(1)
            size = min(500, left)
            type_, body = kind
            if type_ == "alert.raised":
                store.append_many([(type_, {**body, "alert_id": f"a-{k}-{i + j}"}) for j in range(size)])
            else:
                store.append_many([(type_, body)] * size)
            left -= size
            i += size
        rows += [(r.chain, r.seq, r.hash, r.raw, r.sig) for r in store.iter_rows()]
        store.close()
    return rows


# -- worker processes (started first, timed from "go" to exit) --------------------
def worker_main(mode: str, arg: str) -> None:
    if mode == "verify":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from kiosk.domain.keys import RECORD_SIG_PREFIX

        items = pickle.loads(Path(arg).read_bytes())
        keys = {raw: Ed25519PublicKey.from_public_bytes(raw) for raw, _, _ in items}
        print("ready", flush=True)
        sys.stdin.readline()
        cpu = time.process_time()
        for key, digest, sig in items:
            keys[key].verify(sig, RECORD_SIG_PREFIX + digest)
        print(len(items), time.process_time() - cpu, machine_cpu_s(), time.perf_counter(), flush=True)
        return
    from kiosk.domain.clock import FakeClock
    from storage.central import CentralStore
    from storage.keyfile import load_central_key

    store = CentralStore(arg, FakeClock(), load_central_key(Path(os.environ["KIOSK_CENTRAL_KEY"])))
    store.inbox_count()  # connected before the clock runs
    from storage.ingest_loop import BATCH

    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()

    done = 0
    while True:
        r = store.ingest_all(BATCH)  # as `kiosk central ingest` runs it
        done += r.ingested
        if r.ingested + r.replays + r.quarantined == 0:
            if store.inbox_count() == 0:
                break
            time.sleep(0.001)  # the other worker holds the chains left
    store.close()
    print(done, time.process_time() - cpu, machine_cpu_s(), time.perf_counter(), flush=True)


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (every process: the workers and PostgreSQL)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


@dataclass
class Run:
    elapsed: float      # seconds from 'go' to the end of the last worker's work
    done: int           # records
    worker_cpu: float   # CPU seconds of the worker processes (all their threads)
    machine_cpu: float  # CPU seconds of the whole machine over the same time


def run_workers(specs: list[tuple[str, str]]) -> Run:
    """Start the workers, wait until each is ready, then time them from 'go' to the end of the last one's work.

    Each worker reads the end of its work off the machine-wide monotonic clock (perf_counter is
    CLOCK_MONOTONIC): its interpreter's exit is not part of the throughput, and the ingest worker,
    with more modules to tear down, would pay more for it than the verify loop (~0.15 s per run).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", mode, arg], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for mode, arg in specs]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    start, busy = time.perf_counter(), machine_cpu_s()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate()[0].split() for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a worker failed")
    # Each worker reads its own CPU (all its threads) and the machine's at the end of its work.
    return Run(max(float(o[-1]) for o in outs) - start, sum(int(o[-4]) for o in outs),
               sum(float(o[-3]) for o in outs), max(float(o[-2]) for o in outs) - busy)


# -- the measurements ----------------------------------------------------------
def verify_items(rows) -> list[tuple[bytes, bytes, bytes]]:
    """(public key, record hash, signature) of each record: what the raw verify loop checks."""
    from kiosk.domain.keys import unb64url
    from kiosk.domain.records import parse_raw

    keys = {}
    for chain, seq, _, raw, _ in rows:
        if seq == 1:
            keys[chain] = unb64url(parse_raw(raw)[0].body["public_key"])
    return [(keys[chain], digest, sig) for chain, _, digest, _, sig in rows]


def raw_verify(tmp: Path, rows, processes: int) -> Run:
    items = verify_items(rows)
    specs = []
    for i in range(processes):
        path = tmp / f"verify-{processes}-{i}.pickle"
        path.write_bytes(pickle.dumps(items[i::processes]))
        specs.append(("verify", str(path)))
    return run_workers(specs)


def raw_copy(rows) -> float:
    from kiosk.domain.records import parse_raw

    values = []
    for chain, seq, digest, raw, sig in rows:
        record, _ = parse_raw(raw)
        values.append((chain, seq, digest, raw, sig, record.id, record.type, record.ts, record.kid,
                       "2026-11-24T10:00:00.000000Z"))
    with fresh_database() as url, psycopg.connect(libpq(url)) as conn:
        conn.execute("CREATE TEMP TABLE copy_limit (chain text, seq bigint, hash bytea, raw bytea, sig bytea, "
                     "id text, type text, ts text, kid text, received_at text, PRIMARY KEY (chain, seq))")
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY copy_limit FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "int8", "bytea", "bytea", "bytea", "text", "text", "text", "text", "text"])
            for value in values:
                copy.write_row(value)
        conn.commit()
        return len(values) / (time.perf_counter() - start)


@contextlib.contextmanager
def loaded_inbox(tmp: Path, rows):
    """A fresh database whose inbox holds ``rows`` from approved devices, as kiosks leave it for ingest."""
    from kiosk.domain.clock import FakeClock
    from storage.central import CentralStore
    from storage.keyfile import load_or_create_central_key

    key_file = tmp / "central.key"
    os.environ["KIOSK_CENTRAL_KEY"] = str(key_file)  # the workers sign receipts with it
    with fresh_database() as url:
        store = CentralStore.open(url, FakeClock(), load_or_create_central_key(key_file))
        store.push([r for r in rows if r[1] == 1])
        store.ingest_all()
        for d in store.devices():
            if d["status"] == "pending":
                store.decide_device(d["chain"], "approved", ADMIN, "fingerprint compared")
        for i in range(0, len(rows), 2000):
            store.push(rows[i:i + 2000])
        store.close()
        yield url


def ingest(tmp: Path, rows, workers: int) -> Run:
    from kiosk.domain.clock import FakeClock
    from storage.central import CentralStore
    from storage.keyfile import load_central_key

    with loaded_inbox(tmp, rows) as url:
        run = run_workers([("ingest", url)] * workers)
        store = CentralStore(url, FakeClock(), load_central_key(tmp / "central.key"))
        assert run.done == len(rows) and store.quarantine() == [] and store.inbox_count() == 0, "ingest incomplete"
        store.close()
        return run


def main(n: int = 20_000, rounds: int = 3) -> None:
    """Each figure is the best of ``rounds``, the rounds interleaved, so a busy machine hurts both alike.

    The goal's verdict also comes from each round's own ratio (ingest against the verify loop run just
    before it): the machine's speed drifts by tens of percent within minutes, and the best of each side
    may come from different moments. Their median is the verdict; the best-of ratio is shown beside it.
    """
    best: dict[str, Run] = {}
    paired: dict[str, list[float]] = {"1 worker": [], "2 workers": []}

    def keep(name: str, run: Run) -> Run:
        if name not in best or run.done / run.elapsed > best[name].done / best[name].elapsed:
            best[name] = run
        return run

    def rate(run: Run) -> float:
        return run.done / run.elapsed

    copy_rate = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = make_records(tmp, n)
        derived = make_records(tmp, n // 2, DERIVED)
        for _ in range(rounds):
            limit = keep("verify_1", raw_verify(tmp, rows, 1))
            paired["1 worker"].append(rate(keep("ingest_1", ingest(tmp, rows, 1))) / rate(limit))
            limit = keep("verify_2", raw_verify(tmp, rows, 2))
            paired["2 workers"].append(rate(keep("ingest_2", ingest(tmp, rows, 2))) / rate(limit))
            copy_rate = max(copy_rate, raw_copy(rows))
            keep("derived_1", ingest(tmp, derived, 1))
    rates = {name: rate(run) for name, run in best.items()}
    verify_1, ingest_1, verify_2, ingest_2 = rates["verify_1"], rates["ingest_1"], rates["verify_2"], rates["ingest_2"]
    print(f"central ingest, {len(rows)} records over {CHAINS} chains, full verification, PostgreSQL, "
          f"{os.cpu_count()} CPUs, best of {rounds}")
    report("ingest, 1 worker (records/s)", ingest_1, "rec/s", "raw Ed25519 verify, 1 process", verify_1)
    report("ingest, 2 workers (records/s)", ingest_2, "rec/s", "raw Ed25519 verify, 2 processes", verify_2)
    report("ingest, 1 worker (records/s)", ingest_1, "rec/s", "raw PostgreSQL COPY, same rows", copy_rate)
    report("ingest + directory derivation, 1 worker", rates["derived_1"], "rec/s", "raw Ed25519 verify, 1 process",
           verify_1)
    for label, value, limit in (("1 worker", ingest_1, verify_1), ("2 workers", ingest_2, verify_2)):
        median = statistics.median(paired[label])
        verdict = "met" if median >= 0.7 else "NOT met"
        print(f"goal >= 70% of the verify-bound limit, {label}: {median:.0%} ({verdict}), the median of each "
              f"round's ratio ({', '.join(f'{r:.2f}' for r in paired[label])}); best against best {value / limit:.0%}")
    # Where the CPU goes: with 2 workers every core is busy, so the database's share is taken from verification.
    one, verify = best["ingest_1"], best["verify_1"]
    worker_us, machine_us = 1e6 * one.worker_cpu / one.done, 1e6 * one.machine_cpu / one.done
    verify_us = 1e6 * verify.worker_cpu / verify.done
    cores = os.cpu_count() or 1
    ceiling = cores * 1e6 / machine_us
    print(f"CPU per record, 1 worker: ingest process {worker_us:.0f} us (Ed25519 verify alone {verify_us:.0f} us), "
          f"PostgreSQL and the rest of the machine {machine_us - worker_us:.0f} us")
    print(f"so {cores} busy cores ingest at most {ceiling:,.0f} rec/s = {ceiling / verify_2:.2f} of the "
          f"{cores}-process verify limit; 2 workers reach {ingest_2 / ceiling:.2f} of that ceiling")


# -- instructions: the same work counted, not timed -------------------------------
def instructions_main(n: int = 4000) -> None:
    """Instructions per record of ingest and of the raw verify loop.

    On a shared 2-core machine the timed ratio moves with the machine (±35%
    within minutes), and Python code slows more than Ed25519's arithmetic
    does. The instructions each side executes do not move: they show how much
    work ingest adds to verification, apart from how fast the CPU runs it.
    Each figure is the difference of an n- and an n/4-record run, so start-up
    and teardown cancel out. The kernel's share (e.g. socket I/O) is not counted.
    """
    need_valgrind()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        counts: dict[str, list[int]] = {"ingest": [], "verify": []}
        sizes = []
        for size in (n, n // 4):
            rows = make_records(tmp / f"records-{size}", size)
            sizes.append(len(rows))
            with loaded_inbox(tmp, rows) as url:
                counts["ingest"].append(instructions(__file__, "--worker", "ingest", url, stdin="go\n"))
            items = tmp / f"verify-{size}.pickle"
            items.write_bytes(pickle.dumps(verify_items(rows)))
            counts["verify"].append(instructions(__file__, "--worker", "verify", str(items), stdin="go\n"))
    per = differenced(counts, sizes)
    print(f"instructions per record (valgrind; the worker process, all threads, user space; {sizes[0]:,} and "
          f"{sizes[1]:,}-record runs differenced)")
    print(f"ingest, 1 worker {per['ingest']:>14,.0f}    raw Ed25519 verify loop {per['verify']:>12,.0f}    "
          f"ingest does {per['ingest'] / per['verify']:.2f}x the verify loop's work: at equal speed per "
          f"instruction, {per['verify'] / per['ingest']:.2f} of the verify-bound limit")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--instructions":
        instructions_main(int(sys.argv[2]) if len(sys.argv) > 2 else 4000)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
