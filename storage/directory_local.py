"""The kiosk's directory cache: kept in step with the chain by a projector in the append transaction."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy.engine import Engine

from kiosk.domain import batches, directory
from kiosk.domain.records import SignedRecord
from storage.doc_cache import DocumentCache
from storage.doc_json import dump_doc, load_doc


def directory_projector(db: sqlite3.Connection, signed: SignedRecord,
                        reader: "TransactionDirectory | None" = None) -> None:
    """Apply one record's directory changes; raising aborts the whole append."""
    try:
        _project(db, signed, reader or TransactionDirectory(db))
    except (KeyError, TypeError, AttributeError) as exc:
        raise directory.DirectoryConflict(
            f"a {signed.record.type} record needs field {exc} in its body; nothing was written") from None


_UPSERT = ("INSERT INTO directory (kind, key, doc, chain, seq) VALUES (?, ?, ?, ?, ?) "
           "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc, chain = excluded.chain, seq = excluded.seq")


def _project(db: sqlite3.Connection, signed: SignedRecord, reader: "TransactionDirectory") -> None:
    get = reader.get
    record = signed.record
    if record.type in ("step.signed", "witness.signed", "step.corrected"):
        # The values are now in the record: every draft of that step is done with. Another person's typing
        # from before it would only be hidden (the step shows what is recorded), so it is not kept on disk.
        # No index on (batch_id, step_id): the table holds only unsigned work in progress, a few rows.
        db.execute("DELETE FROM drafts WHERE batch_id = ? AND step_id = ?",
                   (record.body["batch_id"], record.body["step_id"]))
    elif record.type == "batch.cancelled":  # typing for a cancelled batch would never be signed
        db.execute("DELETE FROM drafts WHERE batch_id = ?", (record.body["batch_id"],))
    changes = directory.project(record, get) + batches.project(record, get)
    if changes:
        rows = [(kind, key, dump_doc(doc), record.chain, record.seq) for kind, key, doc in changes]
        db.executemany(_UPSERT, rows)
        for (kind, key, doc), (_kind, _key, text, _chain, _seq) in zip(changes, rows):
            reader.remember(kind, key, doc, len(text))


def _many_sql(n: int) -> str:
    return "SELECT kind, key, doc FROM directory WHERE " + " OR ".join(["(kind = ? AND key = ?)"] * n)


_MANY_AT_ONCE = 4000  # pairs per statement, within SQLite's 32,766 parameters; a batch's steps fit in one


def _get_many_text(db: sqlite3.Connection, wanted: list) -> list[str | None]:
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(wanted), _MANY_AT_ONCE):
        chunk = wanted[start:start + _MANY_AT_ONCE]
        params = [part for pair in chunk for part in pair]
        found.update(((kind, key), doc) for kind, key, doc in db.execute(_many_sql(len(chunk)), params))
    return [found.get(pair) for pair in wanted]


def _get_many(db: sqlite3.Connection, wanted) -> list[dict[str, Any] | None]:
    return [None if text is None else load_doc(text) for text in _get_many_text(db, list(wanted))]


class TransactionDirectory:
    """Directory reads inside the append transaction: the state the record being written applies to.

    Reads go through ``cache``, the write connection's memory of documents it
    read or wrote (storage/doc_cache.py). The store clears it whenever another
    connection has committed since (PRAGMA data_version) and whenever a
    transaction fails, so a cached document is always the row as this
    transaction would read it. Documents handed out are shared: callers must
    not change them (the projectors copy before they change anything).
    """

    __slots__ = ("_db", "_cache", "high_ts")

    def __init__(self, db: sqlite3.Connection, cache: DocumentCache | None = None) -> None:
        self._db = db
        self._cache = DocumentCache() if cache is None else cache
        # The chain's latest record time as this transaction found it (set by the store).
        self.high_ts: str | None = None

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        pair = (kind, key)
        try:
            return self._cache[pair]
        except KeyError:
            row = self._db.execute("SELECT doc FROM directory WHERE kind = ? AND key = ?", pair).fetchone()
            return self._cache.put_text(pair, None if row is None else row[0])

    def get_many(self, wanted) -> list[dict[str, Any] | None]:
        wanted = list(wanted)
        missing = [pair for pair in wanted if pair not in self._cache]
        if missing:
            for pair, text in zip(missing, _get_many_text(self._db, missing)):
                self._cache.put_text(pair, text)
        return [self._cache[pair] for pair in wanted]

    def remember(self, kind: str, key: str, doc: dict[str, Any], text_size: int) -> None:
        """The document this transaction just wrote (``text_size``: the length of the JSON stored).

        Kept as the object the projector made, not decoded again from the
        text: a document is JSON types only (dicts, lists, strings, integers,
        booleans, None) with string keys, so the object and the text's
        decoding are equal (tests/services/test_write_cache.py checks it
        for every kind of record).
        """
        self._cache.put((kind, key), doc, text_size)

    def all(self, kind: str) -> Iterator[dict[str, Any]]:
        rows = self._db.execute("SELECT doc FROM directory WHERE kind = ? ORDER BY key", (kind,)).fetchall()
        for (doc,) in rows:
            yield load_doc(doc)


