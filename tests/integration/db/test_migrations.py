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


async def test_sales_accepted_before_payouts_count_as_released(sqlite_url: str) -> None:
    """Before 0008 an acceptance credited the supplier's payable directly: those supplier orders
    are marked released (and fulfilled, where they were), so no release posts them again."""
    db = connect(sqlite_url)
    try:
        await migrate.upgrade(db, "0007")
        async with db.writer.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO orders (id, client_id, customer_ref, status, currency, amount, "
                    "refunded_amount, expires_at, version, created_at, updated_at) VALUES "
                    "('ord_1', 'cli_1', 'c', 'paid', 'EUR', 300, 0, :t, 1, :t, :t)"
                ),
                {"t": "2026-11-01T00:00:00+00:00"},
            )
            for part, status in (("so_1", "accepted"), ("so_2", "completed"), ("so_3", "rejected")):
                await conn.execute(
                    sa.text(
                        "INSERT INTO supplier_orders (id, order_id, supplier_id, client_id, "
                        "status, currency, amount, accepted_amount, refunded_amount, version, "
                        "created_at, updated_at) VALUES (:id, 'ord_1', 'sup_1', 'cli_1', "
                        ":status, 'EUR', 100, 100, 0, 1, :t, :t)"
                    ),
                    {"id": part, "status": status, "t": "2026-11-02T00:00:00+00:00"},
                )
        # when
        await migrate.upgrade(db)
        async with db.writer.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT id, fulfilled_at IS NOT NULL, released_at IS NOT NULL "
                        "FROM supplier_orders ORDER BY id"
                    )
                )
            ).all()
    finally:
        await db.dispose()
    # then
    assert [tuple(r) for r in rows] == [("so_1", 0, 1), ("so_2", 1, 1), ("so_3", 0, 0)]
