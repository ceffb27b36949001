"""The directory as last pulled from the central store, where the pull stands, and the last sync outcome.

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
    # The sync worker's last outcome, so `kiosk sync status` and a restarted kiosk know it (not evidence).
    op.execute(
        """
        CREATE TABLE sync_status (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_sync TEXT,
            last_error TEXT,
            offline_since TEXT,
            failures INTEGER NOT NULL DEFAULT 0,
            next_attempt TEXT
        )
        """
    )
    op.execute("INSERT INTO sync_status (id, failures) VALUES (1, 0)")


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
