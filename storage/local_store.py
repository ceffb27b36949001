"""The kiosk's local store: its device chain (also the sync outbox) and caches.

Appending is one write transaction that reads the head, seals the record and
inserts it, so seq/prev can never fork even with several writer processes.
A caller is told a record exists only after its commit returned, which with
synchronous=FULL means it is on disk.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from sqlalchemy.engine import Engine

from kiosk.domain.chain import CHAIN_OPENED, CHECKPOINT

CLOCK_OBSERVED = "clock.observed"
from kiosk.domain.clock import Clock, format_ts, parse_ts
from kiosk.domain.clock_trust import went_backwards
from kiosk.domain.keys import b64url
from kiosk.domain.merkle import MerkleFrontier
from kiosk.domain.records import GENESIS_PREV, Record, SignedRecord, parse_raw, seal
from storage import migrate
from storage.doc_cache import DocumentCache
from storage.doc_json import dump_doc, load_doc
from storage.keyfile import DeviceIdentity
from storage.sqlite import WRITE_ERRORS, StoreUnavailable, explain_operational_error, sqlite_engine

DB_FILE = "kiosk.db"
READ_BATCH = 1000


class Projector(Protocol):
    """Updates a derived table from a record inside the record's own transaction (DB-API connection).

    ``reader`` is the transaction's directory reader when the store has one
    (the one ``append_checked`` hands to its callback), so a projector reads
    through, and writes through, the same per-transaction document cache.
    """

    def __call__(self, db: sqlite3.Connection, record: SignedRecord, reader: Any = None) -> None: ...


Items = Sequence[tuple[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class CheckpointPolicy:
    every_records: int = 256
    every_s: int = 300
    # A chain with nothing written for this long gets a checkpoint when it syncs (checkpoint_if_idle); None: never.
    idle_every_s: int | None = None


@dataclass(frozen=True)
class Head:
    chain: str
    seq: int
    hash_hex: str
    synced_upto: int


@dataclass(frozen=True)
class StoredRow:
    chain: str
    seq: int
    raw: bytes
    sig: bytes
    hash: bytes
    type: str
    ts: str


class LocalStore:
    def __init__(
        self,
        data_dir: Path,
        identity: DeviceIdentity,
        clock: Clock,
        *,
        checkpoints: CheckpointPolicy = CheckpointPolicy(),
        random_bytes: Callable[[int], bytes] = os.urandom,
        projectors: Sequence[Projector] = (),
        registration: Mapping[str, str] | None = None,
        txn_reader: Callable[[sqlite3.Connection, DocumentCache], Any] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILE
        self.identity = identity
        self.clock = clock
        self.checkpoints = checkpoints
        self._random = random_bytes
        self.projectors: list[Projector] = list(projectors)
        self._registration = dict(registration or {})
        self._txn_reader = txn_reader
        self._write: Engine = sqlite_engine(self.path, write=True)
        self._read: Engine = sqlite_engine(self.path, write=False)
        # One long-lived DB-API write connection, used directly: appends are
        # serialised here anyway (and across processes by BEGIN IMMEDIATE), and
        # SQLAlchemy's per-statement and per-transaction bookkeeping is most of
        # the Python cost of a signature. The engines remain for migrations and reads.
        self._write_conn: Any = None
        self._write_lock = threading.Lock()
        self._directory_listeners: list[Callable[[], None]] = []
        # What the write connection last saw: the chain state and the directory
        # documents it read or wrote. Trusted only while PRAGMA data_version says
        # no other connection (process, restore, the read side) has committed
        # since: then a signing transaction reads nothing it already knows.
        self._cached_state: _State | None = None
        self._docs = DocumentCache()
        self._data_version: int | None = None
        self._local = threading.local()

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, data_dir: Path, identity: DeviceIdentity, clock: Clock, **kwargs: Any) -> "LocalStore":
        store = cls(data_dir, identity, clock, **kwargs)
        change = store.migrate()
        store._open_chain()
        if change is not None and change.before is not None:
            store.append(migrate.SCHEMA_MIGRATED, change.record_body())
        return store

    def migrate(self) -> migrate.SchemaChange | None:
        try:
            with self._write.begin() as conn:
                return migrate.upgrade(conn, "local", str(self.path))
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None

    def _open_chain(self) -> None:
        """Start this identity's chain with a record that carries its public key."""
        if self.head() is not None:
            return
        body = {
            "device_id": self.identity.device_id,
            "epoch": self.identity.epoch,
            "public_key": b64url(self.identity.key.public.raw),
            "kid": self.identity.key.kid,
            "fingerprint": self.identity.key.public.fingerprint,
            "hostname": socket.gethostname()[:100],
            # The registration request: where the admin who compares the fingerprint will find this terminal.
            **{k: str(v)[:100] for k, v in self._registration.items() if k in ("site", "location")},
        }
        self.append(CHAIN_OPENED, body, _allow_genesis=True)

    def close(self) -> None:
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None
            self._forget()
        reader = getattr(self._local, "db", None)
        if reader is not None:
            reader.close()
            self._local.db = None
        self._write.dispose()
        self._read.dispose()

    # -- writing ---------------------------------------------------------
    @property
    def chain(self) -> str:
        return self.identity.chain

    def append(self, type: str, body: Mapping[str, Any], *, _allow_genesis: bool = False) -> SignedRecord:
        return self.append_many([(type, body)], _allow_genesis=_allow_genesis)[0]

    def append_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]], *, _allow_genesis: bool = False
    ) -> list[SignedRecord]:
        """Append records in one durable transaction; all or nothing."""
        if not items:
            return []
        return self._append(lambda _reader: items, _allow_genesis)

    def append_checked(self, build: Callable[[Any], Items]) -> list[SignedRecord]:
        """Append the records ``build`` returns, deciding them inside the write transaction.

        ``build`` runs after the write lock is taken and before anything is
        written, with a directory reader over this transaction: what it reads
        is exactly the state its records will apply to, and no other writer
        (thread or process) can change it before the commit. Whatever it
        raises aborts the append with nothing written.
        """
        if self._txn_reader is None:
            raise TypeError("this store was opened without a transaction reader")
        return self._append(build, False)

    def _append(self, build: Callable[[Any], Items], _allow_genesis: bool) -> list[SignedRecord]:
        try:
            with self._write_lock, self._transaction() as db:
                state = self._load_state(db)
                if state is None and not _allow_genesis:
                    raise StoreUnavailable(f"{self.path}: the chain has not been opened")
                reader = None
                if self._txn_reader is not None:
                    reader = self._txn_reader(db, self._docs)
                    reader.high_ts = state.high_ts if state is not None else None
                items = build(reader)
                if not items:
                    self._cached_state = state
                    return []
                out = []
                for type_, body in items:
                    if type_ in (CHAIN_OPENED, CHECKPOINT) and not _allow_genesis:
                        raise ValueError(f"{type_} records are written by the store itself")
                    state, signed = self._append_one(db, state, type_, body, reader)
                    out.append(signed)
                if state is not None:
                    state = self._maybe_checkpoint(db, state)
                    self._save_state(db, state)
                    state.exists = True
                self._cached_state = state
            return out
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None

    @contextlib.contextmanager
    def side_transaction(self, *, rewrites_directory: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction for the store's mutable side tables (drafts, sync state, pulled directory),
        on the one write connection and serialised with appends.

        ``rewrites_directory``: the caller changes the directory table wholesale (a directory pull), so the
        write connection's document cache is dropped before and after.
        """
        try:
            with self._write_lock, self._transaction() as db:
                if rewrites_directory:
                    self._forget()
                try:
                    yield db
                finally:
                    if rewrites_directory:
                        self._forget()
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None

    def truncate_wal(self) -> bool:
        """Copy the write-ahead log into the database and empty it, so earlier versions of rewritten rows
        (a draft saved at every keystroke) are gone from disk. False when a reader kept it from finishing."""
        try:
            with self._write_lock:
                busy, _log, _done = self._writer().driver_connection.execute(
                    "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None
        return busy == 0

    def _forget(self) -> None:
        """Drop what the write connection remembers; the next transaction reads the database."""
        self._cached_state = None
        self._docs.clear()
        self._data_version = None

    def cached_documents(self, wanted: Sequence[tuple[str, str]]) -> list[Any]:
        """Directory point reads through the write connection and what it remembers.

        For reads an append follows on the same lock (signing in, signing): the
        last transaction left these documents in the cache, whereas a read
        connection finds its page cache dropped by that commit and reads the
        pages again. Documents handed out are shared: callers must not change them.
        """
        if self._txn_reader is None:
            raise TypeError("this store was opened without a transaction reader")
        try:
            with self._write_lock:
                db = self._writer().driver_connection
                try:
                    self._revalidate(db)
                    return self._txn_reader(db, self._docs).get_many(wanted)
                except BaseException:
                    self._forget()
                    raise
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None

    def _writer(self) -> Any:
        if self._write_conn is None:
            self._write_conn = self._write.raw_connection()  # the engine's connect hook sets WAL, FULL, busy timeout
        return self._write_conn

    def _revalidate(self, db: sqlite3.Connection) -> None:
        """Under the write lock: has anyone else committed since the cache was last checked?"""
        (version,) = db.execute("PRAGMA data_version").fetchone()
        if version != self._data_version or self._docs.full:
            self._forget()
            self._data_version = version

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT on the DB-API connection (the caller holds the write lock)."""
        proxy = self._writer()
        db: sqlite3.Connection = proxy.driver_connection
        committing = False
        try:
            db.execute("BEGIN IMMEDIATE")
            self._revalidate(db)
            yield db
            committing = True
            db.execute("COMMIT")
        except BaseException as exc:
            self._forget()
            healthy = not committing and not isinstance(exc, sqlite3.Error)
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                healthy = False
            if not healthy:
                # A connection that failed in the database or mid-commit (disk full, I/O error) is not reused.
                self._write_conn = None
                proxy.invalidate()
            raise

    def _load_state(self, db: sqlite3.Connection) -> "_State | None":
        cached = self._cached_state
        if cached is not None:
            # Nobody else committed since our last commit (checked in _transaction): this is the head.
            self._cached_state = None  # its frontier is changed by this transaction
            return cached
        row = db.execute(
            "SELECT head_seq, head_hash, frontier, last_checkpoint_seq, last_checkpoint_ts, high_ts "
            "FROM chain_state WHERE chain = ?",
            (self.chain,),
        ).fetchone()
        if row is None:
            return None
        seq, head_hash, frontier, cp_seq, cp_ts, high_ts = row
        merkle = MerkleFrontier.from_state(seq, load_doc(frontier))
        return _State(
            exists=True,
            seq=seq,
            head_hash=head_hash,
            frontier=merkle,
            cp_seq=cp_seq,
            cp_ts=cp_ts,
            high_ts=high_ts or cp_ts,
        )

    def _append_one(
        self, db: sqlite3.Connection, state: "_State | None", type_: str, body: Mapping[str, Any], reader: Any = None
    ) -> tuple["_State", SignedRecord]:
        now = self.clock.now()
        if state is None:
            state = _State(False, 0, GENESIS_PREV, MerkleFrontier(), 0, format_ts(now), format_ts(now))
        anomaly = went_backwards(parse_ts(state.high_ts), now, state.high_ts, format_ts(now))
        if anomaly is not None and type_ != CLOCK_OBSERVED:
            # Evidence first: the record that follows carries a time earlier than one already written.
            state, _ = self._append_one(db, state, CLOCK_OBSERVED, anomaly.body(), reader)
        signed = seal(
            self.identity.key,
            chain=self.chain,
            seq=state.seq + 1,
            prev=state.head_hash,
            type=type_,
            moment=now,
            zone=self.clock.zone,
            body=body,
            random_bytes=self._random,
        )
        db.execute(
            "INSERT INTO records (chain, seq, hash, raw, sig, id, type, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.chain, signed.record.seq, signed.hash, signed.raw, signed.sig,
             signed.record.id, type_, signed.record.ts),
        )
        state.frontier.add(signed.hash)
        state.seq = signed.record.seq
        state.head_hash = signed.hash_hex
        state.high_ts = max(state.high_ts, signed.record.ts)
        for project in self.projectors:
            project(db, signed, reader)
        return state, signed

    def checkpoint_if_idle(self) -> SignedRecord | None:
        """A checkpoint when nothing was written for ``checkpoints.idle_every_s``; None when it is not due.

        The sync calls this on an approved terminal: a terminal nobody signs on (a night, a weekend) would
        otherwise send nothing, and the central store, which hears a terminal only through its records, could
        not tell it from one that is off or cut off. The checkpoint is also a signed statement of the head at
        that time, which bounds what a truncated tail could hide.
        """
        if self.checkpoints.idle_every_s is None:
            return None
        try:
            with self._write_lock, self._transaction() as db:
                state = self._load_state(db)
                if state is None:
                    raise StoreUnavailable(f"{self.path}: the chain has not been opened")
                if (self.clock.now() - parse_ts(state.high_ts)).total_seconds() < self.checkpoints.idle_every_s:
                    self._cached_state = state
                    return None
                state, signed = self._checkpoint(db, state)
                self._save_state(db, state)
                self._cached_state = state
            return signed
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None

    def _maybe_checkpoint(self, db: sqlite3.Connection, state: "_State") -> "_State":
        pending = state.seq - state.cp_seq
        if pending <= 0:
            return state
        age = (self.clock.now() - parse_ts(state.cp_ts)).total_seconds()
        if pending < self.checkpoints.every_records and age < self.checkpoints.every_s:
            return state
        return self._checkpoint(db, state)[0]

    def _checkpoint(self, db: sqlite3.Connection, state: "_State") -> tuple["_State", SignedRecord]:
        """Append a checkpoint (the Merkle root of the chain so far) and anchor it."""
        body = {"size": state.frontier.size, "root": state.frontier.root().hex()}
        state, signed = self._append_one(db, state, CHECKPOINT, body)  # changes no directory document
        db.execute(
            "INSERT INTO anchors (chain, seq, hash_hex, source) VALUES (?, ?, ?, 'checkpoint')",
            (self.chain, signed.record.seq, signed.hash_hex),
        )
        state.cp_seq = signed.record.seq
        state.cp_ts = signed.record.ts
        return state, signed

    def _save_state(self, db: sqlite3.Connection, state: "_State") -> None:
        params = (state.seq, state.head_hash, dump_doc(state.frontier.state()), state.cp_seq, state.cp_ts,
                  state.high_ts, self.chain)
        if state.exists:
            db.execute(
                "UPDATE chain_state SET head_seq=?, head_hash=?, frontier=?, last_checkpoint_seq=?, "
                "last_checkpoint_ts=?, high_ts=? WHERE chain=?",
                params,
            )
        else:
            db.execute(
                "INSERT INTO chain_state (head_seq, head_hash, frontier, last_checkpoint_seq, "
                "last_checkpoint_ts, high_ts, chain) VALUES (?, ?, ?, ?, ?, ?, ?)",
                params,
            )

    def mark_synced(self, upto: int, receipt_hash_hex: str) -> None:
        """Record a central receipt: the outbox marker moves, nothing is deleted."""
        try:
            with self._write_lock, self._transaction() as db:
                db.execute(
                    "UPDATE chain_state SET synced_upto = ? WHERE chain = ? AND synced_upto < ?",
                    (upto, self.chain, upto),
                )
                db.execute(
                    "INSERT OR IGNORE INTO anchors (chain, seq, hash_hex, source) VALUES (?, ?, ?, 'receipt')",
                    (self.chain, upto, receipt_hash_hex),
                )
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None

    # -- reading ---------------------------------------------------------
    def head(self, chain: str | None = None) -> Head | None:
        return read_head(self._read, chain or self.chain)

    def iter_rows(self, chain: str | None = None, after_seq: int = 0, upto: int | None = None,
                  batch: int = READ_BATCH) -> Iterator[StoredRow]:
        return iter_rows(self._read, chain or self.chain, after_seq, upto, batch)

    def newest(self, type: str) -> Record | None:
        row = self._read_one("SELECT raw FROM records INDEXED BY records_type WHERE type = ? AND chain = ? "
                             "ORDER BY seq DESC LIMIT 1", (type, self.chain))
        return None if row is None else parse_raw(bytes(row[0]))[0]

    def _read_one(self, sql: str, params: tuple) -> tuple | None:
        """One row from this thread's own read connection (WAL: sees the latest commit, never blocks the writer)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._read.raw_connection()
        cur = db.cursor()
        try:
            return cur.execute(sql, params).fetchone()
        finally:
            cur.close()

    def device_status(self) -> str | None:
        """This terminal's registration status as last observed from the central store."""
        row = self._read_one("SELECT doc FROM directory WHERE kind = 'device' AND key = ?", (self.chain,))
        return None if row is None else load_doc(row[0])["status"]

    def clock_suspect(self, reader: Any = None) -> bool:
        """True while the clock reads earlier than a record this chain already holds, or the last sync
        found it too far from the central clock.

        Called on the signing path. With the reader of an append transaction it answers for the state that
        transaction writes onto (no statement when the write connection already knows it); without, it is
        one statement on this thread's read connection (WAL: the latest commit).
        """
        high_ts = getattr(reader, "high_ts", None)
        if high_ts is not None:
            trust = reader.get("clock", self.chain)
        else:
            high_ts, text = self._read_one(
                "SELECT (SELECT high_ts FROM chain_state WHERE chain = ?), "
                "(SELECT doc FROM directory WHERE kind = 'clock' AND key = ?)",
                (self.chain, self.chain),
            )
            trust = None if text is None else load_doc(text)
        if trust is not None and trust.get("skewed"):
            return True
        if high_ts is None:
            return False
        return went_backwards(parse_ts(high_ts), self.clock.now(), high_ts, "") is not None

    def on_directory_change(self, listener: Callable[[], None]) -> None:
        """Readers that cache directory documents hear when a pull replaced the directory wholesale."""
        self._directory_listeners.append(listener)

    def directory_changed(self) -> None:
        for listener in self._directory_listeners:
            listener()

    def read_engine(self) -> Engine:
        return self._read


