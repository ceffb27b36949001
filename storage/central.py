"""The central store: kiosks append raw records to an inbox; ingest verifies and moves them to the ledger.

Ingest rules (ARCHITECTURE.md "Stores"): the chain's device is enrolled and
approved; bytes are canonical; hash, signature, seq and prev continue the
chain head; a replay of a known record is acknowledged; a fork, a gap or a
bad record quarantines the record with its reason and freezes the chain;
nothing is ever dropped. One chain is ingested under that chain's lock, taken
before its inbox rows are read, so concurrent workers never interleave it
(storage/ingest.py). What ingest derives (the directory, device decisions,
signed receipts) and what the central store signs itself (its own chain)
lives here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Connection, Engine

from kiosk.domain import audit, batches, directory
from kiosk.domain.central import (
    CENTRAL_DEVICE, DEVICE_DECISIONS, DIRECTORY_FORMAT, DIRECTORY_PUBLISHED, DirectoryEntry, Receipt,
    directory_digest,
)
from kiosk.domain.chain import CHAIN_OPENED, genesis_key
from kiosk.domain.clock import Clock, format_ts
from kiosk.domain.central_url import central_url_problem, without_password
from kiosk.domain.display import recordable
from kiosk.domain.keys import PublicKey, SigningKey, b64url
from kiosk.domain.merkle import MerkleFrontier
from kiosk.domain.severity import SEVERITIES
from kiosk.domain.records import (
    GENESIS_PREV, Record, RecordError, SignedRecord, chain_id, parse_raw, seal, split_chain,
)
from storage import migrate
from storage.doc_json import dump_doc, load_doc
from storage.sqlite import sqlite_engine

if TYPE_CHECKING:
    from storage.ingest import Ingestor


class CentralError(Exception):
    """The central store cannot do what was asked; the message says why."""


# How urgent each of the central store's own alerts is on the supervisors' screens (raise_alerts): what
# threatens the record (a frozen chain, a forged row) is critical; what waits for a person's decision, a warning.
CENTRAL_ALERT_SEVERITY = {
    "chain.frozen": "critical",
    "record.rejected": "critical",
    "directory.conflict": "warning",
    "device.pending": "warning",
    "device.decision_refused": "warning",
    "device.revoked": "warning",
    "device.approved": "info",
    "device.rejected": "info",
    "device.superseded": "info",
}
RAISED_PER_TRANSACTION = 500
# The latest version of each document changed in (a, b], in version order: what a publication signs, and
# what a terminal pulls for it.
_ENTRIES_IN_RANGE = ("SELECT c.version, c.kind, c.key, c.doc FROM directory_changes c JOIN "
                     "(SELECT kind, key, max(version) AS v FROM directory_changes WHERE version > :a AND version <= :b "
                     " GROUP BY kind, key) m ON c.kind = m.kind AND c.key = m.key AND c.version = m.v "
                     "ORDER BY c.version")
_PENDING_ALERTS = ("SELECT a.id, a.kind, a.chain, a.message FROM alerts a LEFT JOIN alerts_raised r ON r.id = a.id "
                   "WHERE r.id IS NULL ORDER BY a.id LIMIT :n")


@dataclass(frozen=True)
class IngestReport:
    ingested: int = 0
    replays: int = 0
    quarantined: int = 0
    held: int = 0
    directory_changes: int = 0  # documents the ingested records changed: there is something to publish

    def __add__(self, other: "IngestReport") -> "IngestReport":
        return IngestReport(self.ingested + other.ingested, self.replays + other.replays,
                            self.quarantined + other.quarantined, self.held + other.held,
                            self.directory_changes + other.directory_changes)


def sqlite_file(url: str) -> Path | None:
    """The database file of an embedded SQLite central store's URL (``sqlite:///F``); None for a server."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def default_key_file(url: str) -> Path | None:
    """Where an embedded SQLite central store's key lives unless told otherwise: beside it, ``F.key``."""
    database = sqlite_file(url)
    return None if database is None else database.parent / (database.name + ".key")


def central_engine(url: str, *, create: bool = False) -> Engine:
    """``create``: an embedded SQLite central store may be made here (a kiosk or a command that only uses
    one finds none, and says so, where a mistyped or unmounted path would otherwise become an empty store)."""
    problem = central_url_problem(url)
    if problem is not None:
        raise CentralError(problem)
    path = sqlite_file(url)
    if path is not None:
        return sqlite_engine(path, write=True, create=create)
    return create_engine(url, pool_pre_ping=True)


INIT_COMMAND = "`kiosk central init`"  # the one command that creates or migrates a central store

# Snapshot publications let a new (or long-offline) kiosk start from one signed state instead of every delta.
SNAPSHOT_EVERY_VERSIONS = 2000


@dataclass(frozen=True)
class Publication:
    """A directory publication as a kiosk reads it: the signed central record and its parsed body."""

    seq: int
    raw: bytes
    sig: bytes