class LocalDirectory:
    """Read side of the directory cache.

    Point reads sit on the signing path, so each thread keeps one pooled
    DB-API connection instead of a checkout per read (WAL: readers never
    block the writer, and each statement sees the latest commit).
    """

    def __init__(self, engine: Engine, cached_reads: "Callable[[list], list] | None" = None) -> None:
        self.engine = engine
        self._cached_reads = cached_reads  # the store's write-connection reads (see get_many)
        self._local = threading.local()
        self._opened: list = []
        self._opened_lock = threading.Lock()

    def _db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.engine.raw_connection()
            with self._opened_lock:
                self._opened.append(db)
        return db

    def close(self) -> None:
        """Close every thread's connection: an open file keeps a data directory busy (unmount, restore)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for db in opened:
            try:
                db.invalidate()  # really close the file, do not return it to the pool
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._local = threading.local()

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self._db().driver_connection.execute(
            "SELECT doc FROM directory WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return None if row is None else load_doc(row[0])

    def get_many(self, wanted) -> list[dict[str, Any] | None]:
        """One statement for several point reads: the sign-in path's four, a batch's documents.

        An append follows them on the store's write lock, so, when the store
        offers it, they go through its write connection's document cache
        (``LocalStore.cached_documents``), which the last signature filled.
        Documents from there are shared: callers must not change them.
        """
        if self._cached_reads is not None:
            return self._cached_reads(list(wanted))
        return _get_many(self._db().driver_connection, wanted)

    def all(self, kind: str) -> Iterator[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT doc FROM directory WHERE kind = ? ORDER BY key", (kind,)).all()
        for (doc,) in rows:
            yield load_doc(doc)

    def count(self, kind: str) -> int:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM directory WHERE kind = ?", (kind,)).scalar_one()

    # -- batches, without reading them all ----------------------------------------------------------------
    # Index directory_batch_newest (migration l0005) is partial, on the literal 'batch' and this json_extract
    # expression, and named: without statistics SQLite's planner prefers the primary key and sorts every
    # batch for each page (38 ms at 50,000 batches, against 0.1 ms).

    def newest_batches(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """One page of batch documents, newest first (then by id)."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                f"SELECT doc FROM {_BATCHES} WHERE kind = 'batch' "
                f"ORDER BY {_CREATED} DESC, key LIMIT ? OFFSET ?", (max(0, limit), max(0, offset))).all()
        return [load_doc(doc) for (doc,) in rows]

    def batches_before(self, batch: dict[str, Any]) -> int:
        """How many batches come before ``batch`` in newest_batches' order: where its page starts."""
        created, key = batch["created_at"], batch["batch_id"]
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(
                f"SELECT count(*) FROM {_BATCHES} WHERE kind = 'batch' AND ({_CREATED} > ? OR "
                f"({_CREATED} = ? AND key < ?))", (created, created, key)).scalar_one()

    def batch_ids(self) -> Iterator[str]:
        """Every batch id, streamed: a lookup without case or by part of an id compares them all."""
        with self.engine.connect() as conn:
            for (key,) in conn.exec_driver_sql("SELECT key FROM directory WHERE kind = 'batch'"):
                yield key

    # -- open alerts, the same way (index directory_open_alerts, migration l0006) ---------------------------

    def open_alerts(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The newest ``limit`` alerts not acknowledged yet, and how many there are in all."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                f"SELECT doc FROM {_OPEN_ALERTS} WHERE {_OPEN} ORDER BY json_extract(doc, '$.at') DESC, key "
                "LIMIT ?", (max(0, limit),)).all()
            total = conn.exec_driver_sql(f"SELECT count(*) FROM {_OPEN_ALERTS} WHERE {_OPEN}").scalar_one()
        return [load_doc(doc) for (doc,) in rows], total

    def open_alert_ids(self, kind: str, severity: str, through: str, limit: int) -> tuple[list[str], int]:
        """The newest ``limit`` open alerts of one kind and severity raised at or before ``through`` (in the
        index's order: no sort), and how many there are in all."""
        alike = (f"FROM {_OPEN_ALERTS} WHERE {_OPEN} AND json_extract(doc, '$.kind') = ? AND "
                 "json_extract(doc, '$.severity') = ? AND json_extract(doc, '$.at') <= ?")
        with self.engine.connect() as conn:
            ids = [key for (key,) in conn.exec_driver_sql(
                f"SELECT key {alike} ORDER BY json_extract(doc, '$.at') DESC, key LIMIT ?",
                (kind, severity, through, max(0, limit)))]
            total = conn.exec_driver_sql(f"SELECT count(*) {alike}", (kind, severity, through)).scalar_one()
        return ids, total

    def open_alert_ids_about(self, kind: str, about: Mapping[str, str]) -> list[str]:
        with self.engine.connect() as conn:
            return [key for (key,) in conn.exec_driver_sql(
                f"SELECT key FROM {_OPEN_ALERTS} WHERE {_OPEN} AND json_extract(doc, '$.kind') = ? AND "
                "json_extract(doc, '$.target.kind') = ? AND json_extract(doc, '$.target.id') = ? "
                "ORDER BY json_extract(doc, '$.at'), key", (kind, about.get("kind"), about.get("id")))]


_CREATED = "json_extract(doc, '$.created_at')"
_BATCHES = "directory INDEXED BY directory_batch_newest"
_OPEN_ALERTS = "directory INDEXED BY directory_open_alerts"
_OPEN = "kind = 'alert' AND json_extract(doc, '$.acknowledged_by') IS NULL"
