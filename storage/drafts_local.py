"""Durable drafts: every typed field is committed (synchronous=FULL) before the UI moves on."""

from __future__ import annotations

from typing import Mapping

from kiosk.domain.clock import Clock, format_ts
from storage.doc_json import dump_doc, load_doc
from storage.local_store import LocalStore


class LocalDrafts:
    def __init__(self, store: LocalStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def save_draft(self, user_id: str, batch_id: str, step_id: str, fields: Mapping[str, str]) -> None:
        with self.store.side_transaction() as db:
            db.execute(
                "INSERT INTO drafts (user_id, batch_id, step_id, fields, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (user_id, batch_id, step_id) DO UPDATE SET fields = excluded.fields, "
                "updated_at = excluded.updated_at",
                (user_id, batch_id, step_id, dump_doc(dict(fields)), format_ts(self.clock.now())),
            )

    def load_draft(self, user_id: str, batch_id: str, step_id: str,
                   newer_than: str | None = None) -> dict[str, str] | None:
        with self.store.read_engine().connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT fields FROM drafts WHERE user_id = ? AND batch_id = ? AND step_id = ? AND updated_at > ?",
                (user_id, batch_id, step_id, newer_than or "")).first()
        return None if row is None else load_doc(row[0])

    def clear_draft(self, user_id: str, batch_id: str, step_id: str) -> None:
        with self.store.side_transaction() as db:
            db.execute("DELETE FROM drafts WHERE user_id = ? AND batch_id = ? AND step_id = ?",
                                 (user_id, batch_id, step_id))

    def purge_draft(self, user_id: str, batch_id: str, step_id: str) -> None:
        """Clear a draft that held a secret, and the log's earlier versions of it (secure_delete zeroes
        the row's old bytes in the database file)."""
        self.clear_draft(user_id, batch_id, step_id)
        self.store.truncate_wal()