class CentralStore:
    """The central database. Kiosks use push/receipt/device_status/pull; ingest and admin need the key."""

    def __init__(self, url: str, clock: Clock, key: SigningKey | None = None, *,
                 central_time: Clock | None = None, create: bool = False) -> None:
        self.url = url
        self.clock = clock
        self.key = key
        self.engine = central_engine(url, create=create)
        self.pg = self.engine.dialect.name == "postgresql"
        # The embedded SQLite store lives in the kiosk's own process, so its clock is the kiosk's; on
        # PostgreSQL the server's clock is the reference unless a test injects one.
        self._central_time = central_time
        self._ingestor = None

    @classmethod
    def open(cls, url: str, clock: Clock, key: SigningKey | None = None, *, migrate_schema: bool = True,
             central_time: Clock | None = None) -> "CentralStore":
        """``migrate_schema=False``: the store must already exist with the current schema (only
        ``kiosk central init`` creates or migrates one; a mistyped URL must not become an empty store)."""
        where = without_password(url)
        problem = central_url_problem(url)
        if problem is not None:  # before the file check: "sqlite:///" is no file either, for another reason
            raise CentralError(problem)
        path = sqlite_file(url)
        if not migrate_schema and path is not None and not path.is_file():
            raise migrate.not_created(where, INIT_COMMAND)
        store = cls(url, clock, key, central_time=central_time, create=migrate_schema)
        migrated = None
        try:
            with store.engine.begin() as conn:
                if migrate_schema:
                    migrated = migrate.upgrade(conn, "central", where)
                else:
                    migrate.require_current(conn, "central", where, INIT_COMMAND)
        except BaseException:
            store.close()
            raise
        if key is not None:
            store._open_central_chain()
            if migrated is not None and migrated.before is not None:
                with store.engine.begin() as conn:
                    store._append_central(conn, migrate.SCHEMA_MIGRATED, migrated.record_body())
            if migrated is not None:
                store.publish_directory()  # what a migration wrote (c0005) reaches terminals at once
        return store

    def close(self) -> None:
        self.engine.dispose()

    # -- the central chain -------------------------------------------------
    @property
    def central_chain(self) -> str:
        return chain_id(CENTRAL_DEVICE, 1)

    def _open_central_chain(self) -> None:
        """Create the central chain on first use; refuse a key that is not the one the chain was opened with."""
        key = self._need_key()
        with self.engine.begin() as conn:
            row = conn.execute(text("SELECT kid FROM chain_heads WHERE chain = :c"), {"c": self.central_chain}).first()
            if row is not None:
                if row[0] != key.kid:
                    raise CentralError(f"this central store signs with key {row[0]}; the key file given holds "
                                       f"{key.kid} (wrong --key-file?)")
                return
            conn.execute(text("INSERT INTO chain_heads (chain, device_id, epoch, kid, public_key, status, seq, hash, "
                              "frontier) VALUES (:c, :d, 1, :k, :p, 'central', 0, :h, '[]')"),
                         {"c": self.central_chain, "d": CENTRAL_DEVICE, "k": key.kid,
                          "p": b64url(key.public.raw), "h": GENESIS_PREV})
            self._append_central(conn, CHAIN_OPENED, {
                "device_id": CENTRAL_DEVICE, "epoch": 1, "public_key": b64url(key.public.raw), "kid": key.kid,
                "fingerprint": key.public.fingerprint, "role": "central store"})

    def _need_key(self) -> SigningKey:
        if self.key is None:
            raise CentralError("this needs the central store's signing key (--key-file or KIOSK_CENTRAL_KEY)")
        return self.key

    def _append_central(self, conn: Connection, type_: str, body: dict[str, Any]) -> SignedRecord:
        """One record in the central chain, in the caller's transaction, under the central head's row lock."""
        key = self._need_key()
        lock = " FOR UPDATE" if self.pg else ""
        head = conn.execute(text(f"SELECT seq, hash, frontier FROM chain_heads WHERE chain = :c{lock}"),
                            {"c": self.central_chain}).first()
        seq, prev = int(head[0]), head[1]
        frontier = MerkleFrontier.from_state(seq, load_doc(head[2]))
        signed = seal(key, chain=self.central_chain, seq=seq + 1, prev=prev, type=type_, moment=self.clock.now(),
                      zone="UTC", body=body)
        now = format_ts(self.clock.now())
        conn.execute(text("INSERT INTO ledger (chain, seq, hash, raw, sig, id, type, ts, kid, received_at) "
                          "VALUES (:c, :s, :h, :r, :g, :id, :t, :ts, :k, :at)"),
                     {"c": self.central_chain, "s": signed.record.seq, "h": signed.hash, "r": signed.raw,
                      "g": signed.sig, "id": signed.record.id, "t": type_, "ts": signed.record.ts, "k": key.kid,
                      "at": now})
        frontier.add(signed.hash)
        conn.execute(text("UPDATE chain_heads SET seq = :s, hash = :h, frontier = :f, last_kiosk_ts = :t "
                          "WHERE chain = :c"),
                     {"s": signed.record.seq, "h": signed.hash_hex, "f": dump_doc(frontier.state()),
                      "t": signed.record.ts, "c": self.central_chain})
        return signed

    # -- kiosk side: push, receipts, status, pull ----------------------------
    def push(self, rows: Iterable[tuple[str, int, bytes, bytes, bytes]]) -> int:
        """Append (chain, seq, hash, raw, sig) to the inbox; a row already there is ignored."""
        now = format_ts(self.clock.now())
        params = [{"chain": c, "seq": s, "hash": h, "raw": r, "sig": g, "at": now} for c, s, h, r, g in rows]
        if not params:
            return 0
        # No conflict target: a targeted ON CONFLICT needs SELECT on the inbox, which kiosks do not get.
        conflict = "ON CONFLICT DO NOTHING"
        with self.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO inbox (chain, seq, hash, raw, sig, received_at) "
                              f"VALUES (:chain, :seq, :hash, :raw, :sig, :at) {conflict}"), params)
        return len(params)

    def receipt(self, chain: str) -> tuple[Receipt, bytes | None] | None:
        """The latest receipt for ``chain`` and its central signature (the kiosk checks it against its pin)."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT upto, hash, central_ts, kid, sig FROM receipts WHERE chain = :c "
                                    "ORDER BY upto DESC LIMIT 1"), {"c": chain}).first()
        if row is None:
            return None
        return Receipt(chain, int(row[0]), row[1], row[2], row[3] or ""), (bytes(row[4]) if row[4] else None)

    def device_status(self, chain: str) -> tuple[str, str | None] | None:
        """(status, reason) of a device chain as the central store sees it (the kiosk role may read only these)."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT status, reason FROM chain_heads WHERE chain = :c"), {"c": chain}).first()
        return None if row is None else (row[0], row[1])

    def head(self, chain: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM chain_heads WHERE chain = :c"), {"c": chain}).mappings().first()
        return dict(row) if row else None

    def central_key(self) -> PublicKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT public_key FROM central_keys ORDER BY chain LIMIT 1")).first()
        return None if row is None else PublicKey(_unb64(row[0]))

    def next_epoch(self, device_id: str) -> int:
        """The epoch a re-registered device (wiped disk, lost key) must use: one past any the store has seen."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT max(epoch) FROM chain_heads WHERE device_id = :d"),
                               {"d": device_id}).first()
        return int(row[0] or 0) + 1

    def now(self):
        """The central clock (PostgreSQL's ``now()``; the embedded store shares the kiosk's process clock)."""
        if self._central_time is not None:
            return self._central_time.now()
        if self.pg:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT now()")).scalar_one()
        return self.clock.now()

    def publications(self, after_seq: int = 0) -> list[Publication]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, raw, sig FROM directory_publications WHERE seq > :s ORDER BY seq"),
                                {"s": after_seq}).all()
        return [Publication(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def latest_rebase(self) -> Publication | None:
        """The newest rebase publication (``kiosk central rebase``), or None: what a terminal that finds this
        store behind what it applied may take in place of it."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT p.seq, p.raw, p.sig FROM directory_publications p "
                                    "JOIN directory_rebase r ON p.seq = r.seq")).first()
        return None if row is None else Publication(int(row[0]), bytes(row[1]), bytes(row[2]))

    def rebase_directory(self, actor: dict[str, str], reason: str) -> SignedRecord:
        """After a restore from an older backup: publish the whole directory as a rebase (see publish_directory).

        Run once the terminals have sent their records again (``kiosk central status``: each heard since the
        restore), and after making again the device decisions made since the backup: the central chain's own
        records after it are gone with it.
        """
        _check_reason(reason)
        signed = self.publish_directory(rebase={"id": uuid.uuid4().hex, "reason": recordable(reason.strip()),
                                                "actor": actor})
        assert signed is not None
        return signed

    def directory_entries(self, after_version: int, upto_version: int) -> Iterator[DirectoryEntry]:
        """The latest version of each document changed in (after, upto], in version order (what was signed).

        Streamed from the server in batches (a first pull is every document of the site); the terminal
        checks the publication's digest as they arrive (kiosk/services/sync.py)."""
        with self.engine.connect() as conn:
            rows = conn.execution_options(stream_results=True, max_row_buffer=500).execute(
                text(_ENTRIES_IN_RANGE), {"a": after_version, "b": upto_version})
            for version, kind, key, doc in rows:
                yield DirectoryEntry(int(version), kind, key, load_doc(doc))

    # -- devices -----------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
        """The device registry (what a kiosk login may read): status, key, head, and since c0007 when each
        chain's records were last taken in (``taken_in``; absent from a store not migrated yet)."""
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(text("SELECT * FROM device_registry ORDER BY chain")).mappings()]
        for r in rows:
            r["fingerprint"] = PublicKey(_unb64(r["public_key"])).fingerprint
        return rows

    def directory_doc(self, kind: str, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return _latest_doc(conn, kind, key)

    def has_active_admin(self) -> bool:
        with self.engine.connect() as conn:
            return any(_is_active_admin(load_doc(doc)) for _, doc in _latest_of_kind(conn, "user"))

    def decide_device(self, chain: str, status: str, actor: dict[str, str], reason: str) -> SignedRecord:
        """Approve, reject or revoke a device chain as a signed record in the central chain.

        ``actor`` is an admin the caller has authenticated against this store's directory (see
        kiosk.services.central_admin); before any admin exists centrally, the holder of the central key
        may approve the first terminals (``actor`` role "central-key-holder"), and that is what the record says.
        """
        decision = {v: k for k, v in DEVICE_DECISIONS.items()}.get(status)
        if decision is None:
            raise CentralError("status must be approved, rejected or revoked")
        _check_reason(reason)
        with self.engine.begin() as conn:
            head = self._lock_head(conn, chain)
            if head is None or head["status"] == "central":
                raise CentralError(f"no device chain {chain}; it appears once the kiosk has sent its first record")
            fingerprint = PublicKey(_unb64(head["public_key"])).fingerprint
            signed = self._append_central(conn, decision, {
                "actor": dict(actor), "target": {"kind": "device", "id": chain}, "fingerprint": fingerprint,
                "reason": reason})
            self._apply_decision(conn, head, status, actor, reason, origin=self.central_chain)
        self.publish_directory()  # the decision's alert, to every terminal's alert screen
        return signed

    def _lock_head(self, conn: Connection, chain: str) -> dict[str, Any] | None:
        lock = " FOR UPDATE" if self.pg else ""
        row = conn.execute(text(f"SELECT * FROM chain_heads WHERE chain = :c{lock}"), {"c": chain}).mappings().first()
        return dict(row) if row else None

    def _apply_decision(self, conn: Connection, head: dict[str, Any], status: str, actor: dict[str, Any],
                        reason: str, origin: str) -> None:
        chain = head["chain"]
        who = f"{actor.get('user_id')} ({actor.get('role')})"
        extra = ", revoked_after_seq = :seq" if status == "revoked" else ""
        conn.execute(text(f"UPDATE chain_heads SET status = :s, reason = :r{extra} WHERE chain = :c"),
                     {"s": status, "r": f"{who}: {reason}", "c": chain, "seq": head["seq"]})
        self._alert(conn, f"device.{status}", chain, f"{chain} {status} by {who} via {origin}: {reason}")
        if status == "approved":
            # A re-registered terminal (new epoch) supersedes its older chains: their later records are
            # accepted up to this point and quarantined after it, like a revocation.
            older = conn.execute(text("SELECT chain, seq FROM chain_heads WHERE device_id = :d AND epoch < :e "
                                      "AND status IN ('approved', 'pending')"),
                                 {"d": head["device_id"], "e": head["epoch"]}).all()
            for old_chain, old_seq in older:
                conn.execute(text("UPDATE chain_heads SET status = 'revoked', revoked_after_seq = :s, reason = :r "
                                  "WHERE chain = :c"),
                             {"s": old_seq, "c": old_chain, "r": f"superseded by {chain} (re-registration)"})
                self._alert(conn, "device.superseded", old_chain, f"{old_chain} superseded by {chain}")

    def _decision_from_record(self, conn: Connection, record: Record, get) -> None:
        """An admin decided about a device on a kiosk: apply it if the admin and the device check out."""
        body = record.body
        status = DEVICE_DECISIONS[record.type]
        target = str((body.get("target") or {}).get("id", ""))
        actor = body.get("actor") or {}
        where = f"{record.type} in {record.chain} #{record.seq}"
        refused = None
        head = self._lock_head(conn, target) if target else None
        if head is None or head["status"] == "central":
            refused = f"no device chain {target!r}"
        elif split_chain(target)[0] == record.device_id:
            refused = "a terminal cannot decide its own registration"
        elif not _is_active_admin(get(directory.USER, str(actor.get("user_id")))):
            refused = f"{actor.get('user_id')!r} is not an active admin in the central directory"
        elif body.get("fingerprint") != PublicKey(_unb64(head["public_key"])).fingerprint:
            refused = "the fingerprint the admin confirmed is not the device's key"
        if refused:
            self._alert(conn, "device.decision_refused", target or None, f"{where} refused: {refused}")
            return
        self._apply_decision(conn, head, status, actor, str(body.get("reason", "")), origin=record.chain)

    # -- ingest ------------------------------------------------------------
    def _the_ingestor(self) -> "Ingestor":
        self._need_key()  # receipts are signed: no key, no ingest (before anything is moved)
        if self._ingestor is None:
            from storage.ingest import Ingestor

            self._ingestor = Ingestor(self)
        return self._ingestor

    def ingest_once(self, batch: int = 500) -> IngestReport:
        """Verify and move up to ``batch`` inbox rows (rules: storage/ingest.py), then publish the directory."""
        report = self._the_ingestor().ingest_once(batch)
        if report.ingested or report.quarantined or report.held:
            self.publish_directory()  # what was derived, and the alerts raised on the way
        return report

    def ingest_all(self, batch: int = 500) -> IngestReport:
        """Passes until the inbox has nothing ready, each serving every waiting chain (up to 64) with up to
        ``batch`` rows; a pass's last commit overlaps the next pass's checks."""
        from storage.ingest import CANDIDATE_CHAINS

        ingestor = self._the_ingestor()
        total = IngestReport()
        try:
            while True:
                r = ingestor.ingest_once(batch * CANDIDATE_CHAINS, per_chain=batch, leave_last_tail=True)
                if r.directory_changes:
                    self.publish_directory()  # a long drain publishes as it goes: kiosks pull signed documents
                total += r
                if r.ingested + r.replays + r.quarantined == 0 and not ingestor.in_flight:
                    break
        finally:
            ingestor.settle(quiet=True)  # only after an error (a returning loop has settled): it stays the one raised
        # Also what a worker that stopped after its commit left unpublished, and alerts raised outside ingest (a
        # device decision made in another process); with nothing to do, two short reads.
        self.publish_directory()
        return total

    def _sign_receipt(self, conn: Connection, chain: str, upto: int, hash_hex: str) -> None:
        now = format_ts(self.clock.now())
        receipt = Receipt(chain, upto, hash_hex, now, self._need_key().kid)
        conn.execute(text("INSERT INTO receipts (chain, upto, hash, central_ts, kid, sig) "
                          "VALUES (:c, :u, :h, :t, :k, :g) ON CONFLICT (chain, upto) DO NOTHING"),
                     {"c": chain, "u": upto, "h": hash_hex, "t": now, "k": receipt.kid,
                      "g": self._need_key().sign_statement(receipt.statement())})

    def _derive(self, conn: Connection, tx: "_Tx", record: Record) -> None:
        """The record's effect on the central directory, in ingest order; a conflict is an alert, never a loss."""
        if record.type in DEVICE_DECISIONS:
            self._decision_from_record(conn, record, tx.get)
        overlay: dict[tuple[str, str], dict] = {}

        def get(kind: str, key: str) -> dict | None:
            return overlay.get((kind, key)) or tx.get(kind, key)

        try:
            changes = directory.project(record, get)
            for kind, key, doc in changes:
                overlay[(kind, key)] = doc
            changes += batches.project(record, get)
        except directory.DirectoryConflict as exc:
            self._alert(conn, "directory.conflict", record.chain,
                        f"{record.type} {record.chain} #{record.seq} not applied to the directory: {exc}")
            return
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            self._alert(conn, "directory.conflict", record.chain,
                        f"{record.type} {record.chain} #{record.seq} not applied to the directory: "
                        f"malformed body ({type(exc).__name__}: {exc})")
            return
        for kind, key, doc in changes:
            tx.put(kind, key, doc, record.chain, record.seq)

    def raise_alerts(self) -> int:
        """Raise the central store's own alerts where people see them; how many were raised.

        A fork that froze a chain, a rejected row, a directory conflict, a
        terminal asking to be registered: each is a row of the append-only
        alerts table, which nobody on the floor reads. Each becomes an
        ``alert.raised`` record of the central chain, derived into the
        directory like a terminal's alert, so the next pull puts it on every
        supervisor's screen, where it is acknowledged like any other. Done
        here, outside ingest's transactions, so ingest never waits on the
        central chain; a row counts as raised by its own row in
        ``alerts_raised``, not by an id mark, because a later id can commit
        first.
        """
        raised = 0
        while True:
            with self.engine.connect() as conn:
                if conn.execute(text(_PENDING_ALERTS), {"n": 1}).first() is None:
                    return raised
            with self.engine.begin() as conn:
                tx = _Tx(conn, self.pg)
                tx.lock()  # the directory's version before the central chain's head, as publish_directory's order
                rows = conn.execute(text(_PENDING_ALERTS), {"n": RAISED_PER_TRANSACTION}).all()
                now = format_ts(self.clock.now())
                for alert_id, kind, chain, message in rows:
                    signed = self._append_central(conn, *audit.alert_raised(
                        recordable(kind), CENTRAL_ALERT_SEVERITY.get(kind, "warning"), recordable(message),
                        audit.target("device", recordable(chain)) if chain else audit.target("site", "central"),
                        # The row's number, for the admin, and a random part: a store restored from an older
                        # backup numbers its rows again, and an acknowledgement sent again names the alert seen.
                        f"{self.central_chain}/alert-{alert_id}-{uuid.uuid4().hex[:12]}"))
                    self._derive(conn, tx, signed.record)
                    conn.execute(text("INSERT INTO alerts_raised (id, seq, at) VALUES (:i, :s, :t)"),
                                 {"i": alert_id, "s": signed.record.seq, "t": now})
                tx.flush(conn)
                raised += len(rows)

    def publish_directory(self, rebase: dict[str, Any] | None = None) -> SignedRecord | None:
        """Sign what the directory became since the last publication (a snapshot now and then), the central
        store's own alerts raised first.

        ``rebase`` (``kiosk central rebase``, after this store was restored from a backup): a snapshot of the
        whole directory even if nothing changed, marked with the rebase (a new id, the reason, who), that
        terminals which applied publications this store no longer has take in place of what they hold.
        """
        self.raise_alerts()
        with self.engine.begin() as conn:
            lock = " FOR UPDATE" if self.pg else ""
            published = int(conn.execute(text(f"SELECT value FROM central_state WHERE name = 'published_version'{lock}"))
                            .scalar_one())
            current = int(conn.execute(text("SELECT value FROM central_state WHERE name = 'directory_version'"))
                          .scalar_one())
            if current <= published and rebase is None:
                return None
            last_snapshot = conn.execute(text(
                "SELECT count(*) FROM ledger WHERE chain = :c AND type = :t"),
                {"c": self.central_chain, "t": DIRECTORY_PUBLISHED}).scalar_one()
            snapshot = rebase is not None or published == 0 or last_snapshot == 0 or (
                current // SNAPSHOT_EVERY_VERSIONS > published // SNAPSHOT_EVERY_VERSIONS)
            start = 0 if snapshot else published
            entries = self._entries_in(conn, start, current)
            heads = {c: int(s) for c, s in conn.execute(text(
                "SELECT chain, seq FROM chain_heads WHERE status != 'central'")).all()}
            body = {"kind": "snapshot" if snapshot else "delta", "directory_format": DIRECTORY_FORMAT,
                    "from_version": start, "to_version": current,
                    "digest": directory_digest(entries), "count": len(entries), "heads": heads}
            if rebase is not None:
                body["rebase"] = rebase
            signed = self._append_central(conn, DIRECTORY_PUBLISHED, body)
            conn.execute(text("UPDATE central_state SET value = :v WHERE name = 'published_version'"), {"v": current})
            if rebase is not None:
                conn.execute(text("UPDATE central_state SET value = :s WHERE name = 'rebase_seq'"),
                             {"s": signed.record.seq})
        return signed

    def _entries_in(self, conn: Connection, after: int, upto: int) -> list[DirectoryEntry]:
        rows = conn.execute(text(_ENTRIES_IN_RANGE), {"a": after, "b": upto}).all()
        return [DirectoryEntry(int(v), k, key, load_doc(d)) for v, k, key, d in rows]

    def _enroll(self, conn: Connection, chain: str, seq: int, raw: bytes) -> dict[str, Any] | None:
        """A chain the central store has not seen: its first record must open it; the device waits for approval."""
        if seq != 1:
            return None
        try:
            record, _ = parse_raw(raw)
            if record.type != CHAIN_OPENED or record.chain != chain:
                return None
            key = genesis_key(dict(record.body), f"record {chain} #1")
        except RecordError:
            return None
        device_id, epoch = split_chain(chain)
        head = {"chain": chain, "device_id": device_id, "epoch": epoch, "kid": key.kid,
                "public_key": record.body["public_key"], "status": "pending", "seq": 0, "hash": GENESIS_PREV,
                "frontier": "[]", "revoked_after_seq": None, "reason": None, "last_kiosk_ts": None}
        inserted = conn.execute(text(
            "INSERT INTO chain_heads (chain, device_id, epoch, kid, public_key, status, seq, hash, frontier) "
            "VALUES (:chain, :device_id, :epoch, :kid, :public_key, :status, :seq, :hash, :frontier) "
            "ON CONFLICT (chain) DO NOTHING"), head).rowcount
        if not inserted:
            return None  # another worker enrolled it a moment ago; the rows wait for the next pass
        earlier = conn.execute(text("SELECT chain, kid FROM chain_heads WHERE device_id = :d AND epoch != :e"),
                               {"d": device_id, "e": epoch}).all()
        same_key = [c for c, kid in earlier if kid == key.kid]
        note = (f"; it re-registers (earlier chains: {', '.join(c for c, _ in earlier)})" if earlier else "")
        if same_key:
            note += f"; WARNING: it uses the same key as {', '.join(same_key)}"
        self._alert(conn, "device.pending", chain,
                    f"{chain} asks to be registered; key fingerprint {key.fingerprint}; "
                    f"host {str(record.body.get('hostname', '?'))[:100]}, site {str(record.body.get('site', '?'))[:100]}, "
                    f"location {str(record.body.get('location', '?'))[:100]}{note}")
        return head

    def _drop_inbox(self, conn: Connection, row_id: int) -> None:
        conn.execute(text("DELETE FROM inbox WHERE id = :i"), {"i": row_id})

    def _quarantine(self, conn: Connection, row_id: int, chain: str, seq: int, raw: bytes, sig: bytes,
                    reason: str, *, freeze: bool) -> None:
        now = format_ts(self.clock.now())
        conn.execute(text("INSERT INTO quarantine (chain, seq, raw, sig, reason, at) VALUES (:c, :s, :r, :g, :why, :t)"),
                     {"c": chain, "s": seq, "r": raw, "g": sig, "why": reason, "t": now})
        self._drop_inbox(conn, row_id)
        if freeze:
            conn.execute(text("UPDATE chain_heads SET status = 'frozen', reason = :r WHERE chain = :c"),
                         {"r": f"#{seq}: {reason}", "c": chain})
            self._alert(conn, "chain.frozen", chain, f"{chain} frozen at #{seq}: {reason}")

    def _alert(self, conn: Connection, kind: str, chain: str | None, message: str) -> None:
        conn.execute(text("INSERT INTO alerts (kind, chain, message, at) VALUES (:k, :c, :m, :t)"),
                     {"k": kind, "c": chain, "m": message, "t": format_ts(self.clock.now())})

    def quarantine(self) -> list[dict[str, Any]]:
        return list(self.quarantined())

    def quarantined(self, chain: str | None = None) -> Iterator[dict[str, Any]]:
        """Quarantined rows (chain, seq, reason, at), oldest first, streamed: a flood of forged rows is kept too."""
        where, params = ("WHERE chain = :c ", {"c": chain}) if chain is not None else ("", {})
        with self.engine.connect() as conn:
            rows = conn.execution_options(stream_results=True, max_row_buffer=500).execute(
                text(f"SELECT chain, seq, reason, at FROM quarantine {where}ORDER BY id"), params)
            for row in rows.mappings():
                yield dict(row)

    def chain_status(self) -> list[dict[str, Any]]:
        """Each device chain as IT watches it, by chain: its status and head, the terminal time of its newest
        record, when records of it were last taken in (its newest receipt, central time), its rows waiting in
        the inbox (and the oldest's push time) and kept in quarantine, and the kiosk version it last recorded
        starting (``config.changed``; None before 0.10.0). A terminal that stopped syncing shows here
        while it is still offline; its own ``sync.offline`` alert only arrives once it is back."""
        with self.engine.connect() as conn:
            # The registry's "taken in" (one definition: migration c0007), with what only admins may read.
            rows = [dict(r) for r in conn.execute(text(
                "SELECT d.chain, d.status, d.seq, d.taken_in, h.last_kiosk_ts FROM device_registry d "
                "JOIN chain_heads h ON h.chain = d.chain ORDER BY d.chain")).mappings()]
            # One pass over each table, not one per chain: a flood of forged rows may fill the quarantine.
            waiting = {c: (n, since) for c, n, since in conn.execute(text(
                "SELECT chain, count(*), min(received_at) FROM inbox GROUP BY chain")).all()}
            quarantined = dict(conn.execute(text("SELECT chain, count(*) FROM quarantine GROUP BY chain")).all())
            # A record per terminal start that changed something: a few per terminal, found by the type index.
            versions: dict[str, tuple[int, Any]] = {}
            for chain, seq, raw in conn.execute(text("SELECT chain, seq, raw FROM ledger WHERE type = :t"),
                                                {"t": audit.CONFIG_CHANGED}):
                if seq > versions.get(chain, (0, None))[0]:
                    settings = json.loads(bytes(raw))["body"].get("settings") or {}
                    versions[chain] = (seq, settings.get("kiosk.version"))
        for row in rows:
            row["kiosk_version"] = versions.get(row["chain"], (0, None))[1]
            count, since = waiting.get(row["chain"], (0, None))
            row["waiting"], row["waiting_since"] = int(count), since  # since: the terminal's clock at the push
            row["quarantined"] = int(quarantined.get(row["chain"], 0))
        return rows

    def open_alerts(self, limit: int, at_least: str = "info") -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The newest ``limit`` open alerts of severity ``at_least`` or above, newest first, and how many alerts
        of each severity are open in all (whatever ``at_least``).

        Every terminal's alerts and the central store's own meet here, as on a supervisor screen, for whoever
        watches the site from the server. The latest version of each alert is read once, streamed, and only
        ``limit`` documents are kept: a site collects failed sign-ins by the hundred thousand.
        """
        wanted = set(SEVERITIES[SEVERITIES.index(at_least):])
        newest: list[tuple[str, str, dict[str, Any]]] = []  # cut back to ``limit`` now and then
        counts = dict.fromkeys(reversed(SEVERITIES), 0)
        with self.engine.connect() as conn:
            for key, raw in _latest_of_kind(conn, "alert"):
                doc = load_doc(raw)
                if doc.get("acknowledged_by"):
                    continue
                severity = doc.get("severity")
                counts[severity] = counts.get(severity, 0) + 1
                if severity in wanted:
                    newest.append((str(doc.get("at") or ""), key, doc))
                    if len(newest) > 2 * limit:
                        newest = _newest_first(newest)[:limit]
        return [doc for _, _, doc in _newest_first(newest)[:limit]], counts

    def alerts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text("SELECT kind, chain, message, at FROM alerts ORDER BY id")).mappings()]

    def ledger_count(self, chain: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM ledger WHERE chain = :c"), {"c": chain}).scalar_one())

    def inbox_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM inbox")).scalar_one())


class _Tx:
    """One transaction's share of the directory derivation.

    The derivation is one ordered history, so it runs under the version counter's row lock, taken before
    the first document is read (two workers reading the same document unlocked would lose one update).
    Documents read or written in this transaction are kept here, decoded and shared (the projectors never
    change a document they are given: tests/services/test_signing.py), and the new versions are written in
    one statement at the end.
    """

    def __init__(self, conn: Connection, pg: bool) -> None:
        self.conn = conn
        self.pg = pg
        self.version: int | None = None
        self._docs: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._rows: list[tuple[int, str, str, str, str, int]] = []

    def lock(self) -> None:
        """The directory's version row, for the rest of the transaction (PostgreSQL): one writer at a time."""
        if self.version is None:
            lock = " FOR UPDATE" if self.pg else ""
            self.version = int(self.conn.execute(text(
                f"SELECT value FROM central_state WHERE name = 'directory_version'{lock}")).scalar_one())

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        self.lock()
        if (kind, key) not in self._docs:
            row = self.conn.execute(text("SELECT doc FROM directory_changes WHERE kind = :k AND key = :key "
                                         "ORDER BY version DESC LIMIT 1"), {"k": kind, "key": key}).first()
            self._docs[(kind, key)] = None if row is None else load_doc(row[0])
        return self._docs[(kind, key)]

    def prefetch(self, wanted: Iterable[tuple[str, str]]) -> None:
        """Read the latest version of each of these documents in one query per kind (see
        ``directory.documents_named``); those already known are not read again."""
        by_kind: dict[str, set[str]] = {}
        for kind, key in wanted:
            if (kind, key) not in self._docs:
                by_kind.setdefault(kind, set()).add(key)
        if not by_kind:
            return
        self.lock()
        for kind, keys in by_kind.items():
            ordered = sorted(keys)
            for i in range(0, len(ordered), 500):
                chunk = ordered[i:i + 500]
                latest: dict[str, tuple[int, str]] = {}
                for key, version, doc in self.conn.execute(
                        text("SELECT key, version, doc FROM directory_changes WHERE kind = :k AND key IN :keys")
                        .bindparams(bindparam("keys", expanding=True)), {"k": kind, "keys": chunk}):
                    if key not in latest or version > latest[key][0]:
                        latest[key] = (version, doc)
                for key in chunk:
                    self._docs[(kind, key)] = load_doc(latest[key][1]) if key in latest else None

    def put(self, kind: str, key: str, doc: dict[str, Any], chain: str, seq: int) -> None:
        self.lock()
        self.version += 1
        text_ = dump_doc(doc)
        self._docs[(kind, key)] = doc
        self._rows.append((self.version, kind, key, text_, chain, seq))

    def flush(self, conn: Connection | None = None) -> int:
        """Write the new versions; how many documents changed."""
        if not self._rows:
            return 0
        driver = self.conn.connection.driver_connection
        mark = "%s" if self.pg else "?"
        sql = f"INSERT INTO directory_changes (version, kind, key, doc, chain, seq) VALUES ({', '.join([mark] * 6)})"
        if self.pg:
            with driver.cursor() as cur:
                cur.executemany(sql, self._rows)
        else:
            driver.executemany(sql, self._rows)
        self.conn.execute(text("UPDATE central_state SET value = :v WHERE name = 'directory_version'"),
                          {"v": self.version})
        changed, self._rows = len(self._rows), []
        return changed


def _newest_first(alerts: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(raised at, id, alert) in a supervisor screen's order: newest first, then by id."""
    return sorted(sorted(alerts, key=lambda a: a[1]), key=lambda a: a[0], reverse=True)


def _latest_of_kind(conn: Connection, kind: str) -> Iterator[tuple[str, str]]:
    """(key, doc) of the latest version of every document of ``kind``, streamed (alerts number 100,000s)."""
    return iter(conn.execution_options(stream_results=True, yield_per=2000).execute(text(
        "SELECT c.key, c.doc FROM directory_changes c JOIN (SELECT key, max(version) AS v "
        "FROM directory_changes WHERE kind = :k GROUP BY key) m "
        "ON c.kind = :k AND c.key = m.key AND c.version = m.v"), {"k": kind}))


def _check_reason(reason: str) -> None:
    """A decision recorded in the central chain names why (device decisions, a rebase)."""
    if len(reason.strip()) < 4:
        raise CentralError("give a reason (at least 4 characters)")


def _latest_doc(conn: Connection, kind: str, key: str) -> dict[str, Any] | None:
    row = conn.execute(text("SELECT doc FROM directory_changes WHERE kind = :k AND key = :key "
                            "ORDER BY version DESC LIMIT 1"), {"k": kind, "key": key}).first()
    return None if row is None else load_doc(row[0])


def _is_active_admin(user: dict[str, Any] | None) -> bool:
    return bool(user) and user.get("status") == "active" and "admin" in (user.get("roles") or [])


def _unb64(text_: str) -> bytes:
    from kiosk.domain.keys import unb64url

    return unb64url(text_)
