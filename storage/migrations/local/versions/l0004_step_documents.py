"""A batch's steps become documents of their own: kind 'batch_step', key '<batch id>/<step id>'.

Before, a batch was one directory document holding every step, rewritten at
each signature (kiosk/domain/batches.py says why that changed). Both the
working directory and the pulled central base are split here, in the
migration's transaction: each step's document keeps the record (chain, seq)
or central version that last wrote its batch, and the batch's own document
keeps everything but "steps". Nothing is added or lost; the records, from
which all of it derives, are untouched.

Revision ID: l0004
"""
from alembic import op
from sqlalchemy import text

from storage.doc_json import dump_doc, load_doc

revision = "l0004"
down_revision = "l0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    for table, origin in (("directory", ("chain", "seq")), ("central_directory", ("version",))):
        columns = ", ".join(origin)
        marks = ", ".join(f":{c}" for c in origin)
        rows = conn.execute(text(f"SELECT key, doc, {columns} FROM {table} WHERE kind = 'batch'")).mappings().all()
        for row in rows:
            batch = load_doc(row["doc"])
            steps = batch.pop("steps", None)
            if steps is None:
                continue
            kept = {c: row[c] for c in origin}
            conn.execute(text(f"UPDATE {table} SET doc = :doc WHERE kind = 'batch' AND key = :key"),
                         {"doc": dump_doc(batch), "key": row["key"]})
            for step_id, step in steps.items():
                conn.execute(text(f"INSERT INTO {table} (kind, key, doc, {columns}) "
                                  f"VALUES ('batch_step', :key, :doc, {marks})"),
                             {"key": f"{row['key']}/{step_id}", "doc": dump_doc(step), **kept})


def downgrade() -> None:
    raise NotImplementedError("the local store is append-only; restore from backup instead")
