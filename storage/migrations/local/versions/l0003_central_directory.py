"""The directory as last pulled from the central store, and where the pull stands.

Revision ID: l0003
"""
from alembic import op

revision = "l0003"
down_revision = "l0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The verified central base; the working `directory` is this base plus this kiosk's own unsynced records.
    op.execute(
        """
        CREATE TABLE central_directory (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            doc TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (kind, key)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE pull_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            publication_seq INTEGER NOT NULL,
            version INTEGER NOT NULL,
            own_upto INTEGER NOT NULL
        )
        """
    )
    op.execute("INSERT INTO pull_state (id, publication_seq, version, own_upto) VALUES (1, 0, 0, 0)")


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
