"""The ingest worker as a service: ingest, then sleep until kiosks push again.

On PostgreSQL the worker LISTENs on ``kiosk_inbox`` (migration c0003 makes
every inbox insert notify it), so a pushed record is ingested at once without
busy polling; a slow fallback poll covers a lost connection or notification.
It LISTENs before each pass, so a push that lands during a pass is never
missed. On SQLite (no notifications) it polls.

Errors of one pass (the database restarting, a network cut) are reported
and retried after the poll interval; the worker keeps running.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.engine import make_url

from storage.central import CentralStore, IngestReport

CHANNEL = "kiosk_inbox"


@dataclass(frozen=True)
class LoopEvent:
    """What the loop tells its caller after each pass: a report, or the error that stopped the pass."""

    report: IngestReport | None = None
    error: str | None = None
    woken_by: str = "start"   # start | notify | poll


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Listener:
    """A dedicated autocommit connection LISTENing on the inbox channel; reconnects when it is lost."""

    def __init__(self, url: str) -> None:
        self.url = _libpq_url(url)
        self.conn = None

    def ensure(self) -> None:
        if self.conn is None or self.conn.closed:
            import psycopg

            self.conn = psycopg.connect(self.url, autocommit=True)
            self.conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> bool:
        """True when a notification arrived within ``timeout`` (all queued ones are drained)."""
        got = False
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            got = True
        if got:
            for _ in self.conn.notifies(timeout=0):
                pass
        return got

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


BATCH = 2000  # rows per chain transaction: fewer commits and statements per record, still a short lock


def run_ingest_loop(store: CentralStore, *, poll_s: float = 30.0, batch: int = BATCH,
                    stop: threading.Event | None = None,
                    on_event: Callable[[LoopEvent], None] = lambda e: None) -> None:
    """Run until ``stop`` is set. ``poll_s`` is the fallback (PostgreSQL) or the interval (SQLite)."""
    stop = stop or threading.Event()
    listener = _Listener(store.url) if store.pg else None
    woken_by = "start"
    try:
        while not stop.is_set():
            try:
                if listener is not None:
                    listener.ensure()  # before the pass: a push during the pass still wakes the next wait
                on_event(LoopEvent(report=store.ingest_all(batch), woken_by=woken_by))
            except Exception as exc:  # noqa: BLE001 - one failed pass must not end the service
                if listener is not None:
                    listener.close()
                on_event(LoopEvent(error=_describe(exc), woken_by=woken_by))
                stop.wait(poll_s)
                woken_by = "poll"
                continue
            woken_by = _sleep(listener, poll_s, stop)
    finally:
        if listener is not None:
            listener.close()


def _sleep(listener: _Listener | None, poll_s: float, stop: threading.Event) -> str:
    """Wait for a notification (in short slices, so ``stop`` is honoured) or the poll interval."""
    deadline = time.monotonic() + poll_s
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return "poll"
        if listener is None:
            stop.wait(min(left, 0.5))
            continue
        try:
            if listener.wait(min(left, 0.5)):
                return "notify"
        except Exception:  # noqa: BLE001 - a lost listener: reconnect on the next pass, poll meanwhile
            listener.close()
            stop.wait(min(left, 0.5))
    return "stop"


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    for marker in ("postgresql://", "postgresql+psycopg://", "password="):
        if marker in text:
            text = text.split(marker)[0] + "<hidden>"
    return f"{type(exc).__name__}: {text[:200]}"