@dataclass
class _State:
    exists: bool
    seq: int
    head_hash: str
    frontier: MerkleFrontier
    cp_seq: int
    cp_ts: str
    high_ts: str


def read_head(engine: Engine, chain: str) -> Head | None:
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT head_seq, head_hash, synced_upto FROM chain_state WHERE chain = ?", (chain,)
        ).first()
    return None if row is None else Head(chain, row[0], row[1], row[2])


def iter_rows(engine: Engine, chain: str, after_seq: int = 0, upto: int | None = None,
              batch: int = READ_BATCH) -> Iterator[StoredRow]:
    """Stream a chain in seq order, one short read transaction per batch."""
    for rows in iter_row_batches(engine, chain, after_seq, upto, batch):
        yield from rows


def iter_row_batches(engine: Engine, chain: str, after_seq: int = 0, upto: int | None = None,
                     batch: int = READ_BATCH) -> Iterator[list[StoredRow]]:
    """``iter_rows`` as the batches it reads (verify checks each batch's signatures first, in one loop)."""
    last = after_seq
    limit = upto if upto is not None else 2**62
    while True:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT seq, raw, sig, hash, type, ts FROM records WHERE chain = ? AND seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (chain, last, limit, batch),
            ).all()
        if not rows:
            return
        yield [StoredRow(chain, seq, _as_bytes(raw), _as_bytes(sig), _as_bytes(digest), type_, ts)
               for seq, raw, sig, digest, type_, ts in rows]
        last = rows[-1][0]
        if len(rows) < batch:
            return


def _as_bytes(value: object) -> bytes:
    """Column values as bytes even if someone rewrote a BLOB as TEXT (verify must still see it)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")
