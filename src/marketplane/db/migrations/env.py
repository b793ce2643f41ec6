"""Alembic environment: always handed a connection by marketplane.db.migrate."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `marketplane init` or marketplane.db.migrate")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
context.run_migrations()
