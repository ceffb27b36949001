"""The central store: kiosks append raw records to an inbox; ingest verifies and moves them to the ledger.

Ingest rules (ARCHITECTURE.md "Stores"): the chain's device is enrolled and
approved; bytes are canonical; hash, signature, seq and prev continue the
chain head; a replay of a known record is acknowledged; a fork, a gap or a
bad record quarantines the record with its reason and freezes the chain, but
only when the chain's key signed it (a row any inbox writer could have made
is quarantined and alerted without freezing); nothing is ever dropped. One chain is ingested under a row lock on its head,
so concurrent workers never interleave it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

from kiosk.domain.chain import CHAIN_OPENED, CHECKPOINT, genesis_key
from kiosk.domain.clock import Clock, format_ts
from kiosk.domain.keys import PublicKey
from kiosk.domain.merkle import MerkleFrontier
from kiosk.domain.records import GENESIS_PREV, BrokenLink, RecordError, check_signature, parse_raw, split_chain
from storage import migrate
from storage.sqlite import sqlite_engine


class CentralError(Exception):
    """The central store cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class IngestReport:
    ingested: int = 0
    replays: int = 0
    quarantined: int = 0
    held: int = 0


def central_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        return sqlite_engine(Path(url[len("sqlite:///"):]), write=True)
    return create_engine(url, pool_pre_ping=True)


