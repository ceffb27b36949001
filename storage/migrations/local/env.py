"""Alembic environment for the local (kiosk) store.

Migrations run on the connection the store hands over, inside its write
transaction, so a half-applied schema change is never committed.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
