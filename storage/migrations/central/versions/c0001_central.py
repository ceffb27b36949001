"""Central store: inbox, ledger, chain heads, receipts, quarantine, alerts.

Revision ID: c0001
"""
import sqlalchemy as sa
from alembic import op

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(80), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("sig", sa.LargeBinary(64), nullable=False),
        sa.Column("received_at", sa.String(27), nullable=False),
        sa.UniqueConstraint("chain", "seq", "hash", name="inbox_once"),
    )
    op.create_table(
        "ledger",
        sa.Column("chain", sa.String(80), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("sig", sa.LargeBinary(64), nullable=False),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(27), nullable=False),
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("received_at", sa.String(27), nullable=False),
    )
    op.create_index("ledger_type", "ledger", ["type", "ts"])
    op.create_table(
        "chain_heads",
        sa.Column("chain", sa.String(80), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # pending | approved | rejected | revoked | frozen
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("revoked_after_seq", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("last_kiosk_ts", sa.String(27), nullable=True),
    )
    op.create_table(
        "receipts",
        sa.Column("chain", sa.String(80), primary_key=True),
        sa.Column("upto", sa.BigInteger(), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("central_ts", sa.String(27), nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(80), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("sig", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.String(27), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("chain", sa.String(80), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.String(27), nullable=False),
    )
    # The evidence tables are append-only for everyone, including the ingest worker.
    bind = op.get_bind()
    for table in ("ledger", "receipts", "quarantine", "alerts"):
        if bind.dialect.name == "sqlite":
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
        else:
            op.execute("""
                CREATE OR REPLACE FUNCTION kiosk_append_only() RETURNS trigger AS $$
                BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql""")
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION kiosk_append_only()")


def downgrade() -> None:
    raise NotImplementedError("the central store is append-only; restore from backup instead")
