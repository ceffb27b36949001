"""Power loss: a child signing in a loop is SIGKILLed at random points; nothing reported is lost.

20 kills in CI; the long profile (`pytest -m soak`) does 200. After each kill the
store opens, verify passes, every record the child reported as committed is
there, and no half record exists.
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


def run_kills(tmp_path, kills: int, seed: int) -> None:
    rnd = random.Random(seed)
    data = tmp_path / "data"
    reported: dict[int, str] = {}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(data)], stdout=subprocess.PIPE, text=True,
                                 cwd=root, env={**os.environ, "PYTHONPATH": root})
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rnd.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
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


@pytest.mark.req("A11-16")
@pytest.mark.req("P11-10c")
def test_sigkill_while_signing_loses_nothing_reported(tmp_path):
    run_kills(tmp_path, kills=20, seed=11)


@pytest.mark.soak
@pytest.mark.req("A11-16")
def test_sigkill_200_times(tmp_path):
    run_kills(tmp_path, kills=200, seed=7)
