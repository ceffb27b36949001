"""Audit export of N records (CSV, signatures checked) vs a raw SQLite read of the same rows.

Run: python bench/bench_export.py [N]   (default 100,000)
"""

from __future__ import annotations

import resource
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import rate, report  # noqa: E402
from kiosk.domain.audit import actor, audit_row  # noqa: E402
from kiosk.domain.clock import FakeClock  # noqa: E402
from kiosk.services import audit_export as ax  # noqa: E402
from storage.audit_local import LocalAuditSource  # noqa: E402
from storage.keyfile import load_or_create_identity  # noqa: E402
from storage.local_store import LocalStore  # noqa: E402


def main(n: int = 100_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        clock = FakeClock()
        store = LocalStore.open(data, load_or_create_identity(data, "bench-1"), clock)
        body = {"actor": actor("jane.op", "Jane Operator", "operator"), "batch_id": "B-1", "step_id": "weigh",
                "new": {"net_kg": "12.503"}}
        for _ in range(n // 500):
            clock.advance(30)
            store.append_many([("step.signed", body)] * 500)
        store.close()
        db = data / "kiosk.db"
        total = sqlite3.connect(db).execute("SELECT count(*) FROM records").fetchone()[0]

        def raw_read() -> None:
            conn = sqlite3.connect(db)
            for _ in conn.execute("SELECT raw, sig, hash FROM records ORDER BY ts, chain, seq"):
                pass
            conn.close()

        limit = rate(total, raw_read)
        from bench.bench_chain import raw_verify

        verify_limit = raw_verify(20_000)
        source = LocalAuditSource(db)
        out = Path(tmp) / "audit.csv"
        csv_rate = rate(total, lambda: ax.write_csv(
            (audit_row(r, d.hex()) for r, _, _, d in ax.matching(source, ax.AuditFilter())), out))
        source.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"audit export, {total} records (signatures checked while streaming); peak RSS {peak_mb:.0f} MB")
    report("export CSV (records/s)", csv_rate, "rec/s", "raw SQLite read of the same rows", limit)
    report("export CSV (records/s)", csv_rate, "rec/s", "raw Ed25519 verify loop", verify_limit)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
