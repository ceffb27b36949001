"""Streams a local store's records in time order for audit exports and the audit viewer."""

from __future__ import annotations

from typing import Iterator

from kiosk.domain.batches import ids_alike
from kiosk.domain.chain import genesis_key
from kiosk.domain.keys import PublicKey
from kiosk.domain.records import RecordError, parse_raw
from kiosk.domain.exports import AuditFilter
from storage.sqlite import sqlite_engine

BATCH = 1000


class LocalAuditSource:
    def __init__(self, db_path) -> None:
        self.engine = sqlite_engine(db_path, write=False)

    def iter_raw(self, flt: AuditFilter, after: tuple[str, str, int] | None = None,
                 before: tuple[str, str, int] | None = None) -> Iterator[tuple[bytes, bytes, bytes]]:
        """Matching records in (ts, chain, seq) order, strictly after ``after``.

        With ``before`` instead, the records strictly before it, newest first
        (the audit viewer pages backwards this way). Either way the read is
        keyset-paged: each batch is one short query, whatever the offset.
        """
        if before is not None:
            yield from self._iter(flt, before, backwards=True)
            return
        yield from self._iter(flt, after or ("", "", 0), backwards=False)

    def _iter(self, flt: AuditFilter, cursor: tuple[str, str, int],
              backwards: bool) -> Iterator[tuple[bytes, bytes, bytes]]:
        where, params = ["1=1"], []
        if flt.start:
            where.append("ts >= ?")
            params.append(flt.start)
        if flt.end:
            where.append("ts < ?")
            params.append(flt.end)
        if flt.types:
            where.append(f"type IN ({','.join('?' * len(flt.types))})")
            params.extend(flt.types)
        if flt.device:
            where.append("(chain = ? OR chain LIKE ?)")
            params.extend([flt.device, flt.device + ":%"])
        op, order = ("<", "DESC") if backwards else (">", "ASC")
        while True:
            sql = (f"SELECT raw, sig, hash, ts, chain, seq FROM records WHERE {' AND '.join(where)} "
                   f"AND (ts, chain, seq) {op} (?, ?, ?) ORDER BY ts {order}, chain {order}, seq {order} LIMIT ?")
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql(sql, tuple(params) + tuple(cursor) + (BATCH,)).all()
            for raw, sig, digest, *_ in rows:
                yield bytes(raw), bytes(sig), bytes(digest)
            if len(rows) < BATCH:
                return
            cursor = tuple(rows[-1][3:6])

    def record(self, chain: str, seq: int) -> tuple[bytes, bytes, bytes] | None:
        """One record's (raw, sig, hash), for the audit viewer's detail view."""
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT raw, sig, hash FROM records WHERE chain = ? AND seq = ?",
                                       (chain, seq)).first()
        return None if row is None else (bytes(row[0]), bytes(row[1]), bytes(row[2]))

    def record_types(self) -> set[str]:
        # One step of the records_type index per distinct type (a few dozen), not a scan of a million rows.
        with self.engine.connect() as conn:
            return {t for (t,) in conn.exec_driver_sql(
                "WITH RECURSIVE t(type) AS (SELECT min(type) FROM records UNION ALL "
                "SELECT (SELECT min(type) FROM records WHERE type > t.type) FROM t WHERE t.type IS NOT NULL) "
                "SELECT type FROM t WHERE type IS NOT NULL")}

    def batches_named(self, batch_id: str) -> list[str]:
        with self.engine.connect() as conn:
            keys = conn.exec_driver_sql("SELECT key FROM directory WHERE kind = 'batch' AND key = ?", (batch_id,))
            if keys.first() is not None:
                return [batch_id]
            return ids_alike((key for (key,) in conn.exec_driver_sql(  # only the ids: short even at 50,000
                "SELECT key FROM directory WHERE kind = 'batch'")), batch_id)

    def chain_key(self, chain: str) -> PublicKey | None:
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT raw FROM records WHERE chain = ? AND seq = 1", (chain,)).first()
        if row is None:
            return None
        record, _ = parse_raw(bytes(row[0]))
        try:
            return genesis_key(dict(record.body), "genesis")
        except RecordError:
            return None

    def close(self) -> None:
        self.engine.dispose()
