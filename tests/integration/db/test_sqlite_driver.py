"""The SQLite driver: each statement and its rows in one trip to the connection's thread, with
the same answers as aiosqlite's own; a writer's short transactions on the loop itself, never
waiting there for another connection's lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
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


async def _threads_of_statements(connection: Any, count: int) -> list[int]:
    """The thread each of `count` statements ran on (a function the statement calls), then a
    commit, which ends what the connection counts as one transaction."""
    seen: list[int] = []

    def where() -> int:
        seen.append(threading.get_ident())
        return 1

    await connection.create_function("where_am_i", 0, where)
    await connection.commit()  # what that took does not count
    for _ in range(count):
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT where_am_i()")
            await cursor.fetchall()
    await connection.commit()
    return seen


async def test_a_write_runs_on_the_loop_until_its_budget_is_spent(tmp_path: Path) -> None:
    # given a connection whose transactions may take an hour of the loop, and one with none
    loop_thread = threading.get_ident()
    roomy = await sqlite_driver.connect(str(tmp_path / "a.db"), inline_budget=3600.0)
    tight = await sqlite_driver.connect(str(tmp_path / "b.db"), inline_budget=1e-9)
    try:
        # when each runs a transaction of three statements, twice
        on_roomy = await _threads_of_statements(roomy, 3)
        on_tight = await _threads_of_statements(tight, 3) + await _threads_of_statements(tight, 3)
    finally:
        await roomy.close()
        await tight.close()
    # then the roomy one never left the loop; the tight one ran its first statement of each
    # transaction on the loop (the commit gave its budget back) and the rest on its thread
    assert on_roomy == [loop_thread] * 3
    assert on_tight[0] == on_tight[3] == loop_thread
    assert loop_thread not in (on_tight[1], on_tight[2], on_tight[4], on_tight[5])


async def test_a_locked_database_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    # given another connection holding the write lock, and an inline writer with a busy timeout
    path = str(tmp_path / "locked.db")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE t (v TEXT)")
    other.execute("BEGIN IMMEDIATE")
    writer = await sqlite_driver.connect(
        path, inline_budget=3600.0, busy_timeout_ms=10_000, timeout=0.0
    )
    ticked = asyncio.Event()

    async def tick() -> None:
        for _ in range(20):
            await asyncio.sleep(0.001)
        ticked.set()

    ticker = asyncio.create_task(tick())
    try:
        # when the writer begins (it must wait) and the lock is let go a little later
        begun = asyncio.create_task(writer.execute("BEGIN IMMEDIATE"))
        await ticked.wait()
        assert not begun.done()  # waiting, and the loop kept running meanwhile
        other.execute("COMMIT")
        await begun
        await writer.execute("INSERT INTO t VALUES ('written')")
        await writer.commit()
        # then it wrote, and its own busy timeout on the loop is still none
        async with writer.execute("PRAGMA busy_timeout") as cursor:
            assert await cursor.fetchone() == (0,)
    finally:
        ticker.cancel()
        await writer.close()
    assert other.execute("SELECT v FROM t").fetchall() == [("written",)]
    other.close()


async def test_an_inline_writer_through_the_engine_answers_as_before(tmp_path: Path) -> None:
    # given the app's engines on a file (inline writes by default)
    db = connect(f"sqlite+aiosqlite:///{tmp_path}/engine.db")
    try:
        async with db.writer.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
        # when a write breaks a constraint, and another commits
        async with db.writer.connect() as conn:
            await conn.execute(sa.text("INSERT INTO t (v) VALUES ('b')"))
            with pytest.raises(IntegrityError):
                await conn.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
            await conn.rollback()
        async with db.writer.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t (v) VALUES ('c')"))
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        # then the broken one rolled back whole, and the writer waits for no lock on the loop
        async with db.reader.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT v FROM t ORDER BY k"))).scalars().all()
    finally:
        await db.dispose()
    assert rows == ["a", "c"]
    assert timeout == 0
