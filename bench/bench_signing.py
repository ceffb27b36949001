"""One signing event (rules + record + durable commit), argon2 excluded, vs its raw limit.

The limit, measured in the same run on the same disk: a raw Ed25519 sign plus
one SQLite insert committed with synchronous=FULL. Limit and event samples
alternate, so a busy disk or machine weighs on both alike. argon2's time is
measured inside each event and subtracted (it is a deliberate cost).
Also: login latency split into argon2 verify vs everything else.

Run: python bench/bench_signing.py [N]
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyotp  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench._common import percentiles  # noqa: E402
from kiosk.app import build_kiosk  # noqa: E402
from kiosk.config import KioskConfig  # noqa: E402
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


def raw_limit(path: Path, n: int) -> list[float]:
    raw = RawLimit(path)
    try:
        return [raw.once()[0] for _ in range(n)]
    finally:
        raw.close()


def main(n: int = 300) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = RawLimit(tmp / "raw.db")
        clock = FakeClock()
        hasher = TimedHasher()  # the site's real argon2 parameters
        kiosk, users = create_demo(tmp / "data", clock, hasher=hasher)
        ana = next(u for u in users if u.user_id == "ana.op")
        kiosk.auth.accept_first_use(kiosk.auth.user("ana.op"))
        clock.advance(31)
        kiosk.session.login("ana.op", DEMO_PASSWORD, pyotp.TOTP(ana.totp_secret).at(clock.now()))
        events, limit, events_cpu, limit_cpu = [], [], [], []
        signing = kiosk.signing
        # Many batches of the buffer recipe; sign its first step (Performed) in each.
        for i in range(n):
            clock.advance(1)
            kiosk.session.activity()
            bid = f"B-{i:05d}"
            signing.create_batch(bid, "buffer-prep@3")
        clock.advance(31)
        first = signing.prepare("B-00000", "line-clearance", "Performed", {"area_clear": "yes"})
        signing.sign(first, DEMO_PASSWORD, "ana.op", pyotp.TOTP(ana.totp_secret).at(clock.now()))
        for i in range(1, n):
            # Limit and event alternate, so both meet the same disk and machine load.
            wall, cpu = raw.once()
            limit.append(wall)
            limit_cpu.append(cpu)
            clock.advance(1)
            hasher.spent = hasher.spent_cpu = 0.0
            start, cpu_start = time.perf_counter(), time.thread_time()
            prepared = signing.prepare(f"B-{i:05d}", "line-clearance", "Performed", {"area_clear": "yes"})
            signing.sign(prepared, DEMO_PASSWORD)
            events.append(time.perf_counter() - start - hasher.spent)
            events_cpu.append(time.thread_time() - cpu_start - hasher.spent_cpu)
        raw.close()
        # Login: argon2 vs the rest.
        argon, rest = [], []
        for _ in range(30):
            clock.advance(31)
            kiosk.session.logout()
            hasher.spent = 0.0
            start = time.perf_counter()
            kiosk.session.login("ana.op", DEMO_PASSWORD, pyotp.TOTP(ana.totp_secret).at(clock.now()))
            total = time.perf_counter() - start
            argon.append(hasher.spent)
            rest.append(total - hasher.spent)
        kiosk.close()
    e50, e99 = percentiles(events)
    l50, l99 = percentiles(limit)
    c50, _ = percentiles(events_cpu)
    lc50, _ = percentiles(limit_cpu)
    print(f"signing event (prepare + rules + sealed record + durable commit; argon2 excluded), {len(events)} events")
    print(f"  p50 {e50*1000:7.3f} ms   p99 {e99*1000:7.3f} ms")
    print(f"  limit: raw Ed25519 sign + SQLite insert/commit (synchronous=FULL): p50 {l50*1000:7.3f} ms   p99 {l99*1000:7.3f} ms")
    print(f"  ratio p50 {e50/l50:5.2f} (goal <= 1.5)   ratio p99 {e99/l99:5.2f}   (samples interleaved)")
    print(f"  CPU time of this thread (argon2 excluded): event p50 {c50*1000:7.3f} ms, limit p50 {lc50*1000:7.3f} ms, ratio {c50/lc50:5.2f}")
    a50, _ = percentiles(argon)
    r50, r99 = percentiles(rest)
    print(f"login: argon2 verify p50 {a50*1000:7.1f} ms; everything else p50 {r50*1000:6.2f} ms p99 {r99*1000:6.2f} ms; "
          f"rest/argon2 = {r50/a50:5.1%} (goal < 5%)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
