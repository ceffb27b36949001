"""Ingest wakes up when kiosks push: every inbox insert notifies channel kiosk_inbox (PostgreSQL).

The trigger function runs with the rights of the inserting role (no
SECURITY DEFINER): pg_notify needs no table rights, so kiosk_device logins
keep exactly the rights c0002 gave them. One notification per statement;
PostgreSQL folds identical notifications of one transaction into one.

Revision ID: c0004
"""
from alembic import op

revision = "c0004"
down_revision = "c0003"
branch_labels = None
depends_on = None

CHANNEL = "kiosk_inbox"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no LISTEN/NOTIFY: the ingest loop polls there
    op.execute(f"""
        CREATE OR REPLACE FUNCTION kiosk_inbox_notify() RETURNS trigger AS $$
        BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$ LANGUAGE plpgsql""")
    op.execute("CREATE TRIGGER inbox_notify AFTER INSERT ON inbox "
               "FOR EACH STATEMENT EXECUTE FUNCTION kiosk_inbox_notify()")


def downgrade() -> None:
    raise NotImplementedError("restore from backup instead")
