"""aiosqlite with one trip to the connection's thread per statement, and writes on the loop.

aiosqlite runs every call on its connection's own thread and hands the answer back to the event
loop, which it reaches only on its next turn; SQLAlchemy makes four such calls per statement
(make a cursor, execute, fetch the rows, close the cursor). Under load each trip waits for the
loop: a supplier's update of one offer (seven statements) held the single writer for 40–90 ms
while the loop was writing to 1,000 event streams, which capped updates at about 17 a second.

Here a cursor is made on the caller's thread (it touches no database state), the statement and
its rows take one trip, and closing a cursor whose rows were read takes none (the statement was
reset when its last row was read).

A writer connection may also run a transaction's statements on the event loop itself, with no
trip at all, until they have taken `inline_budget` seconds of it; the rest of that transaction
goes to the thread. A trip waits for a turn of the loop, so a short write transaction (a
supplier's price update: six statements) held the single writer for as many turns: measured
with 1,000 event streams open, changes topped out near 25 a second; inline, 70 went through.
An inline statement never waits for a lock: the connection's busy timeout is 0 there, and one
that finds the database locked by another connection (a feed import in another process) is
run again on the thread with the busy timeout, so the loop never waits for another writer.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
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


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


class OneTripConnection(aiosqlite.Connection):
    inline_budget = 0.0  # seconds of the loop a transaction may take on it (0: none)
    busy_timeout_ms = 0  # how long a statement on the thread waits for a lock
    _spent = 0.0  # seconds this transaction has taken on the loop

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._spent < self.inline_budget and self._running and self._connection:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
            finally:
                self._spent += time.perf_counter() - started
        if self.inline_budget:
            return await super()._execute(self._waiting, fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    def _waiting(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn` on the thread, where it may wait for a lock as long as the busy timeout."""
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        try:
            return fn(*args, **kwargs)
        finally:
            conn.execute("PRAGMA busy_timeout=0")

    async def commit(self) -> None:
        try:
            await super().commit()
        finally:
            self._spent = 0.0

    async def rollback(self) -> None:
        try:
            await super().rollback()
        finally:
            self._spent = 0.0

    @contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        # check_same_thread is off (connect): making a cursor reads no database state
        return OneTripCursor(self, self._conn.cursor())


async def connect(
    database: str, *, inline_budget: float = 0.0, busy_timeout_ms: int = 0, **kwargs: Any
) -> aiosqlite.Connection:
    """An open connection to `database` (sqlite3.connect's arguments). With an `inline_budget`
    its statements run on the loop as above, and `busy_timeout_ms` is how long one on the
    thread waits for a lock; the connection's own busy timeout must then be 0."""
    kwargs["check_same_thread"] = False

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    connection = OneTripConnection(connector, 64)
    connection.inline_budget = inline_budget
    connection.busy_timeout_ms = busy_timeout_ms
    connection._thread.daemon = True  # as SQLAlchemy does: never holds up the interpreter's exit
    return await connection
