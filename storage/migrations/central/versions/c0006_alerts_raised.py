"""Which central alerts have been raised as records of the central chain, for the terminals' alert screens.

The alerts table (a fork that froze a chain, a rejected record, a directory
conflict, a terminal asking to be registered) is append-only evidence, and
nobody on the floor reads a table in the central database. Each alert is
now also an ``alert.raised`` record of the central chain, derived into the
directory like any terminal's, so it reaches every supervisor's screen with
the next pull. This table says which alerts are raised and by which record;
alerts from before the migration are raised at the next publication.

Revision ID: c0006
"""
import sqlalchemy as sa
from alembic import op

revision = "c0006"
down_revision = "c0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts_raised",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),  # the central chain's alert.raised record
        sa.Column("at", sa.String(27), nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER alerts_raised_no_{action.lower()} BEFORE {action} ON alerts_raised "
                       "BEGIN SELECT RAISE(ABORT, 'alerts_raised is append-only'); END")
    else:
        op.execute("CREATE TRIGGER alerts_raised_append_only BEFORE UPDATE OR DELETE ON alerts_raised "
                   "FOR EACH ROW EXECUTE FUNCTION kiosk_append_only()")


def downgrade() -> None:
    raise NotImplementedError("the central store is append-only; restore from backup instead")
