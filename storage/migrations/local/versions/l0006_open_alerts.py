"""An index of open alerts, newest first: the supervisor screen reads the newest of them, not every alert.

Every failed sign-in at every terminal of the site raises an alert, and the
directory each terminal pulls holds them all: a hundred thousand in a few
years. Listing the open ones by reading every alert cost 0.65 s and a peak
of 150 MB more at 100,000. Partial (open alerts only): an acknowledged alert
leaves it. The queries that use it are in storage/directory_local.py.

Revision ID: l0006
"""
from alembic import op

revision = "l0006"
down_revision = "l0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX directory_open_alerts ON directory (json_extract(doc, '$.at') DESC, key) "
               "WHERE kind = 'alert' AND json_extract(doc, '$.acknowledged_by') IS NULL")


def downgrade() -> None:
    raise NotImplementedError("the local store is append-only; restore from backup instead")
