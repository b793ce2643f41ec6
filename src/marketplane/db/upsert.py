"""INSERT … ON CONFLICT in the connection's own dialect: both databases speak it, each through
its own SQLAlchemy construct (with the same `on_conflict_do_nothing` / `on_conflict_do_update`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
