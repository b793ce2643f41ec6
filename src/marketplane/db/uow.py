"""The unit of work: one transaction; only it commits.

Services take a `UnitOfWork`, do their reads and writes on `uow.conn`, and call `commit()`.
Leaving the block without committing rolls back, so an exception never half-writes.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from marketplane.db.engine import Database


class UnitOfWork:
    def __init__(self, db: Database, *, write: bool = True) -> None:
        self._db = db
        self._write = write
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None
        self.dialect = db.dialect

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    async def __aenter__(self) -> UnitOfWork:
        engine = self._db.writer if self._write else self._db.reader
        self._conn = await engine.connect()
        self._tx = await self._conn.begin()
        return self

    async def commit(self) -> None:
        if not self._write:
            raise RuntimeError("a read-only unit of work cannot commit")
        assert self._tx is not None
        await self._tx.commit()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            if self._conn is not None:
                await self._conn.close()
            self._conn = None
            self._tx = None
