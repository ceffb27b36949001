"""Central ingest: move inbox rows into the ledger, one chain at a time, under that chain's lock.

Rules (ARCHITECTURE.md "Stores"): the chain's device is enrolled and
approved; bytes are canonical; hash, signature, seq and prev continue the
chain head, and a checkpoint's Merkle root matches the ledger; a replay of a
record already in the ledger is acknowledged; a fork, a gap or a bad record
is quarantined with its reason and freezes the chain, but only when the
chain's key signed it: a row any inbox writer could have made (every
terminal's login may append under any chain's name) is quarantined and
alerted without freezing, so one terminal cannot stop another; records of a
frozen or rejected chain, or after a revocation, are quarantined; nothing is
dropped.
Each record is checked by the same ``ChainVerifier`` that ``central verify``
and ``kiosk verify`` use, resumed from the chain head.

Concurrency: a worker takes the chain's lock *before* reading that chain's
inbox rows (on PostgreSQL a transaction-scoped advisory lock, tried without
waiting, so a second worker moves on to another chain; on SQLite the write
transaction). Locking rows first and the chain second let a worker see a
later slice of a chain while another still held the earlier one, and freeze
a healthy chain for a "gap" that was only in flight.

Speed: ingest is bound by Ed25519 verification; the database work per batch
is a handful of statements (COPY into the ledger on PostgreSQL, executemany
on SQLite, one DELETE of the inbox ids), not three round trips per record.
On PostgreSQL the end of each batch's transaction (COPY end, inbox DELETE,
directory, head, receipt, commit: mostly waiting for the server) runs on a
second connection and thread while the next chain's batch is verified, and
that thread then opens the chain after it (lock, head, inbox rows), so the
worker rarely waits for the database. One such batch at a time, never two of
the same chain (the next chain in a pass is another one, and a chain met
again waits for it), and never one holding a device decision: that locks
another chain's head, which this worker may hold for its next batch, or have
opened ahead, while waiting for the first (a wait PostgreSQL cannot see), so
a chain opened ahead is let go and the decision commits before the worker
moves on. Opening ahead never waits for a lock (NOWAIT); the worker opens a
chain that was busy itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from psycopg.adapt import PyFormat
from psycopg.copy import LibpqWriter
from sqlalchemy import text
from sqlalchemy.engine import Connection

from kiosk.domain.central import DEVICE_DECISIONS, is_central_chain
from kiosk.domain.chain import ChainVerifier
from kiosk.domain.clock import format_ts
from kiosk.domain.directory import documents_named
from kiosk.domain.keys import PublicKey, unb64url
from kiosk.domain.merkle import MerkleFrontier
from kiosk.domain.records import BrokenLink, RecordError, SignedRecord, check_signature, parse_raw, where_of
from storage.doc_json import dump_doc, load_doc

if TYPE_CHECKING:
    from storage.central import CentralStore, IngestReport

from storage.central import _Tx  # noqa: E402 - the directory derivation's per-transaction counter

LOCK_NAMESPACE = 0x4B494F53  # "KIOS": first key of the two-key advisory lock; the second is hashtext(chain)
CANDIDATE_CHAINS = 64        # chains looked at per pass; the rest come in later passes (round robin)
REJECTED_ALERT_QUIET_S = 600  # after a record.rejected alert, the same chain's next rejections only go to quarantine


@dataclass
class _Outcome:
    ingested: list[SignedRecord] = field(default_factory=list)
    verifier: ChainVerifier | None = None
    drop_ids: list[int] = field(default_factory=list)   # inbox rows ingested or acknowledged as replays
    replays: int = 0
    quarantined: int = 0
    held: int = 0
    directory_changes: int = 0

    @property
    def settled(self) -> int:
        return len(self.ingested) + self.replays + self.quarantined


@dataclass
class _Counts:
    ingested: int = 0
    replays: int = 0
    quarantined: int = 0
    held: int = 0
    directory_changes: int = 0

    def add(self, outcome: "_Outcome | None") -> None:
        if outcome is not None:
            self.ingested += len(outcome.ingested)
            self.replays += outcome.replays
            self.quarantined += outcome.quarantined
            self.held += outcome.held
            self.directory_changes += outcome.directory_changes

    def report(self) -> "IngestReport":
        from storage.central import IngestReport

        return IngestReport(self.ingested, self.replays, self.quarantined, self.held, self.directory_changes)


def _deadlock(exc: BaseException) -> bool:
    """PostgreSQL aborted this side of a lock cycle (e.g. a device decision against a chain another worker
    holds); the transaction rolled back and its rows are ingested on a later pass."""
    return getattr(getattr(exc, "orig", exc), "sqlstate", None) == "40P01"


@dataclass
class _Done:
    """A chain's turn that committed at once (nothing to verify, or only refusals)."""

    chain: str
    outcome: _Outcome

    @property
    def rows_read(self) -> int:
        return self.outcome.settled


