"""What `marketplane feed import` and `marketplane feed validate` do, off the command line."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from marketplane.access import service as access
from marketplane.bootstrap import migrated
from marketplane.catalog import service as catalog
from marketplane.catalog.checks import schema_check
from marketplane.catalog.model import Category, validate_offer
from marketplane.currency import precision
from marketplane.feeds import service
from marketplane.feeds.mapping import EMPTY, Mapper, missing_columns, parse_mapping, schema_types
from marketplane.feeds.model import FeedRun, Mode, Origin, offending, shown_value
from marketplane.feeds.parse import FeedFormat, FeedUnreadable, open_feed
from marketplane.feeds.schemas import run_out
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import FieldError, ValidationFailed, field_error
from marketplane.settings import Settings


def local_file(path: Path) -> service.StoredFile:
    """A file the CLI imports where it lies: its size and hash, read once."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return service.StoredFile(path.resolve(), path.stat().st_size, digest.hexdigest())


async def import_file(
    settings: Settings,
    stored: service.StoredFile,
    *,
    supplier_id: str,
    mode: str,
    dry_run: bool,
    feed_format: str | None,
    console: Console | None,
) -> dict[str, Any]:
    """Runs the file in this process (a run with origin `cli`), showing progress."""
    try:
        run_mode = Mode(mode)
    except ValueError:
        raise field_error("mode", "invalid_mode", "delta or full") from None
    kind = FeedFormat(feed_format) if feed_format else None
    platform = await migrated(settings)
    try:
        await service.recover_interrupted(platform.uow, stale_after=settings.feed_stale_seconds)
        async with platform.uow() as uow:
            await access.get_supplier(uow, supplier_id=supplier_id)
            queued = await service.create_run(
                uow,
                supplier_id=supplier_id,
                mode=run_mode,
                dry_run=dry_run,
                origin=Origin.CLI,
                filename=stored.path.name,
                stored=stored,
            )
            await uow.commit()
        run = await service.start_run(platform.uow, queued.id, worker=service.worker_name())
        assert run is not None
        if console is None:
            run = await service.execute_run(
                platform.uow,
                run,
                hold_share=settings.feed_hold_share,
                feed_format=kind,
                process_from=settings.feed_process_bytes or None,
            )
            return run_out(run)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rows]:>12,} rows · {task.fields[speed]:>9,.0f} rows/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(stored.path.name, total=stored.bytes, rows=0, speed=0.0)
            started = utcnow()

            def show(current: FeedRun, done: int) -> None:
                seconds = (utcnow() - started).total_seconds() or 1e-9
                read = current.counts.read
                progress.update(task, completed=done, rows=read, speed=read / seconds)

            run = await service.execute_run(
                platform.uow,
                run,
                hold_share=settings.feed_hold_share,
                progress=show,
                feed_format=kind,
                process_from=settings.feed_process_bytes or None,
            )
            progress.update(task, completed=stored.bytes)
        return run_out(run)
    finally:
        await platform.close()


def _category_from_json(text: str) -> Category:
    data = orjson.loads(text)
    now = utcnow()
    try:
        return Category(
            id=str(data["id"]),
            slug=str(data["slug"]),
            name=str(data.get("name", data["slug"])),
            attribute_schema=dict(data["attribute_schema"]),
            schema_version=int(data.get("schema_version", 1)),
            created_at=now,
            updated_at=now,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise field_error("category", "invalid_category", f"not a category: {exc}") from None


def category_file(path: Path) -> Category | None:
    """The category in a JSON file (as the API shows it), or None if `path` is no file."""
    if not path.is_file():
        return None
    return _category_from_json(path.read_text())


async def category_in_database(settings: Settings, ref: str) -> Category:
    platform = await migrated(settings)
    try:
        async with platform.uow(write=False) as uow:
            return await catalog.get_category(uow, ref=ref)
    finally:
        await platform.close()


def validate_file(
    path: Path,
    *,
    category: Category,
    mapping: Path | None,
    feed_format: str | None,
    errors_kept: int = 1000,
) -> dict[str, Any]:
    """Every row mapped and checked against one category; nothing is written anywhere. With the
    category from a JSON file (as the API shows it), no server or database is involved."""
    spec = parse_mapping(orjson.loads(mapping.read_bytes())) if mapping else EMPTY
    types = schema_types(category.attribute_schema)
    refs = (category.id, category.slug)
    mapper = Mapper(spec, types_for=lambda ref: types if ref in refs else None)
    check = schema_check(category)
    counts = {"read": 0, "valid": 0, "deletes": 0, "failed": 0}
    errors: list[dict[str, Any]] = []
    fatal: str | None = None

    def note(line: int, sku: str | None, error: FieldError, value: Any) -> None:
        if len(errors) < errors_kept:
            errors.append(
                {
                    "line": line,
                    "sku": sku,
                    "field": error.field,
                    "code": error.code,
                    "message": error.message,
                    "value": shown_value(value),
                }
            )

    try:
        with path.open("rb") as handle:
            kind = FeedFormat(feed_format) if feed_format else None
            feed = open_feed(handle, format=kind, filename=path.name)
            missing = missing_columns(spec, feed.columns) if feed.columns else []
            if missing:
                raise ValidationFailed(f"the mapping names missing columns: {', '.join(missing)}")
            for row in feed.rows():
                counts["read"] += 1
                if row.values is None:
                    assert row.error is not None
                    counts["failed"] += 1
                    note(row.line, None, row.error, row.raw)
                    continue
                mapped = mapper.map(row.values)
                if mapped.errors:
                    counts["failed"] += 1
                    for error, value in mapped.errors:
                        note(row.line, mapped.sku, error, value)
                    continue
                if mapped.delete:
                    counts["deletes"] += 1
                    continue
                assert mapped.draft is not None
                draft = mapped.draft
                if not draft.category:
                    draft = replace(draft, category=category.slug)
                outcome = validate_offer(
                    draft,
                    category=category if draft.category in refs else None,
                    precision=precision(draft.price_currency),
                    check_attributes=check,
                )
                if isinstance(outcome, list):
                    counts["failed"] += 1
                    for error in outcome:
                        note(row.line, draft.sku, error, offending(draft, error.field))
                else:
                    counts["valid"] += 1
    except (FeedUnreadable, ValidationFailed) as exc:
        fatal = exc.detail
    return {
        "file": str(path),
        "category": category.slug,
        "counts": counts,
        "errors": errors,
        "fatal": fatal,
    }
