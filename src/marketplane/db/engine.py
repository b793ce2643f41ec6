"""Engines for a database URL: pragmas for SQLite, pools for PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from marketplane.db import sqlite_driver

BUSY_TIMEOUT_MS = 10_000  # how long a statement waits for another connection's lock
INLINE_WRITE_SECONDS = 0.005  # of the loop a write transaction may take (sqlite_driver)
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
    "PRAGMA mmap_size=1073741824",
)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass
class Database:
    """A reader engine and a writer engine (the same one on PostgreSQL).

    On SQLite there is also `inline`: a synchronous engine on the standard driver for short reads
    on the event loop itself. Measured on a store search page, the query takes 0.1 ms on the
    driver but 1.6 ms through the async engine, whose every call hops to a thread and back.
    """

    url: str
    reader: AsyncEngine
    writer: AsyncEngine
    inline: Engine | None = None
    # Facts about this database that never change once true (a category slug's id).
    memo: dict[str, str] = field(default_factory=dict)
    _watch: sqlite3.Connection | None = None
    _snapshots: asyncpg.Pool | None = None
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def data_version(self) -> str:
        """A value that differs after any commit, by any connection or process, that a reader
        could see. SQLite: `PRAGMA data_version` on a connection kept for nothing else (the
        count is per connection). PostgreSQL: the current snapshot (equal snapshots see exactly
        the same committed transactions)."""
        if self.dialect == "sqlite":
            if self._watch is None:
                path = make_url(self.url).database or ""
                self._watch = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._watch.execute("PRAGMA query_only=ON")
            return str(self._watch.execute("PRAGMA data_version").fetchone()[0])
        if self._snapshots is None:
            async with self._opening:  # concurrent first requests open one pool, not several
                if self._snapshots is None:
                    # The bare driver: through the engine, this one value cost more than a
                    # cached page.
                    dsn = make_url(self.url).set(drivername="postgresql")
                    self._snapshots = await asyncpg.create_pool(
                        dsn.render_as_string(hide_password=False), min_size=1, max_size=4
                    )
        return str(await self._snapshots.fetchval("SELECT pg_current_snapshot()::text"))

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    async def listen(
        self, channel: str, callback: Callable[[], None]
    ) -> Callable[[], Awaitable[None]] | None:
        """Calls `callback` on every NOTIFY on `channel` (PostgreSQL; None elsewhere), on a
        connection of its own; returns how to stop."""
        if self.dialect != "postgresql":
            return None
        dsn = make_url(self.url).set(drivername="postgresql")
        conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        await conn.add_listener(channel, lambda *_: callback())

        async def stop() -> None:
            await conn.close()

        return stop

    async def dispose(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._snapshots is not None:
            await self._snapshots.close()
            self._snapshots = None
        if self.inline is not None:
            self.inline.dispose()
        await self.reader.dispose()
        if self.writer is not self.reader:
            await self.writer.dispose()


def _configure_sqlite(engine: Engine, *, writer: bool, inline: bool = False) -> None:
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        if writer:
            # Memory-mapped reads would count the pages a bulk load touches (a feed of a
            # million offers: 1 GB) in the writing process's memory; its page cache suffices.
            cursor.execute("PRAGMA mmap_size=0")
            if inline:
                # Inline statements never wait for a lock; on its thread the driver waits.
                cursor.execute("PRAGMA busy_timeout=0")
        else:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def _sqlite_engine(url: str, *, writer: bool, inline_write_seconds: float = 0.0) -> AsyncEngine:
    parsed = make_url(url)
    args, options = parsed.get_dialect()().create_connect_args(parsed)
    inline = writer and inline_write_seconds > 0
    if inline:
        options.update(inline_budget=inline_write_seconds, busy_timeout_ms=BUSY_TIMEOUT_MS)
    engine = create_async_engine(
        url,
        async_creator=partial(sqlite_driver.connect, *args, **options),
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=1 if writer else 8,
        max_overflow=0 if writer else 8,
        pool_timeout=60,
    )
    _configure_sqlite(engine.sync_engine, writer=writer, inline=inline)
    return engine


def _sqlite_inline_engine(url: str) -> Engine:
    engine = create_engine(
        url.replace("sqlite+aiosqlite:", "sqlite:", 1),
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"check_same_thread": False},
        # Used only on the event loop, one statement at a time: one connection is enough, and
        # waiting for another would block the loop, so fail at once instead.
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.001,
    )
    _configure_sqlite(engine, writer=False)
    return engine


def connect(
    url: str,
    *,
    pool_size: int = 20,
    null_pool: bool = False,
    inline_write_seconds: float = INLINE_WRITE_SECONDS,
) -> Database:
    """The engines for `url`. SQLite: `inline_write_seconds` of the event loop a write
    transaction may take before its statements go to the connection's thread (0: none)."""
    if url.startswith("sqlite"):
        return Database(
            url,
            _sqlite_engine(url, writer=False),
            _sqlite_engine(url, writer=True, inline_write_seconds=inline_write_seconds),
            inline=_sqlite_inline_engine(url),
        )
    options: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if null_pool:
        options["poolclass"] = NullPool
    else:
        # No overflow: a connection opened beyond the pool would be closed on its return, and
        # the next burst would open it again, each time a server process and the driver's type
        # introspection (measured at 100 changes/s to 1,000 streams: PostgreSQL took 0.45 of a
        # core, 0.16 with every connection kept). Opened as needed, all are kept.
        options.update(pool_size=pool_size, max_overflow=0, pool_pre_ping=False)
    engine = create_async_engine(url, **options)
    return Database(url, engine, engine)
