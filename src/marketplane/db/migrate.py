"""Alembic, run programmatically on a connection the caller owns (works for both drivers)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from marketplane.db.engine import Database

_HERE = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6D6B706C  # advisory lock so concurrent `serve` processes migrate once


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    return config


def _run(connection: Connection, revision: str, downgrade: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    if downgrade:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.writer.begin() as conn:
        await conn.run_sync(_run, revision, False)


async def downgrade(db: Database, revision: str = "base") -> None:
    async with db.writer.begin() as conn:
        await conn.run_sync(_run, revision, True)
