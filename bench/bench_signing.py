"""One signing event (rules + record + durable commit), argon2 excluded, vs its raw limit.

The event is ``sign()``: what runs between the person confirming the signature
dialog and the signature being durable (the password check, the session
owner, every signing rule once more inside the append transaction, the sealed
record, the batch projection, the synchronous=FULL commit). ``prepare()`` runs
earlier, when the dialog opens (it fills in the manifestation the person
reads while typing); it is timed and printed on its own, and with the event.

The limit, measured in the same run on the same disk: a raw Ed25519 sign plus
one SQLite insert committed with synchronous=FULL. Limit and event samples
alternate, so a busy disk or machine weighs on both alike.

argon2 is excluded twice over. Its time is measured inside each event and
subtracted; and in the headline figure the kiosk's users are hashed with
argon2's smallest parameters, because the site's 64 MiB pass also leaves the
CPU caches cold for whatever runs next, which is argon2's cost, not the
signing path's: right after a real argon2 verify even the raw limit itself
takes ~1.8x as long. The second block runs the same event with the site's
real parameters and sets it against the limit timed the same way (right after
an argon2 verify), and shows the floor: the bare statements of one event.

The headline signs the first step of fresh batches. A third block signs one
batch of 150 steps in order, to show what a signature costs as its batch
record grows.

Run: python bench/bench_signing.py [N]
     python bench/bench_signing.py --instructions [N]   (the event and the limit counted by valgrind, not
     timed; default 100 events)
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyotp  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench._common import differenced, instructions, need_valgrind, percentiles  # noqa: E402
from kiosk.demo import DEMO_PASSWORD, create_demo  # noqa: E402
from kiosk.domain.clock import FakeClock  # noqa: E402
from kiosk.domain.passwords import PasswordHasher  # noqa: E402


class TimedHasher(PasswordHasher):
    """Accumulates the time spent in argon2 so it can be taken out of the event's latency."""

    spent = 0.0
    spent_cpu = 0.0   # CPU time of the calling thread inside argon2 (it hashes part of the memory itself)

    def verify(self, stored: str, password: str) -> bool:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return super().verify(stored, password)
        finally:
            self.spent += time.perf_counter() - start
            self.spent_cpu += time.thread_time() - cpu


