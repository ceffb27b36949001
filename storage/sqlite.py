"""SQLite engines with the durability rules every kiosk file store needs.

WAL so readers never block the writer; synchronous=FULL so a committed
signature survives a power cut; BEGIN IMMEDIATE on the write engine so
"read the head, append" holds the write lock from the first statement and two
processes can never fork a chain.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool


class StoreUnavailable(Exception):
    """The store cannot be written or read right now; nothing was changed."""


def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 30000")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA foreign_keys = ON")
    # Deleted and overwritten content is zeroed, so a purged draft that held a password is not left
    # readable in the file's free space. Debian's SQLite is built with this on; others are not.
    cur.execute("PRAGMA secure_delete = ON")
    cur.close()


def sqlite_engine(path: Path, *, write: bool, create: bool = True) -> Engine:
    """``create=False``: a missing file is an error ("unable to open"), never a new, empty database."""
    pool_size = 5 if not write else 1
    if create:
        engine = create_engine(f"sqlite+pysqlite:///{path}", pool_size=pool_size,
                               connect_args={"check_same_thread": False, "timeout": 30})
    else:
        # A URI with mode=rw is how SQLite is told not to create; given to sqlite3 as it is, because a
        # SQLAlchemy URL would decode its escapes and a '#' or '?' in the path would cut it short.
        uri = Path(path).resolve().as_uri() + "?mode=rw"
        engine = create_engine("sqlite+pysqlite://", poolclass=QueuePool, pool_size=pool_size,
                               creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30))
    event.listen(engine, "connect", _pragmas)

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001 - SQLAlchemy callback
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


# What a failed write can raise: SQLAlchemy wraps errors from statements it runs, but the hot
# append path talks to the DB-API cursor directly, so sqlite3's own errors arrive unwrapped.
WRITE_ERRORS = (sa_exc.OperationalError, sqlite3.OperationalError)


def _directory_read_only(directory: Path) -> str | None:
    """Why ``directory`` cannot be written, or None when it looks writable (or does not exist).

    Only called on an error path. The last check really creates a file: a file
    system that went read-only after an error (ext4 errors=remount-ro) still
    shows "rw" in its mount flags, and only a write tells.
    """
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "its file system is mounted read-only"
    except OSError:
        return None
    if not os.access(directory, os.W_OK):
        return "this account has no write permission on it"
    probe = directory / f".write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return "its file system turned read-only, usually after a disk error"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "this account has no write permission on it"
        return None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None


def explain_operational_error(exc: BaseException, where: Path) -> StoreUnavailable:
    """Turn a database error into a message an operator or admin can act on.

    The directory is inspected as well as the error text, because SQLite
    reports a file system that went read-only under a running kiosk as a
    plain I/O error, and a store that cannot be re-opened as "unable to open".
    """
    text = str(getattr(exc, "orig", exc)).lower()
    directory = Path(where).parent
    read_only = _directory_read_only(directory)
    if "disk is full" in text or "database or disk is full" in text:
        msg = f"{where}: the disk is full; nothing was saved. Ask an admin to free space, then try again."
    elif read_only is not None or "readonly" in text or "read-only" in text:
        why = f" ({read_only})" if read_only else ""
        msg = (f"{where}: the data directory is read-only{why}; nothing was saved. "
               "Ask an admin to restore write access.")
    elif "disk i/o error" in text:
        msg = f"{where}: the disk reported an I/O error (failing disk?); nothing was saved. Ask an admin."
    elif "locked" in text or "busy" in text:
        msg = f"{where}: the store is busy in another process; nothing was saved. Try again."
    elif "unable to open" in text:
        if not directory.is_dir():
            msg = f"{where}: the store cannot be opened: the data directory {directory} does not exist."
        else:
            msg = f"{where}: the store cannot be opened; check that the data directory is readable and writable."
    else:
        msg = f"{where}: the store reported an error ({text}); nothing was saved."
    return StoreUnavailable(msg)
