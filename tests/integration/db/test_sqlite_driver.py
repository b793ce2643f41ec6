"""The SQLite driver: each statement and its rows in one trip to the connection's thread, with
the same answers as aiosqlite's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplane.db import sqlite_driver
from marketplane.db.engine import connect


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    db = connect(f"sqlite+aiosqlite:///{tmp_path}/driver.db")
    async with db.writer.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield db.writer
    await db.dispose()


async def test_statements_rows_and_errors_through_sqlalchemy(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    original = sqlite_driver.OneTripConnection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(sqlite_driver.OneTripConnection, "_execute", counted)
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))  # the transaction begun (a statement of its own)
        trips.clear()
        inserted = await conn.execute(sa.text("INSERT INTO t (v) VALUES (:v)"), {"v": "a"})
        assert inserted.rowcount == 1 and inserted.lastrowid == 1
        assert trips == ["_execute_and_fetch"]  # no trip for the cursor or for closing it
        many = await conn.execute(
            sa.text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}]
        )
        assert many.rowcount == 2
        trips.clear()
        rows = (await conn.execute(sa.text("SELECT k, v FROM t ORDER BY k"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
        assert trips == ["_execute_and_fetch"]
        assert await conn.scalar(sa.text("SELECT count(*) FROM t WHERE v > :v"), {"v": "a"}) == 2
        with pytest.raises(IntegrityError):
            await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
        await conn.rollback()


async def test_rows_read_a_few_at_a_time(tmp_path: Path) -> None:
    connection = await sqlite_driver.connect(str(tmp_path / "rows.db"))
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT value FROM json_each('[1, 2, 3, 4, 5]')")
            assert await cursor.fetchone() == (1,)
            assert await cursor.fetchmany(2) == [(2,), (3,)]
            assert await cursor.fetchall() == [(4,), (5,)]
            assert await cursor.fetchone() is None and await cursor.fetchmany(3) == []
            await cursor.execute("CREATE TABLE x (a)")
            assert cursor.description is None
    finally:
        await connection.close()