class RawLimit:
    """The limit: one raw Ed25519 sign plus one SQLite insert committed with synchronous=FULL."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, raw BLOB, sig BLOB)")
        self.key = Ed25519PrivateKey.generate()
        self.payload = os.urandom(900)
        self.seq = 0

    def once(self) -> tuple[float, float]:
        """Wall and CPU seconds of one limit event."""
        self.seq += 1
        start, cpu = time.perf_counter(), time.thread_time()
        sig = self.key.sign(self.payload)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO t VALUES (?, ?, ?)", (self.seq, self.payload, sig))
        self.conn.execute("COMMIT")
        return time.perf_counter() - start, time.thread_time() - cpu

    def close(self) -> None:
        self.conn.close()


class StatementFloor:
    """The SQL one signing event issues today, on a store with the real schema, raw sqlite3, no rule logic.

    Sign: the account, the terminal's status and both failure counters, read
    through the write connection's cache (one PRAGMA data_version when nobody
    else wrote, as here). Transaction: BEGIN IMMEDIATE, PRAGMA data_version (nobody else wrote,
    so the head, the account and the batch are known without reading them),
    INSERT record (Ed25519-signed), DELETE draft, upsert the step's document, UPDATE head,
    COMMIT. Whatever a signing event costs above this is Python rule logic;
    what this costs above the limit is the design.
    """

    def __init__(self, data: Path, user_doc: str, step_doc: str) -> None:
        from storage.keyfile import load_or_create_identity
        from storage.local_store import LocalStore

        store = LocalStore.open(data, load_or_create_identity(data, "floor"), FakeClock())
        self.chain = store.chain
        store.close()
        self.db = sqlite3.connect(data / "kiosk.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        for kind, key, doc in (("user", "u", user_doc), ("batch_step", "b/s", step_doc)):
            self.db.execute("INSERT INTO directory (kind, key, doc, chain, seq) VALUES (?, ?, ?, ?, 1)",
                            (kind, key, doc, self.chain))
        self.key = Ed25519PrivateKey.generate()
        self.payload = os.urandom(900)
        self.seq = self.db.execute("SELECT head_seq FROM chain_state").fetchone()[0]
        self.step_doc = step_doc

    @classmethod
    def of(cls, kiosk, data: Path) -> "StatementFloor":
        """With the documents of a Floor's kiosk: ana's account and the signed step of its first batch."""
        return cls(data, json.dumps(kiosk.directory.get("user", "ana.op"), ensure_ascii=False),
                   json.dumps(kiosk.signing.batch("B-00000")["steps"]["line-clearance"], ensure_ascii=False))

    def once(self) -> tuple[float, float]:
        """Wall and CPU seconds of one event's statements."""
        db, start, cpu = self.db, time.perf_counter(), time.thread_time()
        db.execute("PRAGMA data_version").fetchone()
        db.execute("BEGIN IMMEDIATE")
        db.execute("PRAGMA data_version").fetchone()
        self.seq += 1
        digest = hashlib.sha256(self.payload + self.seq.to_bytes(8, "big")).digest()
        sig = self.key.sign(b"kiosk-record-v1\x00" + digest)
        db.execute("INSERT INTO records (chain, seq, hash, raw, sig, id, type, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (self.chain, self.seq, digest, self.payload, sig, f"id-{self.seq}", "step.signed", "2026"))
        db.execute("DELETE FROM drafts WHERE batch_id = ? AND step_id = ?", ("b", "s"))
        db.executemany("INSERT INTO directory (kind, key, doc, chain, seq) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                       "(kind, key) DO UPDATE SET doc = excluded.doc, chain = excluded.chain, seq = excluded.seq",
                       [("batch_step", "b/s", self.step_doc, self.chain, self.seq)])
        db.execute("UPDATE chain_state SET head_seq = ?, head_hash = ?, frontier = ? WHERE chain = ?",
                   (self.seq, digest.hex(), "[]", self.chain))
        db.execute("COMMIT")
        return time.perf_counter() - start, time.thread_time() - cpu

    def close(self) -> None:
        self.db.close()


CHEAPEST_ARGON2 = dict(time_cost=1, memory_kib=8, parallelism=1)


class DemoAsAna:
    """A demo kiosk on a FakeClock with ana.op logged in, her e-signature statement accepted."""

    def __init__(self, data: Path, hasher: TimedHasher) -> None:
        self.clock = FakeClock()
        self.hasher = hasher
        self.kiosk, users = create_demo(data, self.clock, hasher=hasher)
        self.totp_secret = next(u for u in users if u.user_id == "ana.op").totp_secret
        self.kiosk.auth.accept_first_use(self.kiosk.auth.user("ana.op"))
        self.clock.advance(31)
        self.kiosk.session.login("ana.op", DEMO_PASSWORD, self.code())

    def code(self) -> str:
        """ana's one-time code now."""
        return pyotp.TOTP(self.totp_secret).at(self.clock.now())


class Floor(DemoAsAna):
    """``n`` batches of the buffer recipe, the first one signed."""

    def __init__(self, data: Path, n: int, hasher: TimedHasher) -> None:
        super().__init__(data, hasher)
        for i in range(n):
            self.clock.advance(1)
            self.kiosk.session.activity()
            self.kiosk.signing.create_batch(f"B-{i:05d}", "buffer-prep@4")
        self.clock.advance(31)
        self.kiosk.signing.sign(self.prepare(0), DEMO_PASSWORD, "ana.op", self.code())

    def prepare(self, i: int):
        return self.kiosk.signing.prepare(f"B-{i:05d}", "line-clearance", "Performed", {"area_clear": "yes"})

    def event(self, i: int) -> tuple[float, float, float]:
        """Seconds of prepare (the dialog opening), of the signing event (wall and CPU), argon2 taken out."""
        self.clock.advance(1)
        start = time.perf_counter()
        prepared = self.prepare(i)
        opened = time.perf_counter()
        self.hasher.spent = self.hasher.spent_cpu = 0.0
        cpu = time.thread_time()
        self.kiosk.signing.sign(prepared, DEMO_PASSWORD)
        done = time.perf_counter()
        return (opened - start, done - opened - self.hasher.spent,
                time.thread_time() - cpu - self.hasher.spent_cpu)


LONG_STEPS = 150


class LongBatch(DemoAsAna):
    """One batch of a ``steps``-step recipe signed step by step: whether a signature's cost grows with its batch.

    The headline signs the first step of fresh batches; a real batch record
    has tens to hundreds of steps. Each signature writes its step's document
    only, and the dialog's batch view reads every step's, from the write
    connection's memory.
    """

    def __init__(self, data: Path, steps: int, hasher: TimedHasher) -> None:
        super().__init__(data, hasher)
        field = ('{ name = "v", type = "decimal", label = "Value", unit = "kg", min = "1", max = "9" }, '
                 '{ name = "note", type = "text", label = "Note" }')
        recipe = 'id = "long"\nversion = 1\ntitle = "Long batch record"\nproduct = "L"\n' + "".join(
            f'\n[[steps]]\nid = "s{i}"\ntitle = "Step {i}"\nfields = [{field}]\n'
            f'signatures = [{{ meaning = "Performed", roles = ["operator"] }}]\n' for i in range(steps))
        path = data / "long.toml"
        path.write_text(recipe, encoding="utf-8")
        self.kiosk.signing.register_recipe_file(path, {"user_id": "bench", "name": "Bench", "role": "admin"}, "bench")
        self.kiosk.signing.create_batch("LONG-1", "long@1")
        self.clock.advance(31)

    def event(self, i: int) -> float:
        """Seconds of signing step ``i`` (after its dialog is prepared), argon2 taken out."""
        self.clock.advance(1)
        self.kiosk.session.activity()
        prepared = self.kiosk.signing.prepare("LONG-1", f"s{i}", "Performed",
                                              {"v": "5.000", "note": "weighed on BAL-7 after re-zeroing"})
        code = self.code() if i == 0 else None
        self.hasher.spent = 0.0
        start = time.perf_counter()
        self.kiosk.signing.sign(prepared, DEMO_PASSWORD, "ana.op" if code else None, code)
        return time.perf_counter() - start - self.hasher.spent


def main(n: int = 400) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = RawLimit(tmp / "raw.db")
        # 1. The headline: argon2 at its smallest (time subtracted), limit interleaved.
        cheap = Floor(tmp / "cheap", n, TimedHasher(**CHEAPEST_ARGON2))
        prep, events, events_cpu, limit, limit_cpu = [], [], [], [], []
        for i in range(1, n):
            wall, cpu = raw.once()
            limit.append(wall)
            limit_cpu.append(cpu)
            p, e, c = cheap.event(i)
            prep.append(p)
            events.append(e)
            events_cpu.append(c)
        cheap.kiosk.close()
        # 2. The site's argon2 parameters, against the limit timed right after an argon2 verify; and the floor.
        site = Floor(tmp / "site", n // 2, TimedHasher())
        floor = StatementFloor.of(site.kiosk, tmp / "floor")
        stored = site.hasher.hash(DEMO_PASSWORD)
        site_events, limit_cold, floor_cold = [], [], []
        for i in range(1, n // 2):
            site_events.append(site.event(i)[1])
            site.hasher.verify(stored, DEMO_PASSWORD)
            limit_cold.append(raw.once())
            site.hasher.verify(stored, DEMO_PASSWORD)
            floor_cold.append(floor.once())
        # 3. A growing batch record, signed step by step, each signature next to a limit sample.
        long = LongBatch(tmp / "long", LONG_STEPS, TimedHasher(**CHEAPEST_ARGON2))
        grown, limit_grown = [], []
        for i in range(LONG_STEPS):
            grown.append(long.event(i))
            limit_grown.append(raw.once()[0])
        long.kiosk.close()
        raw.close()
        floor.close()
        # Login: argon2 vs the rest (site parameters).
        kiosk, clock, hasher = site.kiosk, site.clock, site.hasher
        argon, rest = [], []
        for _ in range(30):
            clock.advance(31)
            kiosk.session.logout()
            hasher.spent = 0.0
            start = time.perf_counter()
            kiosk.session.login("ana.op", DEMO_PASSWORD, site.code())
            total = time.perf_counter() - start
            argon.append(hasher.spent)
            rest.append(total - hasher.spent)
        kiosk.close()
    e50, e99 = percentiles(events)
    l50, l99 = percentiles(limit)
    p50, _ = percentiles(prep)
    t50, _ = percentiles([a + b for a, b in zip(prep, events)])
    c50, _ = percentiles(events_cpu)
    lc50, _ = percentiles(limit_cpu)
    print(f"signing event: sign() = password check + rules in the append transaction + sealed record + "
          f"durable commit; argon2 excluded; {len(events)} events")
    print(f"  p50 {e50*1000:7.3f} ms   p99 {e99*1000:7.3f} ms")
    print(f"  limit: raw Ed25519 sign + SQLite insert/commit (synchronous=FULL): p50 {l50*1000:7.3f} ms   "
          f"p99 {l99*1000:7.3f} ms")
    print(f"  ratio p50 {e50/l50:5.2f} (goal <= 1.5)   ratio p99 {e99/l99:5.2f}   (samples interleaved)")
    print(f"  CPU time of this thread: event p50 {c50*1000:7.3f} ms, limit p50 {lc50*1000:7.3f} ms, ratio {c50/lc50:5.2f}")
    print(f"  before it, prepare() as the dialog opens: p50 {p50*1000:7.3f} ms; "
          f"prepare + sign p50 {t50*1000:7.3f} ms, ratio {t50/l50:5.2f}")
    s50, _ = percentiles(site_events)
    w50, _ = percentiles([w for w, _ in limit_cold])
    f50, _ = percentiles([w for w, _ in floor_cold])
    print(f"with the site's argon2 (64 MiB; its time subtracted, its cold caches not), {len(site_events)} events, "
          f"each figure right after an argon2 verify:")
    print(f"  signing event p50 {s50*1000:7.3f} ms; the limit itself {w50*1000:7.3f} ms "
          f"({w50/l50:4.2f}x the warm limit); ratio {s50/w50:5.2f}")
    print(f"  floor: the statements of one event, raw, no rules: {f50*1000:7.3f} ms, ratio {f50/w50:5.2f}")
    early, _ = percentiles(grown[1:11])
    late, _ = percentiles(grown[-10:])
    g50, _ = percentiles(limit_grown)
    print(f"one batch of {LONG_STEPS} steps signed in order (argon2 excluded): sign() p50 {early*1000:7.3f} ms on "
          f"steps 2-11, {late*1000:7.3f} ms on the last 10 ({late/early:4.2f}x); limit p50 {g50*1000:7.3f} ms, "
          f"ratio {early/g50:5.2f} early, {late/g50:5.2f} late")
    a50, _ = percentiles(argon)
    r50, r99 = percentiles(rest)
    print(f"login: argon2 verify p50 {a50*1000:7.1f} ms; everything else p50 {r50*1000:6.2f} ms p99 {r99*1000:6.2f} ms; "
          f"rest/argon2 = {r50/a50:5.1%} (goal < 5%)")


# -- instructions: the same work counted, not timed -------------------------------
MODES = ("limit", "statements", "argon2", "prepare", "event")


def worker_main(mode: str, k: int, batches: int) -> None:
    """Run ``k`` of one part of the event (or of the limit) in a process of its own, for valgrind to count."""
    if mode not in MODES:
        raise SystemExit(f"unknown worker mode {mode!r}; one of {', '.join(MODES)}")
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "limit":
            raw = RawLimit(Path(tmp) / "raw.db")
            for _ in range(k):
                raw.once()
            raw.close()
            return
        # Only the part being counted is set up beyond the floor itself.
        floor = Floor(Path(tmp) / "floor", batches, TimedHasher(**CHEAPEST_ARGON2))
        if mode == "statements":
            statements = StatementFloor.of(floor.kiosk, Path(tmp) / "statements")
            for _ in range(k):
                statements.once()
            statements.close()
        elif mode == "argon2":
            stored = floor.hasher.hash(DEMO_PASSWORD)
            for _ in range(k):
                floor.hasher.verify(stored, DEMO_PASSWORD)
        else:
            for i in range(1, k + 1):
                if mode == "prepare":
                    floor.clock.advance(1)
                    floor.prepare(i)
                else:
                    floor.event(i)
        floor.kiosk.close()


def instructions_main(n: int = 100) -> None:
    """Instructions per signing event, its parts, and the raw limit.

    Each figure is the difference of an n- and an n/4-event run on the same
    floor (same demo, same number of batches), so start-up, set-up and
    teardown cancel out. sign() = event - prepare - argon2 (its cheapest
    parameters, which the headline subtracts by time). Set against the
    floor (the same statements, raw), the rest is what the Python around
    them costs.
    """
    need_valgrind()
    counts: dict[str, list[int]] = {}
    sizes = (n, n // 4)
    for mode in MODES:
        counts[mode] = [instructions(__file__, "--worker", mode, str(k), str(n + 1)) for k in sizes]
    per = differenced(counts, sizes)
    sign = per["event"] - per["prepare"] - per["argon2"]
    print(f"instructions per signing event (valgrind; user space, all threads; {sizes[0]} and {sizes[1]}-event "
          f"runs differenced; fsync and other kernel work not counted)")
    print(f"  limit: raw Ed25519 sign + SQLite insert/commit {per['limit']:>12,.0f}")
    print(f"  sign() without argon2 {sign:>12,.0f}   ratio {sign / per['limit']:5.2f} of the limit's work")
    print(f"    of which the statements of one event, raw (the floor) {per['statements']:>12,.0f}; "
          f"the rules, record and projection in Python {sign - per['statements']:>12,.0f}")
    print(f"  prepare() {per['prepare']:>12,.0f}   argon2 verify (cheapest parameters) {per['argon2']:>12,.0f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--instructions":
        instructions_main(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
