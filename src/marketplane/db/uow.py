"""The unit of work: one transaction; only it commits.

Services take a `UnitOfWork`, do their reads and writes on `uow.conn`, and call `commit()`.
Leaving the block without committing rolls back, so an exception never half-writes.

A read-only unit of work opens nothing until it is used. `fetch` runs a short read inline on
SQLite (see Database.inline) and through `conn` elsewhere; `conn` is for anything longer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import Executable, Row
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from marketplane.db.engine import Database

INLINE_BUDGET = 200_000  # SQLite VM steps a read may take on the event loop


def _interrupt() -> int:
    return 1  # called once the budget is spent: stop the statement


class UnitOfWork:
    def __init__(self, db: Database, *, write: bool = True) -> None:
        self._db = db
        self._write = write
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None
        self._open = False
        self.dialect = db.dialect
        self.inline_overruns = 0
        self._after_commit: list[Callable[[], None]] = []
        self._before_commit: list[Callable[[], Awaitable[None]]] = []
        self.state: dict[str, Any] = {}  # what services keep for this transaction

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open; use `await uow.connection()`")
        return self._conn

    @property
    def memo(self) -> dict[str, str]:
        """Facts about this database that never change once true: safe to remember."""
        return self._db.memo

    async def connection(self) -> AsyncConnection:
        """The async connection, opened (with its transaction) on first use."""
        if not self._open:
            raise RuntimeError("the unit of work is not open")
        if self._conn is None:
            engine = self._db.writer if self._write else self._db.reader
            self._conn = await engine.connect()
            self._tx = await self._conn.begin()
        return self._conn

    async def fetch(self, statement: Executable, *, inline: bool = True) -> Sequence[Row[Any]]:
        """All rows of a read. On SQLite outside a write it first runs inline on the event loop,
        with a budget of INLINE_BUDGET virtual-machine steps (about a millisecond): a read that
        needs more is interrupted and run again off the loop, so one slow query never stalls
        every other request the process is serving. `inline=False` skips the first attempt: for
        work the budget cannot see (full-text matching runs inside single steps)."""
        if inline and not self._write and self._db.inline is not None:
            # Checked out and returned within this call, never held across an await: a
            # connection kept while other requests run would let them exhaust the pool and
            # block the event loop waiting for one.
            with self._db.inline.connect() as conn:
                driver = conn.connection.driver_connection
                assert driver is not None
                driver.set_progress_handler(_interrupt, INLINE_BUDGET)
                try:
                    return conn.execute(statement).all()
                except OperationalError as exc:
                    if "interrupted" not in str(exc.orig):
                        raise
                    self.inline_overruns += 1
                finally:
                    driver.set_progress_handler(None, 0)
        return (await (await self.connection()).execute(statement)).all()

    async def __aenter__(self) -> UnitOfWork:
        self._open = True
        if self._write:
            await self.connection()
        return self

    async def commit(self) -> None:
        if not self._write:
            raise RuntimeError("a read-only unit of work cannot commit")
        assert self._tx is not None
        hooks, self._before_commit = self._before_commit, []
        for hook in hooks:
            await hook()
        await self._tx.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def before_commit(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Awaits `hook` in this transaction just before it commits (its last writes)."""
        self._before_commit.append(hook)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once this unit of work has committed (never if it rolls back)."""
        self._after_commit.append(callback)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            if self._conn is not None:
                await self._conn.close()
            self._conn = None
            self._tx = None
