"""A child process for the concurrency and kill -9 tests: an ingest worker looping ``ingest_all``.

Usage: python -m tests.storage.ingest_child URL STOP_FILE [BATCH]
It runs until STOP_FILE exists and the inbox is drained, then prints its
totals as JSON. It uses the real CentralStore, with the system clock.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from kiosk.system_clock import SystemClock
from storage.central import CentralStore
from storage.keyfile import load_central_key


def main(url: str, stop_file: str, batch: int = 500) -> None:
    store = CentralStore(url, SystemClock(), load_central_key(Path(os.environ["KIOSK_CENTRAL_KEY"])))
    totals = {"ingested": 0, "replays": 0, "quarantined": 0, "held": 0}
    print("ready", flush=True)
    try:
        while True:
            report = store.ingest_all(batch)
            for name in totals:
                totals[name] += getattr(report, name)
            if report.ingested + report.replays + report.quarantined == 0:
                if Path(stop_file).exists() and store.inbox_count() == 0:
                    break
                time.sleep(0.02)
    finally:
        store.close()
    print(json.dumps(totals), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
