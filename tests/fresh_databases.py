"""A fresh database for each example of a state machine, seeded alike: on SQLite a copy of a
file migrated and seeded once; on PostgreSQL the one database emptied and seeded again."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

import sqlalchemy as sa

from conftest import open_platform
from marketplane.bootstrap import Platform, build
from marketplane.db.metadata import metadata
from marketplane.settings import Settings

T = TypeVar("T")


class FreshDatabases(Generic[T]):
    def __init__(self, url: str, workdir: Path, seed: Callable[[Platform], Awaitable[T]]) -> None:
        self.url, self.workdir, self.seed = url, workdir, seed
        self.count = itertools.count()
        self.template: Path | None = None
        self.seeded: T | None = None
        self.shared: Platform | None = None

    async def start(self) -> None:
        platform = await open_platform(self.url, data_dir=self.workdir / "data")
        if platform.db.dialect == "postgresql":
            self.shared = platform
            return
        self.seeded = await self.seed(platform)
        await platform.close()
        self.template = Path(sa.make_url(self.url).database or "")
        with contextlib.closing(sqlite3.connect(self.template)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the one file, to copy it

    async def fresh(self) -> tuple[Platform, T]:
        if self.shared is not None:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            async with self.shared.uow() as uow:
                await uow.conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                await uow.commit()
            return self.shared, await self.seed(self.shared)
        assert self.template is not None and self.seeded is not None
        copy = self.workdir / f"example-{next(self.count)}.db"
        shutil.copyfile(self.template, copy)
        platform = build(
            Settings(
                database_url=f"sqlite+aiosqlite:///{copy}",
                key_cache_seconds=0,
                data_dir=self.workdir / "data",
            )
        )
        return platform, self.seeded

    async def done(self, platform: Platform) -> None:
        if platform is not self.shared:
            await platform.close()
            path = Path(sa.make_url(platform.settings.database_url).database or "")
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()

    async def stop(self) -> None:
        if self.shared is not None:
            await self.shared.close()
