"""Migrations apply, revert and re-apply on both databases; SQLite runs in WAL mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import create_pg_database, remove_pg_database
from marketplane.db import migrate
from marketplane.db.engine import connect


async def _tables(url: str) -> set[str]:
    db = connect(url)
    try:
        async with db.writer.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    finally:
        await db.dispose()
    return {n for n in names if not n.startswith("offers_fts") and n != "alembic_version"}


async def _round_trip(url: str) -> None:
    db = connect(url)
    try:
        await migrate.upgrade(db)
        await migrate.downgrade(db, "base")
    finally:
        await db.dispose()
    assert await _tables(url) == set()
    db = connect(url)
    try:
        await migrate.upgrade(db)
        await migrate.upgrade(db)  # a second upgrade is a no-op
    finally:
        await db.dispose()
    assert {"offers", "suppliers", "api_keys", "categories", "offer_attrs"} <= await _tables(url)


async def test_migrations_round_trip_on_sqlite(sqlite_url: str) -> None:
    await _round_trip(sqlite_url)


@pytest.mark.postgres
async def test_migrations_round_trip_on_postgres() -> None:
    name = f"mp_migrate_{os.getpid()}"
    url = await create_pg_database(name)
    try:
        await _round_trip(url)
    finally:
        await remove_pg_database(name)


async def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_url: str, tmp_path: Path) -> None:
    db = connect(sqlite_url)
    try:
        await migrate.upgrade(db)
        async with db.reader.connect() as conn:
            journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    finally:
        await db.dispose()
    assert (journal, keys, timeout) == ("wal", 1, 10000)
