"""The device chain (append-only), its anchors and its head state.

Revision ID: l0001
"""
from alembic import op

revision = "l0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("records", "anchors")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE records (
            chain TEXT NOT NULL,
            seq INTEGER NOT NULL CHECK (seq >= 1),
            hash BLOB NOT NULL CHECK (length(hash) = 32),
            raw BLOB NOT NULL,
            sig BLOB NOT NULL CHECK (length(sig) = 64),
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            ts TEXT NOT NULL,
            PRIMARY KEY (chain, seq)
        )
        """
    )
    op.execute("CREATE INDEX records_type ON records (type, chain, seq)")
    op.execute("CREATE INDEX records_ts ON records (ts)")
    op.execute(
        """
        CREATE TABLE anchors (
            chain TEXT NOT NULL,
            seq INTEGER NOT NULL,
            hash_hex TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (chain, seq, source)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE chain_state (
            chain TEXT PRIMARY KEY,
            head_seq INTEGER NOT NULL,
            head_hash TEXT NOT NULL,
            frontier TEXT NOT NULL,
            last_checkpoint_seq INTEGER NOT NULL,
            last_checkpoint_ts TEXT NOT NULL,
            synced_upto INTEGER NOT NULL DEFAULT 0 CHECK (synced_upto <= head_seq)
        )
        """
    )
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"""
                CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} is not allowed'); END
                """
            )
    # The head marker may only move forward: a rollback of it hides a truncation.
    op.execute(
        """
        CREATE TRIGGER chain_state_forward BEFORE UPDATE ON chain_state
        WHEN NEW.head_seq < OLD.head_seq OR NEW.synced_upto < OLD.synced_upto
        BEGIN SELECT RAISE(ABORT, 'chain_state only moves forward'); END
        """
    )
    op.execute(
        "CREATE TRIGGER chain_state_no_delete BEFORE DELETE ON chain_state "
        "BEGIN SELECT RAISE(ABORT, 'chain_state is append-only: DELETE is not allowed'); END"
    )


def downgrade() -> None:
    raise NotImplementedError("the local store is append-only; restore from backup instead")
