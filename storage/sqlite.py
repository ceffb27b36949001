"""SQLite engines with the durability rules every kiosk file store needs.

WAL so readers never block the writer; synchronous=FULL so a committed
signature survives a power cut; BEGIN IMMEDIATE on the write engine so
"read the head, append" holds the write lock from the first statement and two
processes can never fork a chain.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


class StoreUnavailable(Exception):
    """The store cannot be written or read right now; nothing was changed."""


def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 30000")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def sqlite_engine(path: Path, *, write: bool) -> Engine:
    engine = create_engine(
        f"sqlite+pysqlite:///{path}",
        pool_size=5 if not write else 1,
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    event.listen(engine, "connect", _pragmas)

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001 - SQLAlchemy callback
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def explain_operational_error(exc: BaseException, where: Path) -> StoreUnavailable:
    text = str(getattr(exc, "orig", exc)).lower()
    if "disk is full" in text or "disk i/o error" in text:
        msg = f"{where}: the disk is full or failing; nothing was saved. Free space, then try again."
    elif "readonly" in text or "read-only" in text:
        msg = f"{where}: the data directory is read-only; nothing was saved. Ask an admin to restore write access."
    elif "locked" in text or "busy" in text:
        msg = f"{where}: the store is busy in another process; nothing was saved. Try again."
    elif "unable to open" in text:
        msg = f"{where}: the store cannot be opened; check that the data directory exists and is writable."
    else:
        msg = f"{where}: the store reported an error ({text}); nothing was saved."
    return StoreUnavailable(msg)
