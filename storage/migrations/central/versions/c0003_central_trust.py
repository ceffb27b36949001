"""Central key and chain, signed receipts, the derived directory and its publications.

Revision ID: c0003
"""
import sqlalchemy as sa
from alembic import op

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    # Plain ADD COLUMN (no table rebuild, so SQLite keeps the append-only triggers).
    op.add_column("receipts", sa.Column("kid", sa.String(16), nullable=True))
    op.add_column("receipts", sa.Column("sig", sa.LargeBinary(64), nullable=True))
    # Every version of every directory document, in the order ingest derived it (append-only).
    op.create_table(
        "directory_changes",
        sa.Column("version", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.Column("chain", sa.String(80), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    op.create_index("directory_changes_key", "directory_changes", ["kind", "key", "version"])
    # Small mutable counters of the derivation (directory version, last published version).
    op.create_table(
        "central_state",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO central_state (name, value) VALUES ('directory_version', 0), ('published_version', 0)")
    op.execute("CREATE VIEW directory_publications AS SELECT chain, seq, raw, sig FROM ledger "
               "WHERE type = 'directory.published' AND chain LIKE 'central:%'")
    op.execute("CREATE VIEW central_keys AS SELECT chain, kid, public_key FROM chain_heads "
               "WHERE chain LIKE 'central:%'")
    if pg:
        op.execute("CREATE TRIGGER directory_changes_append_only BEFORE UPDATE OR DELETE ON directory_changes "
                   "FOR EACH ROW EXECUTE FUNCTION kiosk_append_only()")
        op.execute("GRANT SELECT ON directory_changes, directory_publications, central_keys TO kiosk_device")
        op.execute("GRANT SELECT (chain, device_id, epoch, status, reason) ON chain_heads TO kiosk_device")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER directory_changes_no_{action.lower()} BEFORE {action} ON directory_changes "
                       "BEGIN SELECT RAISE(ABORT, 'directory_changes is append-only'); END")


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
