"""Resident memory of the kiosk's headless paths over a large local store.

Terminals are thin clients: with a 1M-record store, opening the store,
verifying the whole chain and exporting it must stay under 150 MB RSS,
because every path streams in batches. Each step runs in a fresh process
so its peak RSS is its own. The store holds 50,000 batches (a terminal's
years of work) and 100,000 open alerts (every failed sign-in at every
terminal of a site, pulled with the directory, over a few years), so the
worklist's page, its go-to-batch (G) and the supervisor screen's alerts are
measured over them: they read one page through an index, never everything;
so is acknowledging all 100,000 together, 5,000 to a transaction.

Run: python bench/bench_memory.py [N]    (default 1,000,000; builds the store once in /tmp)
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LIMIT_MB = 150
BATCHES_PER_RECORD = 1 / 20  # 50,000 batches in a 1M-record store
ALERTS_PER_RECORD = 1 / 10   # 100,000 open alerts in it


def build(data: Path, n: int) -> None:
    from kiosk.domain.audit import actor
    from kiosk.domain.clock import FakeClock
    from storage.keyfile import load_or_create_identity
    from storage.local_store import LocalStore

    clock = FakeClock()
    store = LocalStore.open(data, load_or_create_identity(data, "bench-mem"), clock)
    body = {"actor": actor("jane.op", "Jane Operator", "operator"), "batch_id": "B-1", "step_id": "weigh",
            "new": {"net_kg": "12.503"}}
    batches, alerts = int(n * BATCHES_PER_RECORD), int(n * ALERTS_PER_RECORD)
    done = store.head().seq
    while done < n - batches - alerts - 10:
        clock.advance(1)
        store.append_many([("step.signed", body)] * 1000)
        done = store.head().seq
    store.close()
    _add_listings(data, clock, batches, alerts)


def _add_listings(data: Path, clock, batches: int, alerts: int) -> None:
    """Batches and alerts as the projector stores them (the records above are only bulk: no projector reads them)."""
    from kiosk.app import build_kiosk, shipped_recipes
    from kiosk.config import KioskConfig
    from kiosk.domain.audit import actor, target
    from kiosk.domain.passwords import PasswordHasher
    from kiosk.services.auth import Actor

    kiosk = build_kiosk(KioskConfig(), data, clock, device_id="bench-mem",
                        hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    kiosk.auth.bootstrap("site.admin", "Ada Admin")
    admin = Actor("site.admin", "Ada Admin", "admin")
    for path in shipped_recipes():
        kiosk.signing.register_recipe_file(path, admin.body(), "bench")
    recipe = kiosk.signing.recipe("buffer-prep@4")
    for start in range(0, batches, 1000):
        clock.advance(60)
        kiosk.store.append_many([("batch.created", {
            "actor": actor("sam.sup", "Sam Supervisor", "supervisor"), "target": target("batch", bid),
            "batch_id": bid, "recipe_key": recipe.key, "recipe_hash": recipe.content_hash,
            "new": {"recipe": recipe.key}}) for bid in (f"PB-M{i:07d}" for i in range(start, min(batches, start + 1000)))])
    for start in range(0, alerts, 1000):
        clock.advance(60)
        kiosk.store.append_many([("alert.raised", {
            "alert_id": f"bench-{i:07d}", "kind": "auth.bad_password", "severity": "info",
            "message": f"failed sign-in (bad password) for user id 'ana.op' on line-{i % 30}; failures: 1",
            "target": {"kind": "user", "id": "ana.op"}}) for i in range(start, min(alerts, start + 1000))])
    kiosk.close()


STEPS = {
    "kiosk app (Textual)": "import asyncio; from kiosk.app import build_kiosk, make_app; from kiosk.config import KioskConfig;"
                           "from kiosk.domain.clock import FakeClock; k = build_kiosk(KioskConfig(), D, FakeClock());"
                           "app = make_app(k);\nasync def main():\n    async with app.run_test(size=(120, 40)) as pilot:\n"
                           "        await pilot.pause(1.0)\nasyncio.run(main()); print(k.store.head().seq)",
    "open store": "from storage.keyfile import load_identity; from storage.local_store import LocalStore;"
                  "from kiosk.domain.clock import FakeClock; s = LocalStore.open(D, load_identity(D), FakeClock());"
                  "print(s.head().seq)",
    # The peak is the kiosk's own (argon2's memory cost, once, when it is built); the bracket shows what a
    # worklist page and a G over 50,000 batches add to the resident set after that, and how long they take.
    "worklist page + G": "import time; from kiosk.app import build_kiosk; from kiosk.config import KioskConfig;"
                         "from kiosk.domain.clock import FakeClock; from kiosk.ui_adapter import UiWork;"
                         "rss = lambda: int([l.split()[1] for l in open('/proc/self/status') "
                         "if l.startswith('VmRSS')][0]) / 1024;"
                         "k = build_kiosk(KioskConfig(), D, FakeClock()); w = UiWork(k); r0 = rss(); "
                         "t = time.perf_counter(); rows, total = w.batch_page(0, 50); "
                         "found = w.find_batch('pb-m0000123'); t = time.perf_counter() - t;"
                         "print(f'{total} batches, page of {len(rows)} and G in {t * 1000:.0f} ms,"
                         " RSS +{rss() - r0:.1f} MB')",
    # Its peak holds Textual's import (the screen's ALERTS_SHOWN), as the kiosk app's does.
    "supervisor: open alerts": "import time; from kiosk.app import build_kiosk; from kiosk.config import KioskConfig;"
                               "from kiosk.domain.clock import FakeClock; from kiosk.ui_adapter import UiWork;"
                               "from screens.supervisor import ALERTS_SHOWN;"
                               "rss = lambda: int([l.split()[1] for l in open('/proc/self/status') "
                               "if l.startswith('VmRSS')][0]) / 1024;"
                               "k = build_kiosk(KioskConfig(), D, FakeClock()); s = UiWork(k); r0 = rss(); "
                               "t = time.perf_counter(); rows, total = s.open_alerts(ALERTS_SHOWN); "
                               "t = time.perf_counter() - t;"
                               "print(f'{total} open alerts, newest {len(rows)} in {t * 1000:.0f} ms,"
                               " RSS +{rss() - r0:.1f} MB')",
    # On a copy of the store (the cached one keeps its open alerts): every one of them acknowledged together, a
    # transaction of 5,000 at a time; the bracket shows what that adds to the resident set and how long it takes.
    # The clock is put past the store's last record (a clock behind it would add a clock alert to each record).
    "supervisor: acknowledge all alike": "import shutil, tempfile, time; from kiosk.app import build_kiosk;"
                                         "from kiosk.config import KioskConfig; from kiosk.domain.clock import FakeClock;"
                                         "from kiosk.services.auth import Actor;"
                                         "rss = lambda: int([l.split()[1] for l in open('/proc/self/status') "
                                         "if l.startswith('VmRSS')][0]) / 1024;"
                                         "t = tempfile.mkdtemp(dir=D.parent); C = Path(t) / 'copy'; "
                                         "shutil.copytree(D, C); c = FakeClock(); c.advance(30 * 86400); "
                                         "k = build_kiosk(KioskConfig(), C, c); "
                                         "r0 = rss(); t0 = time.perf_counter(); "
                                         "n = k.auth.acknowledge_alike(Actor('site.admin', 'Ada Admin', 'admin'), "
                                         "'auth.bad_password', '9999-12-31T23:59:59.999999Z', 'bench: all at once'); "
                                         "t0 = time.perf_counter() - t0; left = k.auth.open_alerts(1)[1]; k.close(); "
                                         "shutil.rmtree(t); print(f'{n} acknowledged in {t0:.1f} s, {left} left open,"
                                         " RSS +{rss() - r0:.1f} MB')",
    # A pull with nothing new resets only what can differ from the base; against it, the whole rebuild every
    # pull did before 0.5.0, on the same documents (the step makes the store's base a copy of its directory).
    "directory pull": "import time; from kiosk.app import build_kiosk; from kiosk.config import KioskConfig;"
                      "from kiosk.domain.clock import FakeClock; from storage.directory_pull import apply_directory;"
                      "k = build_kiosk(KioskConfig(), D, FakeClock()); s = k.store; head = s.head().seq\n"
                      "with s.side_transaction(rewrites_directory=True) as db:\n"
                      "    db.execute('INSERT OR IGNORE INTO central_directory (kind, key, doc, version) "
                      "SELECT kind, key, doc, seq FROM directory')\n"
                      "def pull(whole):\n"
                      "    if whole:\n"
                      "        with s.side_transaction(rewrites_directory=True) as db: db.execute('DELETE FROM directory')\n"
                      "    t = time.perf_counter(); apply_directory(s, [], publication_seq=0, version=0, own_upto=head)\n"
                      "    return time.perf_counter() - t\n"
                      "pull(False); p = min(pull(False) for _ in range(3)); w = min(pull(True) for _ in range(3));"
                      "print(f'{k.directory.count(\"batch\") + k.directory.count(\"alert\")} batches and alerts:"
                      " pull {p:.2f} s, whole rebuild {w:.2f} s, ratio {p / w:.2f}')",
    "verify chain": "from storage.verify_local import verify_local_store; r = verify_local_store(D); print(r.ok, r.records)",
    # Written beside the store under this process's id (the bench smoke test may run beside a full run), then removed.
    "export audit csv": "import os; from kiosk.services import audit_export as ax; from kiosk.domain.audit import "
                        "audit_row; from storage.audit_local import LocalAuditSource;"
                        "s = LocalAuditSource(D / 'kiosk.db'); out = D.parent / f'out-{os.getpid()}.csv';"
                        "print(ax.write_csv((audit_row(r, d.hex()) for r, _, _, d in ax.matching(s, ax.AuditFilter())),"
                        " out)); out.unlink()",
}


def measure(data: Path, code: str) -> tuple[float, float, str]:
    # VmHWM (peak resident set) is per process image; ru_maxrss can carry the parent's peak over exec.
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from pathlib import Path; D = Path({str(data)!r});"
              f"{code}; print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    return int(out[-1]) / 1024, time.perf_counter() - start, " ".join(out[:-1])


def cache_dir(n: int) -> Path:
    """The built store is cached between runs, keyed by the schema head: worktrees and versions
    with another local schema must never open each other's cache (a newer one is refused)."""
    import tempfile

    from storage.migrate import _script

    head = _script("local").get_current_head()
    checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"kiosk-bench-mem-{n}-{head}-{checkout}"


def main(n: int = 1_000_000) -> None:
    data = cache_dir(n)
    if not (data / "kiosk.db").exists():
        print(f"building a {n:,}-record store in {data} (once)...")
        build(data, n)
    baseline, _, _ = measure(data, "import kiosk")
    print(f"local store with {n:,} records; each step in a fresh process; limit {LIMIT_MB} MB RSS")
    width = max(map(len, STEPS))
    for name, code in STEPS.items():
        rss, secs, out = measure(data, code)
        print(f"{name:<{width}} peak RSS {rss:7.1f} MB  (interpreter alone {baseline:5.1f} MB)  "
              f"ratio {rss / LIMIT_MB:4.2f} of limit  {secs:6.1f} s  [{out}]")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
