"""Local chain: append (one durable transaction per record) and verify throughput.

Limits measured in the same run on the same disk:
- append vs a raw sqlite3 loop (same pragmas, one INSERT + commit per row) plus
  a raw Ed25519 sign per row: the least any signed, durable append can cost;
- verify vs a raw Ed25519 verify loop: verification is signature-bound.

Run: python bench/bench_chain.py [N]
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench._common import rate, report  # noqa: E402
from kiosk.domain.clock import FakeClock  # noqa: E402
from storage.keyfile import load_or_create_identity  # noqa: E402
from storage.local_store import LocalStore  # noqa: E402
from storage.verify_local import verify_local_store  # noqa: E402

BODY = {"batch": "B-2026-0042", "step": "weigh-api", "values": {"net_kg": "12.503"}, "meaning": "Performed",
        "printed_name": "Jane Operator", "user_id": "jane.op", "role": "operator"}


def raw_sqlite_plus_sign(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, raw BLOB, sig BLOB)")
    key = Ed25519PrivateKey.generate()
    payload = os.urandom(400)

    def loop() -> None:
        for i in range(n):
            sig = key.sign(payload)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", (i, payload, sig))
            conn.execute("COMMIT")

    result = rate(n, loop)
    conn.close()
    return result


def raw_verify(n: int) -> float:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    msg = os.urandom(48)
    sig = key.sign(msg)
    return rate(n, lambda: [pub.verify(sig, msg) for _ in range(n)])


def main(n: int = 3000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        limit_append = raw_sqlite_plus_sign(tmp / "raw.db", n)
        data = tmp / "data"
        clock = FakeClock()
        store = LocalStore.open(data, load_or_create_identity(data, "bench-1"), clock)

        def appends() -> None:
            for _ in range(n):
                clock.advance(0.01)
                store.append("step.signed", BODY)

        append_rate = rate(n, appends)
        store.close()
        limit_verify = raw_verify(n)
        total = n + 1 + n // 256
        verify_rate = rate(total, lambda: verify_local_store(data))
    print(f"local chain, {n} records, synchronous=FULL, one transaction per record")
    report("append (records/s)", append_rate, "rec/s", "raw sqlite insert+commit + sign", limit_append)
    report("verify (records/s)", verify_rate, "rec/s", "raw Ed25519 verify loop", limit_verify)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
