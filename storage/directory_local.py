"""The kiosk's directory cache: kept in step with the chain by a projector in the append transaction."""

from __future__ import annotations

import json
from typing import Any, Iterator

from sqlalchemy.engine import Connection, Engine

from kiosk.domain import batches, directory
from kiosk.domain.records import SignedRecord


def directory_projector(conn: Connection, signed: SignedRecord) -> None:
    """Apply one record's directory changes; raising aborts the whole append."""
    db = conn.connection.driver_connection

    def get(kind: str, key: str) -> dict | None:
        row = db.execute("SELECT doc FROM directory WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return None if row is None else json.loads(row[0])

    for kind, key, doc in directory.project(signed.record, get) + batches.project(signed.record, get):
        db.execute(
            "INSERT INTO directory (kind, key, doc, chain, seq) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc, chain = excluded.chain, seq = excluded.seq",
            (kind, key, json.dumps(doc, ensure_ascii=False), signed.record.chain, signed.record.seq),
        )


class LocalDirectory:
    """Read side of the directory cache."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT doc FROM directory WHERE kind = ? AND key = ?", (kind, key)).first()
        return None if row is None else json.loads(row[0])

    def all(self, kind: str) -> Iterator[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT doc FROM directory WHERE kind = ? ORDER BY key", (kind,)).all()
        for (doc,) in rows:
            yield json.loads(doc)

    def count(self, kind: str) -> int:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM directory WHERE kind = ?", (kind,)).scalar_one()
