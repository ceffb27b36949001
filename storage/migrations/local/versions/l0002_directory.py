"""Directory cache (derived from records) and durable drafts.

Revision ID: l0002
"""
from alembic import op

revision = "l0002"
down_revision = "l0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The latest record time this chain has seen: a clock earlier than it went backwards.
    op.execute("ALTER TABLE chain_state ADD COLUMN high_ts TEXT")
    # Derived state: rebuilt from records at any time, so it may be updated in place.
    op.execute(
        """
        CREATE TABLE directory (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            doc TEXT NOT NULL,
            chain TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (kind, key)
        )
        """
    )
    # Unsigned work in progress: saved on every field so a lock or power cut loses nothing typed.
    op.execute(
        """
        CREATE TABLE drafts (
            user_id TEXT NOT NULL,
            batch_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            fields TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (user_id, batch_id, step_id)
        )
        """
    )


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