def safe_url(url: str) -> str:
    """The URL without any password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as a placeholder
        return "<central url>"


class CentralStore:
    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self.engine = central_engine(url)
        self.pg = self.engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, url: str, clock: Clock, *, migrate_schema: bool = True) -> "CentralStore":
        store = cls(url, clock)
        if migrate_schema:
            with store.engine.begin() as conn:
                migrate.upgrade(conn, "central", safe_url(url))
        return store

    def close(self) -> None:
        self.engine.dispose()

    # -- kiosk side: push and receipts ------------------------------------
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

    def receipt(self, chain: str) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT upto, hash FROM receipts WHERE chain = :c ORDER BY upto DESC LIMIT 1"),
                               {"c": chain}).first()
        return None if row is None else (int(row[0]), row[1])

    def device_status(self, chain: str) -> tuple[str, str | None] | None:
        """(status, reason) of a device chain as the central store sees it (the kiosk role may read only these)."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT status, reason FROM chain_heads WHERE chain = :c"), {"c": chain}).first()
        return None if row is None else (row[0], row[1])

    def head(self, chain: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM chain_heads WHERE chain = :c"), {"c": chain}).mappings().first()
        return dict(row) if row else None

    # -- devices -----------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(
                "SELECT chain, device_id, epoch, kid, public_key, status, seq, reason FROM chain_heads ORDER BY chain"
            )).mappings()]

    def set_device_status(self, chain: str, status: str, by: str, reason: str) -> None:
        """Approve, reject or revoke a device chain (never from the device itself: only here)."""
        if status not in ("approved", "rejected", "revoked"):
            raise CentralError("status must be approved, rejected or revoked")
        if len(reason.strip()) < 4:
            raise CentralError("give a reason (at least 4 characters)")
        with self.engine.begin() as conn:
            head = conn.execute(text("SELECT status, seq FROM chain_heads WHERE chain = :c"), {"c": chain}).first()
            if head is None:
                raise CentralError(f"no device chain {chain}; it appears once the kiosk has sent its first record")
            extra = ", revoked_after_seq = :seq" if status == "revoked" else ""
            conn.execute(text(f"UPDATE chain_heads SET status = :s, reason = :r{extra} WHERE chain = :c"),
                         {"s": status, "r": f"{by}: {reason}", "c": chain, "seq": head[1]})
            self._alert(conn, f"device.{status}", chain, f"{chain} {status} by {by}: {reason}")

    # -- ingest ------------------------------------------------------------
    def ingest_once(self, batch: int = 500) -> IngestReport:
        """Verify and move up to ``batch`` inbox rows; returns what happened."""
        totals = IngestReport()
        with self.engine.begin() as conn:
            lock = " FOR UPDATE SKIP LOCKED" if self.pg else ""
            rows = conn.execute(text(
                "SELECT id, chain, seq, hash, raw, sig FROM inbox WHERE chain NOT IN "
                "(SELECT chain FROM chain_heads WHERE status = 'pending') "
                f"ORDER BY chain, seq, id LIMIT :n{lock}"), {"n": batch}).all()
            for chain, group in groupby(rows, key=lambda r: r[1]):
                report = self._ingest_chain(conn, chain, list(group))
                totals = IngestReport(totals.ingested + report.ingested, totals.replays + report.replays,
                                      totals.quarantined + report.quarantined, totals.held + report.held)
        return totals

    def ingest_all(self, batch: int = 500) -> IngestReport:
        total = IngestReport()
        while True:
            r = self.ingest_once(batch)
            total = IngestReport(total.ingested + r.ingested, total.replays + r.replays,
                                 total.quarantined + r.quarantined, total.held + r.held)
            if r.ingested + r.replays + r.quarantined == 0:
                return total

    def _ingest_chain(self, conn: Connection, chain: str, rows: list) -> IngestReport:
        now = format_ts(self.clock.now())
        lock = " FOR UPDATE" if self.pg else ""
        head = conn.execute(text(f"SELECT * FROM chain_heads WHERE chain = :c{lock}"), {"c": chain}).mappings().first()
        head = dict(head) if head else None
        ingested = replays = quarantined = held = 0
        frontier = MerkleFrontier.from_state(head["seq"], json.loads(head["frontier"])) if head else None
        for row_id, _, seq, digest, raw, sig in rows:
            raw, sig, digest = bytes(raw), bytes(sig), bytes(digest)
            if head is None:
                head = self._enroll(conn, chain, seq, raw)
                if head is None:
                    held += 1
                    continue
                frontier = MerkleFrontier()
                if head["status"] == "pending":
                    held += 1
                    continue
            if head["status"] == "pending":
                held += 1
                continue
            existing = conn.execute(text("SELECT hash FROM ledger WHERE chain = :c AND seq = :s"),
                                    {"c": chain, "s": seq}).first()
            if existing is not None:
                if bytes(existing[0]) == digest:
                    replays += 1
                    self._drop_inbox(conn, row_id)
                else:
                    quarantined += 1
                    forged = _not_signed_by_chain(chain, seq, digest, raw, sig, head)
                    if forged is not None:
                        self._reject(conn, row_id, chain, seq, raw, sig, forged)
                    else:
                        self._quarantine(conn, row_id, chain, seq, raw, sig,
                                         f"fork: record {chain} #{seq}: a different record is already in the "
                                         "ledger at this place", freeze=True)
                        head["status"] = "frozen"
                continue
            if head["status"] in ("frozen", "rejected"):
                quarantined += 1
                self._quarantine(conn, row_id, chain, seq, raw, sig, f"chain is {head['status']}", freeze=False)
                continue
            if head["status"] == "revoked" and seq > (head["revoked_after_seq"] or 0):
                quarantined += 1
                self._quarantine(conn, row_id, chain, seq, raw, sig, "after revocation", freeze=False)
                continue
            try:
                if seq != head["seq"] + 1:
                    raise BrokenLink(f"record {chain} #{seq}", f"gap: the ledger head is #{head['seq']}")
                record, computed = parse_raw(raw)
                if record.chain != chain or record.seq != seq or computed != digest:
                    raise BrokenLink(f"record {chain} #{seq}", "inbox columns do not match the record bytes")
                if record.prev != head["hash"]:
                    raise BrokenLink(f"record {chain} #{seq}", "prev does not match the ledger head")
                check_signature(record, raw, computed, sig, PublicKey(_unb64(head["public_key"])))
                if record.type == CHECKPOINT and (record.body.get("size") != frontier.size
                                                  or record.body.get("root") != frontier.root().hex()):
                    raise BrokenLink(f"record {chain} #{seq}", "checkpoint Merkle root does not match the ledger")
            except RecordError as err:
                quarantined += 1
                reason = f"{err.reason}: {err.where}: {err.detail}"
                if _not_signed_by_chain(chain, seq, digest, raw, sig, head) is not None:
                    self._reject(conn, row_id, chain, seq, raw, sig, reason)
                    continue
                self._quarantine(conn, row_id, chain, seq, raw, sig, reason, freeze=True)
                head["status"] = "frozen"
                continue
            conn.execute(text("INSERT INTO ledger (chain, seq, hash, raw, sig, id, type, ts, kid, received_at) "
                              "VALUES (:c, :s, :h, :r, :g, :id, :t, :ts, :k, :at)"),
                         {"c": chain, "s": seq, "h": digest, "r": raw, "g": sig, "id": record.id, "t": record.type,
                          "ts": record.ts, "k": record.kid, "at": now})
            frontier.add(digest)
            head["seq"], head["hash"], head["last_kiosk_ts"] = seq, digest.hex(), record.ts
            self._drop_inbox(conn, row_id)
            ingested += 1
        if head is not None and ingested:
            conn.execute(text("UPDATE chain_heads SET seq = :s, hash = :h, frontier = :f, last_kiosk_ts = :t "
                              "WHERE chain = :c"),
                         {"s": head["seq"], "h": head["hash"], "f": json.dumps(frontier.state()),
                          "t": head["last_kiosk_ts"], "c": chain})
        if head is not None and (ingested or replays):
            conn.execute(text("INSERT INTO receipts (chain, upto, hash, central_ts) VALUES (:c, :u, :h, :t) "
                              "ON CONFLICT (chain, upto) DO NOTHING"),
                         {"c": chain, "u": head["seq"], "h": head["hash"], "t": now})
        return IngestReport(ingested, replays, quarantined, held)

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
        conn.execute(text("INSERT INTO chain_heads (chain, device_id, epoch, kid, public_key, status, seq, hash, "
                          "frontier) VALUES (:chain, :device_id, :epoch, :kid, :public_key, :status, :seq, :hash, "
                          ":frontier)"), head)
        self._alert(conn, "device.pending", chain,
                    f"{chain} asks to be registered; key fingerprint {key.fingerprint}")
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

    def _reject(self, conn: Connection, row_id: int, chain: str, seq: int, raw: bytes, sig: bytes,
                reason: str) -> None:
        """Quarantine a row the chain's key did not sign, without freezing the chain.

        Anyone who may append to the inbox (every terminal's login) can write such a row under
        any chain's name; if it froze the chain, one terminal could stop another. Only a record
        signed with the chain's own key can prove a fork.
        """
        self._quarantine(conn, row_id, chain, seq, raw, sig, reason, freeze=False)
        self._alert(conn, "record.rejected", chain, f"{chain} #{seq} rejected (not signed by this chain's key): "
                                                    f"{reason}")

    def _alert(self, conn: Connection, kind: str, chain: str | None, message: str) -> None:
        conn.execute(text("INSERT INTO alerts (kind, chain, message, at) VALUES (:k, :c, :m, :t)"),
                     {"k": kind, "c": chain, "m": message, "t": format_ts(self.clock.now())})

    def quarantine(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text("SELECT chain, seq, reason, at FROM quarantine ORDER BY id")).mappings()]

    def alerts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text("SELECT kind, chain, message, at FROM alerts ORDER BY id")).mappings()]

    def ledger_count(self, chain: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM ledger WHERE chain = :c"), {"c": chain}).scalar_one())

    def inbox_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM inbox")).scalar_one())


def _not_signed_by_chain(chain: str, seq: int, digest: bytes, raw: bytes, sig: bytes,
                         head: dict[str, Any]) -> str | None:
    """Why this inbox row is not a record the chain's key signed at this place, or None when it is."""
    where = f"record {chain} #{seq}"
    try:
        record, computed = parse_raw(raw, where)
        if record.chain != chain or record.seq != seq or computed != digest:
            return f"broken chain: {where}: inbox columns do not match the record bytes"
        check_signature(record, raw, computed, sig, PublicKey(_unb64(head["public_key"])), where)
    except RecordError as err:
        return f"{err.reason}: {where}: {err.detail}"
    return None


def _unb64(text_: str) -> bytes:
    from kiosk.domain.keys import unb64url

    return unb64url(text_)
