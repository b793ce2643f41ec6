"""aiosqlite with one trip to the connection's thread per statement.

aiosqlite runs every call on its connection's own thread and hands the answer back to the event
loop, which it reaches only on its next turn; SQLAlchemy makes four such calls per statement
(make a cursor, execute, fetch the rows, close the cursor). Under load each trip waits for the
loop: a supplier's update of one offer (seven statements) held the single writer for 40–90 ms
while the loop was writing to 1,000 event streams, which capped updates at about 17 a second.

Here a cursor is made on the caller's thread (it touches no database state), the statement and
its rows take one trip, and closing a cursor whose rows were read takes none (the statement was
reset when its last row was read).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite
from aiosqlite.context import contextmanager


def _execute_and_fetch(
    cursor: sqlite3.Cursor, sql: str, parameters: Sequence[Any]
) -> list[Any] | None:
    cursor.execute(sql, parameters)
    return cursor.fetchall() if cursor.description is not None else None


class OneTripCursor(aiosqlite.Cursor):
    _rows: deque[Any] | None = None

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> OneTripCursor:
        rows: list[Any] | None = await self._execute(  # type: ignore[no-untyped-call]
            _execute_and_fetch, self._cursor, sql, () if parameters is None else parameters
        )
        self._rows = deque(rows or ())  # also for no rows: the statement is done
        return self

    async def fetchall(self) -> Iterable[sqlite3.Row]:
        if self._rows is None:
            return await super().fetchall()
        rows, self._rows = list(self._rows), deque()
        return rows

    async def fetchone(self) -> sqlite3.Row | None:
        if self._rows is None:
            return await super().fetchone()
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Iterable[sqlite3.Row]:
        if self._rows is None:
            return await super().fetchmany(size)
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    async def close(self) -> None:
        if self._rows is None:
            await super().close()  # a statement whose rows were not read here
        self._rows = None


class OneTripConnection(aiosqlite.Connection):
    @contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        # check_same_thread is off (connect): making a cursor reads no database state
        return OneTripCursor(self, self._conn.cursor())


async def connect(database: str, **kwargs: Any) -> aiosqlite.Connection:
    """An open connection to `database` (sqlite3.connect's arguments)."""
    kwargs["check_same_thread"] = False

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    connection = OneTripConnection(connector, 64)
    connection._thread.daemon = True  # as SQLAlchemy does: never holds up the interpreter's exit
    return await connection
