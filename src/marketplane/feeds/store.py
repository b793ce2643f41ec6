"""Feed tables and their SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplane.db.metadata import metadata
from marketplane.db.types import Json, UtcDateTime
from marketplane.feeds.model import (
    Counts,
    FeedRun,
    FeedSource,
    Mode,
    Origin,
    RowError,
    RunStatus,
)

Id = sa.String(40)

feed_mappings = sa.Table(
    "feed_mappings",
    metadata,
    sa.Column("supplier_id", Id, primary_key=True),
    sa.Column("mapping", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
feed_sources = sa.Table(
    "feed_sources",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("mode", sa.String(10), nullable=False),
    sa.Column("format", sa.String(10)),
    sa.Column("interval_seconds", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_run_at", UtcDateTime, nullable=False),
    sa.Column("last_run_id", Id),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
COUNT_COLUMNS = {
    "read": "rows_read",
    "inserted": "inserted",
    "updated": "updated",
    "unchanged": "unchanged",
    "deleted": "deleted",
    "failed": "failed",
    "deactivated": "deactivated",
}
feed_runs = sa.Table(
    "feed_runs",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("mode", sa.String(10), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("origin", sa.String(10), nullable=False),
    sa.Column("source_id", Id),
    sa.Column("filename", sa.String(500)),
    sa.Column("format", sa.String(10)),
    sa.Column("compressed", sa.Boolean),
    sa.Column("file_path", sa.String(2000)),
    sa.Column("file_bytes", sa.BigInteger),
    sa.Column("file_sha256", sa.String(64)),
    sa.Column("mapping_version", sa.Integer),
    *(sa.Column(column, sa.Integer, nullable=False) for column in COUNT_COLUMNS.values()),
    sa.Column("to_deactivate", sa.Integer),
    sa.Column("live_before", sa.Integer),
    sa.Column("line_reached", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String(60)),
    sa.Column("error_detail", sa.Text),
    sa.Column("worker", sa.String(200)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("heartbeat_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
)
feed_run_errors = sa.Table(
    "feed_run_errors",
    metadata,
    sa.Column("run_id", Id, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("sku", sa.String(200)),
    sa.Column("field", sa.String(200), nullable=False),
    sa.Column("code", sa.String(60), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("value", sa.Text),
)


# --- mappings -------------------------------------------------------------------------------


async def get_mapping(conn: AsyncConnection, supplier_id: str) -> tuple[dict[str, Any], int] | None:
    row = (
        await conn.execute(
            sa.select(feed_mappings.c.mapping, feed_mappings.c.version).where(
                feed_mappings.c.supplier_id == supplier_id
            )
        )
    ).first()
    return (dict(row.mapping), int(row.version)) if row else None


async def put_mapping(
    conn: AsyncConnection, supplier_id: str, mapping: dict[str, Any], at: datetime
) -> int:
    """Saves the mapping; returns its version (1, then one more for each change)."""
    current = await get_mapping(conn, supplier_id)
    if current is None:
        await conn.execute(
            feed_mappings.insert().values(
                supplier_id=supplier_id, mapping=mapping, version=1, created_at=at, updated_at=at
            )
        )
        return 1
    if current[0] == mapping:
        return current[1]
    version = current[1] + 1
    await conn.execute(
        feed_mappings.update()
        .where(feed_mappings.c.supplier_id == supplier_id)
        .values(mapping=mapping, version=version, updated_at=at)
    )
    return version


# --- runs -----------------------------------------------------------------------------------


def _run(row: Any) -> FeedRun:
    return FeedRun(
        id=row.id,
        supplier_id=row.supplier_id,
        status=RunStatus(row.status),
        mode=Mode(row.mode),
        dry_run=bool(row.dry_run),
        origin=Origin(row.origin),
        created_at=row.created_at,
        counts=Counts(**{name: getattr(row, column) for name, column in COUNT_COLUMNS.items()}),
        line_reached=row.line_reached,
        source_id=row.source_id,
        filename=row.filename,
        format=row.format,
        compressed=row.compressed,
        file_path=row.file_path,
        file_bytes=row.file_bytes,
        file_sha256=row.file_sha256,
        mapping_version=row.mapping_version,
        to_deactivate=row.to_deactivate,
        live_before=row.live_before,
        error_code=row.error_code,
        error_detail=row.error_detail,
        worker=row.worker,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
    )


def _run_values(run: FeedRun) -> dict[str, Any]:
    values = {
        "id": run.id,
        "supplier_id": run.supplier_id,
        "status": str(run.status),
        "mode": str(run.mode),
        "dry_run": run.dry_run,
        "origin": str(run.origin),
        "created_at": run.created_at,
        "line_reached": run.line_reached,
    }
    for name in (
        "source_id",
        "filename",
        "format",
        "compressed",
        "file_path",
        "file_bytes",
        "file_sha256",
        "mapping_version",
        "to_deactivate",
        "live_before",
        "error_code",
        "error_detail",
        "worker",
        "started_at",
        "heartbeat_at",
        "finished_at",
    ):
        values[name] = getattr(run, name)
    values.update({column: getattr(run.counts, name) for name, column in COUNT_COLUMNS.items()})
    return values


async def insert_run(conn: AsyncConnection, run: FeedRun) -> None:
    await conn.execute(feed_runs.insert().values(_run_values(run)))


async def save_run(
    conn: AsyncConnection, run: FeedRun, *, expected: RunStatus | None = None
) -> bool:
    """Writes the run's state; with `expected`, only if the stored status is still that one
    (another process may have moved it: then nothing is written and False comes back)."""
    values = _run_values(run)
    del values["id"]
    query = feed_runs.update().where(feed_runs.c.id == run.id)
    if expected is not None:
        query = query.where(feed_runs.c.status == str(expected))
    done = await conn.execute(query.values(values))
    return bool(done.rowcount)


async def get_run(conn: AsyncConnection, run_id: str) -> FeedRun | None:
    row = (await conn.execute(feed_runs.select().where(feed_runs.c.id == run_id))).first()
    return _run(row) if row else None


async def list_runs(
    conn: AsyncConnection, *, supplier_id: str | None, before: str | None, limit: int
) -> list[FeedRun]:
    query = feed_runs.select().order_by(feed_runs.c.id.desc()).limit(limit)
    if supplier_id is not None:
        query = query.where(feed_runs.c.supplier_id == supplier_id)
    if before is not None:
        query = query.where(feed_runs.c.id < before)
    return [_run(r) for r in await conn.execute(query)]


async def runs_in(conn: AsyncConnection, status: RunStatus) -> list[FeedRun]:
    query = feed_runs.select().where(feed_runs.c.status == str(status))
    return [_run(r) for r in await conn.execute(query.order_by(feed_runs.c.created_at))]


async def first_queued(conn: AsyncConnection) -> str | None:
    query = (
        sa.select(feed_runs.c.id)
        .where(feed_runs.c.status == str(RunStatus.QUEUED))
        .order_by(feed_runs.c.created_at, feed_runs.c.id)
        .limit(1)
    )
    return (await conn.execute(query)).scalar()


async def first_validated_at(conn: AsyncConnection, supplier_id: str) -> datetime | None:
    query = sa.select(sa.func.min(feed_runs.c.finished_at)).where(
        feed_runs.c.supplier_id == supplier_id, feed_runs.c.status == str(RunStatus.COMPLETE)
    )
    value = (await conn.execute(query)).scalar()
    return value if isinstance(value, datetime) else None


async def finished_runs(
    conn: AsyncConnection, *, since: datetime | None, limit: int
) -> list[FeedRun]:
    query = (
        feed_runs.select()
        .where(feed_runs.c.status.in_([str(RunStatus.COMPLETE), str(RunStatus.FAILED)]))
        .order_by(feed_runs.c.id.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(feed_runs.c.created_at >= since)
    return [_run(r) for r in await conn.execute(query)]


# --- row errors -----------------------------------------------------------------------------


async def add_errors(
    conn: AsyncConnection, run_id: str, first_seq: int, errors: Sequence[RowError]
) -> None:
    if not errors:
        return
    await conn.execute(
        feed_run_errors.insert(),
        [
            {
                "run_id": run_id,
                "seq": first_seq + i,
                "line": e.line,
                "sku": e.sku,
                "field": e.error.field,
                "code": e.error.code,
                "message": e.error.message,
                "value": e.value,
            }
            for i, e in enumerate(errors)
        ],
    )


async def errors_of(conn: AsyncConnection, run_id: str, *, after_seq: int, limit: int) -> list[Any]:
    query = (
        feed_run_errors.select()
        .where(feed_run_errors.c.run_id == run_id, feed_run_errors.c.seq > after_seq)
        .order_by(feed_run_errors.c.seq)
        .limit(limit)
    )
    return list(await conn.execute(query))


async def error_count(conn: AsyncConnection, run_id: str) -> int:
    query = sa.select(sa.func.count()).where(feed_run_errors.c.run_id == run_id)
    return int((await conn.execute(query)).scalar_one())


# --- sources --------------------------------------------------------------------------------


def _source(row: Any) -> FeedSource:
    return FeedSource(
        id=row.id,
        supplier_id=row.supplier_id,
        url=row.url,
        mode=Mode(row.mode),
        format=row.format,
        interval_seconds=row.interval_seconds,
        enabled=bool(row.enabled),
        next_run_at=row.next_run_at,
        last_run_id=row.last_run_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def insert_source(conn: AsyncConnection, source: FeedSource) -> None:
    await conn.execute(
        feed_sources.insert().values(
            id=source.id,
            supplier_id=source.supplier_id,
            url=source.url,
            mode=str(source.mode),
            format=source.format,
            interval_seconds=source.interval_seconds,
            enabled=source.enabled,
            next_run_at=source.next_run_at,
            last_run_id=source.last_run_id,
            created_at=source.created_at,
            updated_at=source.updated_at,
        )
    )


async def get_source(conn: AsyncConnection, source_id: str) -> FeedSource | None:
    row = (await conn.execute(feed_sources.select().where(feed_sources.c.id == source_id))).first()
    return _source(row) if row else None


async def list_sources(conn: AsyncConnection, supplier_id: str) -> list[FeedSource]:
    query = feed_sources.select().where(feed_sources.c.supplier_id == supplier_id)
    return [_source(r) for r in await conn.execute(query.order_by(feed_sources.c.id))]


async def disable_source(conn: AsyncConnection, source_id: str, at: datetime) -> None:
    await conn.execute(
        feed_sources.update()
        .where(feed_sources.c.id == source_id)
        .values(enabled=False, updated_at=at)
    )


async def claim_due_source(conn: AsyncConnection, now: datetime) -> FeedSource | None:
    """The next source due, moved to its next time in the same statement's transaction, so
    two processes never both take it."""
    query = (
        feed_sources.select()
        .where(feed_sources.c.enabled.is_(True), feed_sources.c.next_run_at <= now)
        .order_by(feed_sources.c.next_run_at)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    source = _source(row)
    moved = await conn.execute(
        feed_sources.update()
        .where(feed_sources.c.id == source.id, feed_sources.c.next_run_at == source.next_run_at)
        .values(next_run_at=now + timedelta(seconds=source.interval_seconds), updated_at=now)
    )
    return source if moved.rowcount else None


async def set_last_run(conn: AsyncConnection, source_id: str, run_id: str) -> None:
    await conn.execute(
        feed_sources.update().where(feed_sources.c.id == source_id).values(last_run_id=run_id)
    )
