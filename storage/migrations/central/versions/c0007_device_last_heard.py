"""The device registry also says when each terminal's records were last taken in (its newest receipt).

An admin kiosk's Devices screen reads this view, and kiosk logins have no
right on the receipts table: a terminal that has stopped syncing shows there
while it is still away (its own ``sync.offline`` alert only arrives once it is
back). The view runs with its owner's rights, as before; the column is added
last, so a terminal of an earlier version reads the view as it did.

Revision ID: c0007
"""
from alembic import op

revision = "c0007"
down_revision = "c0006"
branch_labels = None
depends_on = None

REGISTRY = ("SELECT h.chain, h.device_id, h.epoch, h.kid, h.public_key, h.status, h.seq, h.reason, "
            "(SELECT r.central_ts FROM receipts r WHERE r.chain = h.chain ORDER BY r.upto DESC LIMIT 1) AS taken_in "
            "FROM chain_heads h WHERE h.status != 'central'")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP VIEW device_registry")
        op.execute(f"CREATE VIEW device_registry AS {REGISTRY}")
    else:
        op.execute(f"CREATE OR REPLACE VIEW device_registry AS {REGISTRY}")  # its grant to kiosk_device stays


def downgrade() -> None:
    raise NotImplementedError("the central store is append-only; restore from backup instead")
