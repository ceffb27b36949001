"""Where a terminal finds the central store's newest rebase publication.

A central store restored from an older backup has forgotten the end of its own
chain: publications the terminals already applied are gone, and the next ones
reuse their numbers. A terminal notices (the publication it applied last is
not there, or is another record) and stops pulling; the central-key holder
then runs ``kiosk central rebase``, a snapshot publication marked as one, and
the terminals take it in place of what they hold. ``rebase_seq`` says which
publication that is; the view lets kiosk logins read it, and nothing else of
``central_state``.

Revision ID: c0008
"""
from alembic import op

revision = "c0008"
down_revision = "c0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("INSERT INTO central_state (name, value) VALUES ('rebase_seq', 0)")
    op.execute("CREATE VIEW directory_rebase AS SELECT value AS seq FROM central_state WHERE name = 'rebase_seq'")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("GRANT SELECT ON directory_rebase TO kiosk_device")


def downgrade() -> None:
    raise NotImplementedError("the central store is append-only; restore from backup instead")
