"""Least privilege on PostgreSQL: the kiosk_device role may only append to the inbox and read receipts
and device status; the evidence tables cannot be changed through it.

Revision ID: c0002
"""
from alembic import op

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no roles: an embedded central store belongs to one site process
    op.execute("""
        DO $$ BEGIN
            CREATE ROLE kiosk_device NOLOGIN;
        EXCEPTION WHEN duplicate_object THEN NULL; END $$""")
    op.execute("REVOKE ALL ON inbox, ledger, chain_heads, receipts, quarantine, alerts FROM kiosk_device")
    op.execute("GRANT INSERT ON inbox TO kiosk_device")
    op.execute("GRANT USAGE ON SEQUENCE inbox_id_seq TO kiosk_device")
    op.execute("GRANT SELECT ON receipts TO kiosk_device")
    op.execute("GRANT SELECT (chain, status, reason) ON chain_heads TO kiosk_device")


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
