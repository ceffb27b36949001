"""An index of batches, newest first: the worklist reads one page of them, not every one.

A terminal keeps its batches for years (tens of thousands in a 1M-record
store); listing them all to show fifty cost a third of a second and tens of
megabytes at each refresh. Partial (batches only), so the step documents a
signature writes do not maintain it. The queries that use it are in
storage/directory_local.py and spell the same expression.

Revision ID: l0005
"""
from alembic import op

revision = "l0005"
down_revision = "l0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX directory_batch_newest ON directory "
               "(json_extract(doc, '$.created_at') DESC, key) WHERE kind = 'batch'")


def downgrade() -> None:
    raise NotImplementedError("the local store is append-only; restore from backup instead")