@dataclass
class _Opened:
    """A chain's transaction with its lock held and its next inbox rows read, not yet checked."""

    chain: str
    conn: Connection
    tx: Any
    head: dict[str, Any]
    rows: list

    @property
    def rows_read(self) -> int:
        return len(self.rows)

    def release(self) -> None:
        _end_quietly(self.tx, self.conn)


def _end_quietly(tx: Any, conn: Connection) -> None:
    """Roll back and close; a connection that is already gone was rolled back by the server."""
    try:
        tx.rollback()
    except Exception:  # noqa: BLE001 - the connection is gone; the server rolled back
        pass
    finally:
        conn.close()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic collector waits while an ingest pass runs.

    A batch builds thousands of objects and keeps its records until it
    commits, and every collection meanwhile walks them again: ~4 µs per
    record, 3% of a worker (bench_ingest). Turned back on, the collector
    makes up at once for what it skipped and walks whatever is still alive:
    paused per batch, that was each batch's records once more (20,000
    records: 19 collections, 1.9 µs per record); paused per pass, it is only
    the batch still committing (2 collections, 0.4-0.7 µs). Checking makes
    no reference cycles and a pass is bounded (CANDIDATE_CHAINS batches), so
    nothing accumulates.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Tail:
    """A checked batch with the rest of its transaction still to run: ``finish``, then commit.

    On PostgreSQL that rest is mostly waiting for the server (the end of the
    COPY, the inbox DELETE, the commit's flush), so it runs on its own thread
    while this worker verifies the next chain's batch: about 10 µs per record
    (bench_ingest). Its outcome counts only once it has committed.
    """

    def __init__(self, chain: str, outcome: _Outcome, background: bool, finish: Callable[[], None],
                 conn: Connection, tx: Any, writer: "_LedgerWriter") -> None:
        self.chain, self.outcome, self.background = chain, outcome, background
        self._finish, self._conn, self._tx, self._writer = finish, conn, tx, writer
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.ahead: str | None = None
        self.opened: _Opened | _Done | None = None  # the chain this thread opened ahead, after the commit

    def start(self, ahead: str | None = None,
              open_ahead: "Callable[[], _Opened | _Done | None] | None" = None) -> None:
        """Commit on a thread, then open the chain ``ahead`` (the one after the chain checked meanwhile)."""
        self.ahead = ahead

        def work() -> None:
            self.run()
            if open_ahead is not None:
                try:
                    self.opened = open_ahead()
                except Exception:  # noqa: BLE001 - locked elsewhere, or any error: the worker opens it itself
                    self.opened = None

        self._thread = threading.Thread(target=work, name=f"ingest-commit {self.chain}", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def run(self) -> None:
        try:
            self._finish()
            self._tx.commit()
        except BaseException as exc:  # noqa: BLE001 - kept for result(), raised in the worker's thread
            self._error = exc
            _end_quietly(self._tx, self._conn)
            return
        self._conn.close()

    def abandon(self, exc: BaseException) -> None:
        """Roll back without running: another batch failed first (a connection left in COPY would hang)."""
        try:
            self._writer.abort(exc)
        except Exception:  # noqa: BLE001 - the error being raised is the one to report
            pass
        _end_quietly(self._tx, self._conn)

    def result(self) -> _Outcome | None:
        if self._error is None:
            return self.outcome
        if _deadlock(self._error):
            return None
        raise self._error


class Ingestor:
    """One worker's view of ingest; keeps a round-robin cursor and the enrolled keys it has parsed."""

    def __init__(self, store: "CentralStore") -> None:
        self.store = store
        self.pg = store.pg
        self._after = ""                      # last chain served: the next pass starts after it
        self._keys: dict[str, PublicKey] = {}
        self._tail: _Tail | None = None        # the batch whose transaction is finishing behind the next one
        self._opened: _Opened | _Done | None = None  # the chain that batch's thread opened ahead

    # -- passes ------------------------------------------------------------
    @property
    def in_flight(self) -> bool:
        """A batch's transaction is still finishing behind the next one's verification."""
        return self._tail is not None

    def ingest_once(self, batch: int = 500, *, per_chain: int | None = None,
                    leave_last_tail: bool = False) -> "IngestReport":
        """Verify and move up to ``batch`` inbox rows, each chain in its own short transaction of at most
        ``per_chain`` rows.

        The report counts committed work only. With ``leave_last_tail`` the last
        batch's transaction may still be finishing when this returns (the next
        pass settles it, or ``settle()``); a pass that started nothing leaves
        nothing in flight, so a loop of passes always ends settled.
        """
        report = _Counts()
        budget = batch
        per_chain = per_chain or batch
        started = False
        with _collector_paused():  # one collection per pass, not one per batch (see _collector_paused)
            try:
                candidates = self._candidates()
                for i, chain in enumerate(candidates):
                    if budget <= 0:
                        break
                    if self._tail is not None and self._tail.chain == chain:
                        report.add(self.settle())  # its head and inbox rows must be committed before they are read
                    opened = self._take_opened(chain, report)
                    if opened is None:
                        try:
                            opened = self._open_chain(chain, min(budget, per_chain))
                        except Exception as exc:
                            if not _deadlock(exc):
                                raise
                            opened = None
                    if opened is None:
                        continue  # another worker holds this chain
                    started = True
                    self._after = chain
                    if isinstance(opened, _Done):
                        budget -= opened.outcome.settled
                        report.add(opened.outcome)
                        continue
                    tail = self._check_chain(opened)
                    budget -= tail.outcome.settled
                    try:
                        report.add(self.settle())  # one tail at a time, in order
                        if tail.background:
                            # While the next chain is checked, this thread also opens the one after it.
                            after = candidates[i + 2] if i + 2 < len(candidates) else None
                            ahead = self._opened.rows_read if self._opened is not None else per_chain
                            limit = min(per_chain, budget - ahead)
                            if after is not None and limit > 0:
                                tail.start(after, functools.partial(self._open_chain, after, limit, ahead=True))
                            else:
                                tail.start()
                            self._tail = tail
                            continue
                        self._release_opened(report)  # it may hold the head this decision locks
                    except BaseException as exc:
                        tail.abandon(exc)  # never left open: its COPY and transaction end here
                        raise
                    tail.run()
                    report.add(tail.result())
            except BaseException:
                self.settle(quiet=True)
                self._release_opened(report)
                raise
        if not leave_last_tail or not started:
            report.add(self.settle())
        self._release_opened(report)
        return report.report()

    def settle(self, *, quiet: bool = False) -> "_Outcome | None":
        """Wait for the batch in flight; its outcome once committed (None: rolled back for a retry).

        The chain its thread opened ahead is kept for the pass to take. ``quiet``: on the way out of
        another error, the batch still commits or rolls back, and the error being raised stays the
        one reported.
        """
        tail, self._tail = self._tail, None
        if tail is None:
            return None
        tail.join()
        if tail.opened is not None:
            self._opened = tail.opened
        try:
            return tail.result()
        except Exception:
            if quiet:
                return None
            raise

    def _take_opened(self, chain: str, report: _Counts) -> "_Opened | _Done | None":
        """The chain opened ahead, if it is this one; one opened for another (the pass changed) is let go."""
        if self._opened is None and self._tail is not None and self._tail.ahead == chain:
            report.add(self.settle())  # a chain was skipped: the thread is opening this one now
        if self._opened is not None and self._opened.chain != chain:
            self._release_opened(report)
        opened, self._opened = self._opened, None
        return opened

    def _release_opened(self, report: _Counts) -> None:
        """A chain opened ahead and not checked: its transaction ends, the rows wait for the next pass."""
        opened, self._opened = self._opened, None
        if isinstance(opened, _Done):
            report.add(opened.outcome)  # it committed: what it did counts
        elif opened is not None:
            opened.release()

    def _candidates(self) -> list[str]:
        """Chains with inbox rows, except those waiting for approval, starting after the last one served."""
        with self.store.engine.connect() as conn:
            if self.pg:
                # Walks the (chain, seq, hash) index one distinct chain at a time, not the whole inbox.
                chains = [r[0] for r in conn.execute(text(
                    "WITH RECURSIVE c(chain) AS ("
                    " (SELECT chain FROM inbox ORDER BY chain LIMIT 1)"
                    " UNION ALL"
                    " SELECT (SELECT i.chain FROM inbox i WHERE i.chain > c.chain ORDER BY i.chain LIMIT 1)"
                    " FROM c WHERE c.chain IS NOT NULL)"
                    " SELECT chain FROM c WHERE chain IS NOT NULL"))]
            else:
                chains = [r[0] for r in conn.execute(text("SELECT DISTINCT chain FROM inbox ORDER BY chain"))]
            pending = {r[0] for r in conn.execute(text("SELECT chain FROM chain_heads WHERE status = 'pending'"))}
        chains = [c for c in chains if c not in pending]
        later = [c for c in chains if c > self._after]
        return (later + [c for c in chains if c <= self._after])[:CANDIDATE_CHAINS]

    # -- one chain -----------------------------------------------------------
    def _open_chain(self, chain: str, limit: int, *, ahead: bool = False) -> "_Opened | _Done | None":
        """The chain's transaction with its lock held and its next rows read; None if another worker has it.

        ``ahead``: opened on the commit thread while this worker checks another chain. It never waits for a
        lock then (NOWAIT): a wait there, behind a worker waiting for this one, is a cycle PostgreSQL cannot see.
        """
        conn = self.store.engine.connect()
        tx = conn.begin()
        try:
            if self.pg and not conn.execute(text("SELECT pg_try_advisory_xact_lock(:ns, hashtext(:c))"),
                                            {"ns": LOCK_NAMESPACE, "c": chain}).scalar_one():
                tx.rollback()
                conn.close()
                return None
            outcome = _Outcome()
            lock = (" FOR UPDATE NOWAIT" if ahead else " FOR UPDATE") if self.pg else ""
            row = conn.execute(text(f"SELECT * FROM chain_heads WHERE chain = :c{lock}"),
                               {"c": chain}).mappings().first()
            head = dict(row) if row else None
            rows = [] if head is not None and head["status"] == "pending" else self._inbox_rows(conn, chain, limit)
            if rows and is_central_chain(chain):
                for row_id, seq, _hash, raw, sig in rows:
                    self._quarantine(conn, None, outcome, row_id, chain, int(seq), bytes(raw), bytes(sig),
                                     "only the central store writes the central chain", freeze=False)
                rows = []
            if rows and head is None:
                head = self.store._enroll(conn, chain, int(rows[0][1]), bytes(rows[0][3]))
                if head is None or head["status"] == "pending":
                    outcome.held = len(rows)  # kept in the inbox until the device is approved
                    rows = []
            if not rows:
                tx.commit()
                conn.close()
                return _Done(chain, outcome)
        except BaseException:
            _end_quietly(tx, conn)
            raise
        return _Opened(chain, conn, tx, head, rows)

    def _check_chain(self, opened: "_Opened") -> "_Tail":
        """Each row checked and streamed to the ledger; what is left of the transaction is returned."""
        chain, conn, outcome = opened.chain, opened.conn, _Outcome()
        writer = _LedgerWriter(conn, chain, format_ts(self.store.clock.now()), self.pg)
        try:
            self._check_rows(conn, chain, opened.head, opened.rows, outcome, writer)
        except BaseException as exc:
            writer.abort(exc)
            opened.release()
            raise
        # A device decision locks another chain's head: that transaction must not run beside this worker's next
        # one (which may hold that head while waiting for it: a wait PostgreSQL cannot see). SQLite has one writer.
        background = self.pg and not any(s.record.type in DEVICE_DECISIONS for s in outcome.ingested)
        return _Tail(chain, outcome, background, lambda: self._finish(conn, chain, outcome, writer), conn,
                     opened.tx, writer)

    def _key(self, head: dict[str, Any]) -> PublicKey:
        key = self._keys.get(head["public_key"])
        if key is None:
            key = self._keys[head["public_key"]] = PublicKey(unb64url(head["public_key"]))
        return key

    def _finish(self, conn: Connection, chain: str, outcome: _Outcome, writer: "_LedgerWriter") -> None:
        """The rest of a checked batch's transaction: ledger rows complete, inbox rows gone, directory, head, receipt."""
        writer.close()
        self._drop_inbox(conn, outcome.drop_ids)
        derivation = _Tx(conn, self.pg)
        derivation.prefetch(named for signed in outcome.ingested for named in documents_named(signed.record))
        for signed in outcome.ingested:
            self.store._derive(conn, derivation, signed.record)
        outcome.directory_changes = derivation.flush(conn)
        verifier = outcome.verifier
        if outcome.ingested:
            conn.execute(text("UPDATE chain_heads SET seq = :s, hash = :h, frontier = :f, last_kiosk_ts = :t "
                              "WHERE chain = :c"),
                         {"s": verifier.next_seq - 1, "h": verifier.prev_hex,
                          "f": dump_doc(verifier.frontier.state()), "t": outcome.ingested[-1].record.ts, "c": chain})
        if outcome.ingested or outcome.replays:
            self.store._sign_receipt(conn, chain, verifier.next_seq - 1, verifier.prev_hex)

    def _check_rows(self, conn: Connection, chain: str, head: dict[str, Any], rows: list, outcome: _Outcome,
                    writer: "_LedgerWriter") -> None:
        """Each row in seq order: replay, fork, refused by status, or checked and streamed to the ledger."""
        frontier = MerkleFrontier.from_state(int(head["seq"]), load_doc(head["frontier"]))
        verifier = outcome.verifier = ChainVerifier.resume(chain, self._key(head), int(head["seq"]), head["hash"],
                                                           frontier)
        status = head["status"]
        if status not in ("frozen", "rejected"):
            # The rows past the head that the chain's status lets in: their signatures first, in one loop.
            last = (head["revoked_after_seq"] or 0) if status == "revoked" else None
            verifier.verify_signatures_first([(bytes(raw), bytes(sig)) for _, seq, _, raw, sig in rows
                                              if verifier.next_seq <= int(seq) and (last is None or int(seq) <= last)])

        def quarantine(row_id: int, seq: int, raw: bytes, sig: bytes, reason: str, *, freeze: bool) -> None:
            self._quarantine(conn, writer, outcome, row_id, chain, seq, raw, sig, reason, freeze=freeze)

        rejected: list[tuple[int, str]] = []

        def reject(row_id: int, seq: int, raw: bytes, sig: bytes, reason: str) -> None:
            """A row the chain's key did not sign: quarantined (alerted once per batch), the chain goes on."""
            quarantine(row_id, seq, raw, sig, reason, freeze=False)
            rejected.append((seq, reason))

        known = self._ledger_hashes(conn, chain, [int(r[1]) for r in rows if int(r[1]) <= int(head["seq"])])
        for row_id, seq, column_hash, raw, sig in rows:
            seq, raw, sig, column_hash = int(seq), bytes(raw), bytes(sig), bytes(column_hash)
            if seq < verifier.next_seq:
                if seq not in known:
                    status = "frozen"
                    quarantine(row_id, seq, raw, sig, f"the ledger has no #{seq} below its head: "
                               "run `kiosk central verify`", freeze=True)
                elif hashlib.sha256(raw).digest() != known[seq][0]:
                    forged = not_signed_by_chain(chain, seq, column_hash, raw, sig, self._key(head))
                    if forged is not None:
                        reject(row_id, seq, raw, sig, forged)
                        continue
                    status = "frozen"
                    quarantine(row_id, seq, raw, sig, f"fork: {where_of(chain, seq)}: a different record signed "
                               "with this chain's key is already in the ledger at this place", freeze=True)
                elif sig != known[seq][1] or column_hash != known[seq][0]:
                    quarantine(row_id, seq, raw, sig, f"{where_of(chain, seq)}: a copy of the ledger record with a "
                               "different signature or hash column", freeze=False)
                else:
                    outcome.replays += 1
                    outcome.drop_ids.append(row_id)
                continue
            if status in ("frozen", "rejected"):
                quarantine(row_id, seq, raw, sig, f"chain is {status}", freeze=False)
                continue
            if status == "revoked" and seq > (head["revoked_after_seq"] or 0):
                quarantine(row_id, seq, raw, sig, "after revocation", freeze=False)
                continue
            try:
                if seq != verifier.next_seq:
                    raise BrokenLink(where_of(chain, seq), f"gap: the ledger head is #{verifier.next_seq - 1}")
                signed = verifier.feed(raw, sig, seq, column_hash)  # raises before it moves on a refused row
            except RecordError as err:
                reason = f"{err.reason}: {err.where}: {err.detail}"
                if not_signed_by_chain(chain, seq, column_hash, raw, sig, self._key(head)) is not None:
                    reject(row_id, seq, raw, sig, reason)
                    continue
                status = "frozen"
                quarantine(row_id, seq, raw, sig, reason, freeze=True)
                continue
            known[seq] = (signed.hash, sig)
            writer.add(signed)
            outcome.ingested.append(signed)
            outcome.drop_ids.append(row_id)
        if rejected:
            writer.pause()
            self._alert_rejected(conn, chain, rejected)

    def _alert_rejected(self, conn: Connection, chain: str, rejected: list[tuple[int, str]]) -> None:
        """One alert for a batch's rejected rows, and none while an earlier one for the chain is recent.

        Any terminal's login may append rows under any chain's name; without this, a flood of forged rows
        would bury the alert list. Every row stays in quarantine with its own reason.
        """
        since = format_ts(self.store.clock.now() - dt.timedelta(seconds=REJECTED_ALERT_QUIET_S))
        recent = conn.execute(text("SELECT 1 FROM alerts WHERE kind = 'record.rejected' AND chain = :c "
                                   "AND at > :t LIMIT 1"), {"c": chain, "t": since}).first()
        if recent is not None:
            return
        seq, reason = rejected[0]
        more = (f"; {len(rejected) - 1} more row(s) in this batch, each in quarantine with its reason"
                if len(rejected) > 1 else "")
        self.store._alert(conn, "record.rejected", chain,
                          f"{chain} #{seq} rejected (not signed by this chain's key): {reason}{more}. "
                          f"Further rejections for this chain in the next {REJECTED_ALERT_QUIET_S // 60} minutes "
                          "are recorded in quarantine only.")

    # -- statements ------------------------------------------------------------
    def _inbox_rows(self, conn: Connection, chain: str, limit: int) -> list:
        """The chain's next inbox rows in seq order (binary transfer on PostgreSQL: no hex round trip).

        The seq range keeps the sort to about one batch of rows, whatever the backlog: ordered by
        (seq, id) over the whole chain, a stale row estimate (a queue's statistics always lag) made
        PostgreSQL sort every waiting row of the chain on disk, 10 ms per 2,000-row batch of 5,000.
        """
        sql = ("SELECT id, seq, hash, raw, sig FROM inbox WHERE chain = {c} "
               "AND seq < (SELECT min(seq) FROM inbox WHERE chain = {c}) + {n} ORDER BY seq, id LIMIT {n}")
        if self.pg:
            with conn.connection.driver_connection.cursor(binary=True) as cur:
                return cur.execute(sql.format(c="%(c)s", n="%(n)s"), {"c": chain, "n": limit}).fetchall()
        return conn.execute(text(sql.format(c=":c", n=":n")), {"c": chain, "n": limit}).all()

    def _ledger_hashes(self, conn: Connection, chain: str, seqs: list[int]) -> dict[int, tuple[bytes, bytes]]:
        """(hash, sig) of ledger records that inbox rows claim again (replays, or forks)."""
        if not seqs:
            return {}
        rows = conn.execute(text("SELECT seq, hash, sig FROM ledger WHERE chain = :c AND seq BETWEEN :lo AND :hi"),
                            {"c": chain, "lo": min(seqs), "hi": max(seqs)})
        return {int(s): (bytes(h), bytes(g)) for s, h, g in rows}

    def _drop_inbox(self, conn: Connection, ids: list[int]) -> None:
        if not ids:
            return
        if self.pg:
            conn.connection.driver_connection.execute("DELETE FROM inbox WHERE id = ANY(%s)", (ids,))
        else:
            conn.connection.driver_connection.executemany("DELETE FROM inbox WHERE id = ?", [(i,) for i in ids])

    def _quarantine(self, conn: Connection, writer: "_LedgerWriter | None", outcome: _Outcome, row_id: int,
                    chain: str, seq: int, raw: bytes, sig: bytes, reason: str, *, freeze: bool) -> None:
        if writer is not None:
            writer.pause()  # the connection leaves COPY mode for the quarantine statements
        # The store's own quarantine also removes the inbox row, and freezes and alerts when asked.
        self.store._quarantine(conn, row_id, chain, seq, raw, sig, reason, freeze=freeze)
        outcome.quarantined += 1


class _LedgerWriter:
    """Streams checked records into the ledger while the next ones are being verified.

    On PostgreSQL one COPY stays open across the batch, so the server stores
    records on its own core while this process verifies signatures; it is
    paused (the COPY ends) whenever another statement must run, e.g. a
    quarantine. On SQLite the rows go in with one executemany at the end.
    """

    COLUMNS = "chain, seq, hash, raw, sig, id, type, ts, kid, received_at"
    PG_TYPES = ("varchar", "int8", "bytea", "bytea", "bytea", "varchar", "varchar", "varchar", "varchar", "varchar")

    def __init__(self, conn: Connection, chain: str, now: str, pg: bool) -> None:
        self.driver = conn.connection.driver_connection
        self.chain, self.now, self.pg = chain, now, pg
        self._cursor = self._copy = self._ctx = None
        self._pending: list[tuple] = []

    def add(self, signed: SignedRecord) -> None:
        r = signed.record
        row = (self.chain, r.seq, signed.hash, signed.raw, signed.sig, r.id, r.type, r.ts, r.kid, self.now)
        if not self.pg:
            self._pending.append(row)
            return
        if self._copy is None:
            self._cursor = self.driver.cursor()
            # Looked up by the bytea type, psycopg's dumper is its DB-API Binary one, written in Python; the C
            # dumper for bytes puts the same bytes on the wire (~1 µs less per row).
            self._cursor.adapters.register_dumper(bytes, self._cursor.adapters.get_dumper(bytes, PyFormat.BINARY))
            # Binary: the bytea columns go as they are, not as hex text (half the client's cost per row).
            self._ctx = self._cursor.copy(f"COPY ledger ({self.COLUMNS}) FROM STDIN (FORMAT BINARY)",
                                          writer=_ChunkedWriter(self._cursor))
            self._copy = self._ctx.__enter__()
            self._copy.set_types(self.PG_TYPES)
        self._copy.write_row(row)

    def pause(self) -> None:
        if self._copy is not None:
            ctx, cursor, self._copy, self._cursor = self._ctx, self._cursor, None, None
            ctx.__exit__(None, None, None)
            cursor.close()
        if self._pending:
            rows, self._pending = self._pending, []
            self.driver.executemany(f"INSERT INTO ledger ({self.COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        self.pause()

    def abort(self, exc: BaseException) -> None:
        """Fail an open COPY so the transaction rolls back with the original error, not a COPY state error."""
        if self._copy is not None:
            ctx, cursor, self._copy, self._cursor = self._ctx, self._cursor, None, None
            try:
                ctx.__exit__(type(exc), exc, exc.__traceback__)
                cursor.close()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass


class _ChunkedWriter(LibpqWriter):
    """Hands COPY data to libpq in chunks of the largest size psycopg sends at once, not every ~32 KB.

    Each send wakes the server and costs the worker a wait; at 32 KB that was
    about 5 µs per record (measured). A background-thread writer measured slower.
    """

    CHUNK = 128 * 1024  # psycopg splits anything larger into pieces of this size

    def __init__(self, cursor: Any) -> None:
        super().__init__(cursor)
        self._buffer = bytearray()

    def write(self, data: Any) -> None:
        self._buffer += data
        if len(self._buffer) >= self.CHUNK:
            super().write(bytes(self._buffer))
            self._buffer.clear()

    def finish(self, exc: BaseException | None = None) -> None:
        if self._buffer and exc is None:
            super().write(bytes(self._buffer))
        self._buffer.clear()
        super().finish(exc)


def not_signed_by_chain(chain: str, seq: int, column_hash: bytes, raw: bytes, sig: bytes,
                        key: PublicKey) -> str | None:
    """Why this inbox row is not a record the chain's key signed for this place, or None when it is.

    Only such a record can prove a fork or a broken chain; anything else may
    have been written by anyone allowed to append to the inbox.
    """
    where = where_of(chain, seq)
    try:
        record, digest = parse_raw(raw, where)
        if record.chain != chain or record.seq != seq or digest != column_hash:
            return f"broken chain: {where}: inbox columns do not match the record bytes"
        check_signature(record, raw, digest, sig, key, where)
    except RecordError as err:
        return f"{err.reason}: {where}: {err.detail}"
    return None
