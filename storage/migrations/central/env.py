"""Alembic environment for the central store (PostgreSQL or SQLite), run on a handed-over connection."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
