"""The kiosk's local store: its device chain (also the sync outbox) and caches.

Appending is one write transaction that reads the head, seals the record and
inserts it, so seq/prev can never fork even with several writer processes.
A caller is told a record exists only after its commit returned, which with
synchronous=FULL means it is on disk.
"""

from __future__ import annotations

import contextlib
import json
import threading
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from sqlalchemy.engine import Connection, Engine

from kiosk.domain.chain import CHAIN_OPENED, CHECKPOINT

CLOCK_OBSERVED = "clock.observed"
from kiosk.domain.clock import Clock, format_ts, parse_ts
from kiosk.domain.clock_trust import went_backwards
from kiosk.domain.keys import b64url
from kiosk.domain.merkle import MerkleFrontier
from kiosk.domain.records import GENESIS_PREV, SignedRecord, seal
from storage import migrate
from storage.keyfile import DeviceIdentity
from storage.sqlite import WRITE_ERRORS, StoreUnavailable, explain_operational_error, sqlite_engine

DB_FILE = "kiosk.db"
READ_BATCH = 1000


class Projector(Protocol):
    """Updates a derived table from a record inside the record's own transaction."""

    def __call__(self, conn: Connection, record: SignedRecord) -> None: ...


@dataclass(frozen=True)
class CheckpointPolicy:
    every_records: int = 256
    every_s: int = 300


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
    ) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILE
        self.identity = identity
        self.clock = clock
        self.checkpoints = checkpoints
        self._random = random_bytes
        self.projectors: list[Projector] = list(projectors)
        self._registration = dict(registration or {})
        self._write: Engine = sqlite_engine(self.path, write=True)
        self._read: Engine = sqlite_engine(self.path, write=False)
        # One long-lived write connection: appends are serialised here anyway
        # (and across processes by BEGIN IMMEDIATE), and a pool checkout per
        # signature is measurable on the signing path.
        self._write_conn: Connection | None = None
        self._write_lock = threading.Lock()
        self._directory_listeners: list[Callable[[], None]] = []

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, data_dir: Path, identity: DeviceIdentity, clock: Clock, **kwargs: Any) -> "LocalStore":
        store = cls(data_dir, identity, clock, **kwargs)
        store.migrate()
        store._open_chain()
        return store

    def migrate(self) -> None:
        try:
            with self._write.begin() as conn:
                migrate.upgrade(conn, "local", str(self.path))
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
        try:
            with self._write_lock, self._transaction() as conn:
                state = self._load_state(conn)
                if state is None and not _allow_genesis:
                    raise StoreUnavailable(f"{self.path}: the chain has not been opened")
                out = []
                for type_, body in items:
                    if type_ in (CHAIN_OPENED, CHECKPOINT) and not _allow_genesis:
                        raise ValueError(f"{type_} records are written by the store itself")
                    state, signed = self._append_one(conn, state, type_, body)
                    out.append(signed)
                state = self._maybe_checkpoint(conn, state)
                self._save_state(conn, state)
            return out
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None

    @contextlib.contextmanager
    def side_transaction(self) -> Iterator[Connection]:
        """A write transaction for the store's mutable side tables (drafts), serialised with appends."""
        try:
            with self._write_lock, self._transaction() as conn:
                yield conn
        except WRITE_ERRORS as exc:
            raise explain_operational_error(exc, self.path) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self._write_conn is None:
            self._write_conn = self._write.connect()
        conn = self._write_conn
        try:
            with conn.begin():
                yield conn
        except BaseException:
            # A connection that failed mid-commit (disk full, I/O error) is not reused.
            self._write_conn = None
            conn.close()
            raise

    def _load_state(self, conn: Connection) -> "_State | None":
        row = conn.connection.driver_connection.execute(
            "SELECT head_seq, head_hash, frontier, last_checkpoint_seq, last_checkpoint_ts, high_ts "
            "FROM chain_state WHERE chain = ?",
            (self.chain,),
        ).fetchone()
        if row is None:
            return None
        seq, head_hash, frontier, cp_seq, cp_ts, high_ts = row
        return _State(
            exists=True,
            seq=seq,
            head_hash=head_hash,
            frontier=MerkleFrontier.from_state(seq, json.loads(frontier)),
            cp_seq=cp_seq,
            cp_ts=cp_ts,
            high_ts=high_ts or cp_ts,
        )

    def _append_one(
        self, conn: Connection, state: "_State | None", type_: str, body: Mapping[str, Any]
    ) -> tuple["_State", SignedRecord]:
        now = self.clock.now()
        if state is None:
            state = _State(False, 0, GENESIS_PREV, MerkleFrontier(), 0, format_ts(now), format_ts(now))
        anomaly = went_backwards(parse_ts(state.high_ts), now, state.high_ts, format_ts(now))
        if anomaly is not None and type_ != CLOCK_OBSERVED:
            # Evidence first: the record that follows carries a time earlier than one already written.
            state, _ = self._append_one(conn, state, CLOCK_OBSERVED, anomaly.body())
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
        # The hot path goes straight to the DB-API cursor: same transaction, less overhead.
        conn.connection.driver_connection.execute(
            "INSERT INTO records (chain, seq, hash, raw, sig, id, type, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.chain, signed.record.seq, signed.hash, signed.raw, signed.sig,
             signed.record.id, type_, signed.record.ts),
        )
        state.frontier.add(signed.hash)
        state.seq = signed.record.seq
        state.head_hash = signed.hash_hex
        state.high_ts = max(state.high_ts, signed.record.ts)
        for project in self.projectors:
            project(conn, signed)
        return state, signed

    def _maybe_checkpoint(self, conn: Connection, state: "_State") -> "_State":
        pending = state.seq - state.cp_seq
        if pending <= 0:
            return state
        age = (self.clock.now() - parse_ts(state.cp_ts)).total_seconds()
        if pending < self.checkpoints.every_records and age < self.checkpoints.every_s:
            return state
        body = {"size": state.frontier.size, "root": state.frontier.root().hex()}
        state, signed = self._append_one(conn, state, CHECKPOINT, body)
        conn.exec_driver_sql(
            "INSERT INTO anchors (chain, seq, hash_hex, source) VALUES (?, ?, ?, 'checkpoint')",
            (self.chain, signed.record.seq, signed.hash_hex),
        )
        state.cp_seq = signed.record.seq
        state.cp_ts = signed.record.ts
        return state

    def _save_state(self, conn: Connection, state: "_State") -> None:
        params = (state.seq, state.head_hash, json.dumps(state.frontier.state()), state.cp_seq, state.cp_ts,
                  state.high_ts, self.chain)
        if state.exists:
            conn.connection.driver_connection.execute(
                "UPDATE chain_state SET head_seq=?, head_hash=?, frontier=?, last_checkpoint_seq=?, "
                "last_checkpoint_ts=?, high_ts=? WHERE chain=?",
                params,
            )
        else:
            conn.exec_driver_sql(
                "INSERT INTO chain_state (head_seq, head_hash, frontier, last_checkpoint_seq, "
                "last_checkpoint_ts, high_ts, chain) VALUES (?, ?, ?, ?, ?, ?, ?)",
                params,
            )

    def mark_synced(self, upto: int, receipt_hash_hex: str) -> None:
        """Record a central receipt: the outbox marker moves, nothing is deleted."""
        try:
            with self._write_lock, self._transaction() as conn:
                conn.exec_driver_sql(
                    "UPDATE chain_state SET synced_upto = ? WHERE chain = ? AND synced_upto < ?",
                    (upto, self.chain, upto),
                )
                conn.exec_driver_sql(
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

    def device_status(self) -> str | None:
        """This terminal's registration status as last observed from the central store."""
        with self._read.connect() as conn:
            row = conn.exec_driver_sql("SELECT doc FROM directory WHERE kind = 'device' AND key = ?",
                                       (self.chain,)).first()
        return None if row is None else json.loads(row[0])["status"]

    def clock_suspect(self) -> bool:
        """True while the clock reads earlier than a record this chain already holds, or the last sync
        found it too far from the central clock."""
        with self._read.connect() as conn:
            row = conn.exec_driver_sql("SELECT high_ts FROM chain_state WHERE chain = ?", (self.chain,)).first()
            trust = conn.exec_driver_sql("SELECT doc FROM directory WHERE kind = 'clock' AND key = ?",
                                         (self.chain,)).first()
        if trust is not None and json.loads(trust[0]).get("skewed"):
            return True
        if row is None or row[0] is None:
            return False
        return went_backwards(parse_ts(row[0]), self.clock.now(), row[0], "") is not None

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
        for seq, raw, sig, digest, type_, ts in rows:
            yield StoredRow(chain, seq, _as_bytes(raw), _as_bytes(sig), _as_bytes(digest), type_, ts)
        last = rows[-1][0]
        if len(rows) < batch:
            return


def _as_bytes(value: object) -> bytes:
    """Column values as bytes even if someone rewrote a BLOB as TEXT (verify must still see it)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")
