"""The terminal remembers which central publication it applied last: its hash and its (central) time.

A central store restored from an older backup has lost the end of its chain
and reuses those publication numbers for other records: by number alone, a
terminal would skip what it thinks it has seen, or apply a delta onto a
directory the central store no longer has. With the hash it notices, stops
pulling and says so; with the time it takes a rebase (``kiosk central
rebase``) only if it was signed after what it applied. Empty on a store of an
earlier version until its next pull.

Revision ID: l0007
"""
from alembic import op

revision = "l0007"
down_revision = "l0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE pull_state ADD COLUMN publication_hash TEXT NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE pull_state ADD COLUMN publication_ts TEXT NOT NULL DEFAULT ''")


def downgrade() -> None:
    raise NotImplementedError("the local store is append-only; restore from backup instead")
