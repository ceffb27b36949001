"""A batch's steps become directory documents of their own: kind 'batch_step', key '<batch id>/<step id>'.

Before, a batch was one document holding every step, and each signature
appended the whole of it to directory_changes again: a 150-step batch left
6 MB of history for 190 KB of records (kiosk/domain/batches.py). The history
is append-only and earlier publications are checked against it, so nothing
is rewritten: each batch's latest document is followed by new versions, the
batch's own document without "steps" and one document per recorded step,
each naming the record (chain, seq) that last wrote the batch. The store
publishes them when it next opens with its key (CentralStore.open), and the
publication says DIRECTORY_FORMAT 2, which terminals require before they
apply a pull.

Revision ID: c0005
"""
from alembic import op
from sqlalchemy import text

from storage.doc_json import dump_doc, load_doc

revision = "c0005"
down_revision = "c0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    version = int(conn.execute(text(f"SELECT value FROM central_state WHERE name = 'directory_version'{lock}"))
                  .scalar_one())
    latest = conn.execute(text(
        "SELECT c.key, c.doc, c.chain, c.seq FROM directory_changes c JOIN "
        "(SELECT key, max(version) AS v FROM directory_changes WHERE kind = 'batch' GROUP BY key) m "
        "ON c.kind = 'batch' AND c.key = m.key AND c.version = m.v ORDER BY c.version")).all()
    rows = []
    for key, doc, chain, seq in latest:
        batch = load_doc(doc)
        steps = batch.pop("steps", None)
        if steps is None:
            continue
        version += 1
        rows.append({"v": version, "kind": "batch", "key": key, "doc": dump_doc(batch), "chain": chain, "seq": seq})
        for step_id, step in steps.items():
            version += 1
            rows.append({"v": version, "kind": "batch_step", "key": f"{key}/{step_id}", "doc": dump_doc(step),
                         "chain": chain, "seq": seq})
    if not rows:
        return
    conn.execute(text("INSERT INTO directory_changes (version, kind, key, doc, chain, seq) "
                      "VALUES (:v, :kind, :key, :doc, :chain, :seq)"), rows)
    conn.execute(text("UPDATE central_state SET value = :v WHERE name = 'directory_version'"), {"v": version})


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
