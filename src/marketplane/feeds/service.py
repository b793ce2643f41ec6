"""Feed runs: a file of offers read as a stream, mapped, validated row by row and applied in
batches, each batch in its own transaction together with the run's progress.

So a run killed at any moment leaves every batch either applied with its counts or not at all;
the next process to look marks it failed at the line reached, and running the same file again
completes it (what was applied is unchanged the second time).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import os
import socket
import statistics
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from marketplane.access import service as access
from marketplane.access.model import Milestone
from marketplane.catalog import service as catalog
from marketplane.catalog.model import OfferDraft
from marketplane.db.uow import UnitOfWork
from marketplane.events import service as events
from marketplane.events.model import EventType, NewEvent
from marketplane.feeds import store
from marketplane.feeds.batches import (
    Batch,
    Batches,
    Job,
    Position,
    PreparationFailed,
    fewer_collections,
    open_batches,
    types_by_ref,
)
from marketplane.feeds.mapping import (
    EMPTY,
    FeedMapping,
    Mapper,
    missing_columns,
    parse_mapping,
)
from marketplane.feeds.model import (
    Counts,
    FeedRun,
    FeedSource,
    Mode,
    Origin,
    RowError,
    RunStatus,
    all_rows_failed,
    next_status,
    offending,
    should_hold,
    shown_value,
    spreadsheet_safe,
)
from marketplane.feeds.parse import FeedFormat, FeedUnreadable, open_feed
from marketplane.kernel.clock import rfc3339, utcnow
from marketplane.kernel.errors import (
    Conflict,
    FieldError,
    InvalidTransition,
    NotFound,
    field_error,
)
from marketplane.kernel.ids import new_id

# Rows a transaction applies, unless BATCH_BYTES of content come first. Measured on 100,000 books:
# 5,000 a batch imported in 13.8 s (SQLite) and 12.8 s (PostgreSQL), 1,000 in 16.4 s and 15.3 s.
BATCH = 5000
BATCH_BYTES = 8 * 1024 * 1024
IN_FLIGHT = 3  # batches a run writes at once on PostgreSQL (_Execution.apply_all)
ANALYZE_FROM = 10_000  # rows inserted by a run before planner statistics are first refreshed
ERRORS_KEPT = 100_000  # row errors stored per run; the counts count them all
NewUnitOfWork = Callable[[], UnitOfWork]
ProgressHook = Callable[[FeedRun, int], None]  # the run so far, bytes of the file read


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- mappings -------------------------------------------------------------------------------


async def save_mapping(uow: UnitOfWork, *, supplier_id: str, spec: Any) -> int:
    """Checks and saves the supplier's mapping; returns its version."""
    parse_mapping(spec)
    version = await store.put_mapping(await uow.connection(), supplier_id, spec, utcnow())
    await access.mark_milestone(uow, supplier_id=supplier_id, milestone=Milestone.MAPPING_SAVED)
    return version


async def get_mapping(uow: UnitOfWork, *, supplier_id: str) -> tuple[dict[str, Any], int] | None:
    return await store.get_mapping(await uow.connection(), supplier_id)


async def _mapping(uow: UnitOfWork, supplier_id: str) -> tuple[FeedMapping, int | None]:
    saved = await store.get_mapping(await uow.connection(), supplier_id)
    if saved is None:
        return EMPTY, None
    return parse_mapping(saved[0]), saved[1]


# --- creating runs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: Path
    bytes: int
    sha256: str


def store_upload(stream: BinaryIO, dest: Path, *, max_bytes: int) -> StoredFile:
    """Copies an uploaded file to `dest` in chunks, hashing it; refuses one over `max_bytes`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with dest.open("wb") as out:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise field_error("file", "too_large", f"the file is over {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return StoredFile(dest, size, digest.hexdigest())


async def create_run(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    mode: Mode,
    dry_run: bool,
    origin: Origin,
    filename: str | None,
    stored: StoredFile | None,
    source_id: str | None = None,
    run_id: str | None = None,
    status: RunStatus = RunStatus.QUEUED,
    feed_format: str | None = None,
) -> FeedRun:
    run = FeedRun(
        id=run_id or new_id("frn"),
        supplier_id=supplier_id,
        status=status,
        mode=mode,
        dry_run=dry_run,
        origin=origin,
        created_at=utcnow(),
        counts=Counts(),
        source_id=source_id,
        filename=filename,
        format=feed_format,
        file_path=str(stored.path) if stored else None,
        file_bytes=stored.bytes if stored else None,
        file_sha256=stored.sha256 if stored else None,
    )
    await store.insert_run(await uow.connection(), run)
    await _run_event(uow, run)
    return run


_RUN_EVENTS = {
    RunStatus.QUEUED: (EventType.FEED_RUN_QUEUED, 1),
    RunStatus.RUNNING: (EventType.FEED_RUN_STARTED, 2),
    RunStatus.HELD: (EventType.FEED_RUN_HELD, 3),
    RunStatus.COMPLETE: (EventType.FEED_RUN_COMPLETED, 4),
    RunStatus.FAILED: (EventType.FEED_RUN_FAILED, 4),
}  # the event of a run reaching each status, and the run's version then


async def _run_event(uow: UnitOfWork, run: FeedRun) -> None:
    kind, version = _RUN_EVENTS[run.status]
    payload = {
        "id": run.id,
        "supplier": run.supplier_id,
        "status": str(run.status),
        "mode": str(run.mode),
        "dry_run": run.dry_run,
        "origin": str(run.origin),
        "filename": run.filename,
        "counts": dataclasses.asdict(run.counts),
        "line_reached": run.line_reached,
        "error": {"code": run.error_code, "detail": run.error_detail} if run.error_code else None,
        "created_at": rfc3339(run.created_at),
        "finished_at": rfc3339(run.finished_at) if run.finished_at else None,
    }
    await events.emit(uow, NewEvent(kind, run.id, version, payload, supplier_id=run.supplier_id))


def new_run_id() -> str:
    return new_id("frn")


async def get_run(uow: UnitOfWork, *, run_id: str, supplier_id: str | None = None) -> FeedRun:
    run = await store.get_run(await uow.connection(), run_id)
    if run is None or (supplier_id is not None and run.supplier_id != supplier_id):
        raise NotFound(f"no feed run {run_id}", code="feed_run_not_found")
    return run


async def list_runs(
    uow: UnitOfWork, *, supplier_id: str | None, before: str | None, limit: int
) -> list[FeedRun]:
    return await store.list_runs(
        await uow.connection(), supplier_id=supplier_id, before=before, limit=limit
    )


async def run_errors(
    uow: UnitOfWork, *, run_id: str, after_seq: int, limit: int
) -> list[dict[str, Any]]:
    rows = await store.errors_of(await uow.connection(), run_id, after_seq=after_seq, limit=limit)
    return [
        {
            "seq": r.seq,
            "line": r.line,
            "sku": r.sku,
            "field": r.field,
            "code": r.code,
            "message": r.message,
            "value": r.value,
        }
        for r in rows
    ]


# --- executing a run ------------------------------------------------------------------------


class RunTaken(Exception):
    """Another process moved the run (it was marked failed while this one still worked)."""


class _Execution:
    """The state of one run while it executes in this process."""

    def __init__(
        self,
        new_uow: NewUnitOfWork,
        run: FeedRun,
        progress: ProgressHook | None,
        *,
        overlap: bool,
    ) -> None:
        self.new_uow = new_uow
        self.run = run
        self.progress = progress
        self.overlap = overlap
        self.errors_kept = 0
        self.analyzed_at = ANALYZE_FROM // 2  # rows inserted at the last statistics refresh
        self.products = catalog.KnownProducts()

    async def apply_all(self, prepared: Batches) -> None:
        """Writes each batch as it comes: one is written while the next is prepared. With
        `overlap` (PostgreSQL), up to IN_FLIGHT are written at once in a relay (catalog.Relay):
        a batch inserts its new offers while the ones before it finish, and commits after them."""
        overlap = self.overlap and not self.run.dry_run
        limit = IN_FLIGHT if overlap else 1
        writing: deque[tuple[asyncio.Task[None], catalog.Relay | None, frozenset[str]]] = deque()
        try:
            while (ready := await prepared.next()) is not None:
                skus = frozenset(ready[0].named)
                # The same SKU twice in flight: the later would not see the earlier's write.
                while writing and (
                    len(writing) >= limit
                    or any(not named.isdisjoint(skus) for _, _, named in writing)
                ):
                    await writing.popleft()[0]
                if writing:
                    task, before, _ = writing[-1]
                    assert before is not None
                    await asyncio.wait({before.opened, task}, return_when=asyncio.FIRST_COMPLETED)
                    while writing and writing[0][0].done():
                        await writing.popleft()[0]
                relay = None
                if overlap:
                    relay = catalog.Relay(writing[-1][1] if writing else None, self.new_uow)
                writing.append((asyncio.create_task(self.apply(*ready, relay)), relay, skus))
        except BaseException:
            # Batches in flight still end as they would (those before a bad point of the file
            # are written); one that failed for its own reason says so instead.
            failure = await _settled([task for task, _, _ in writing])
            if failure is not None and not isinstance(failure, catalog.RelayBroken):
                raise failure from None
            raise
        failure = await _settled([task for task, _, _ in writing])
        if failure is not None:
            raise failure
        if self.run.counts.inserted >= ANALYZE_FROM and not self.run.dry_run:
            # As autovacuum would, but now: all of it once, for the store's searches.
            async with self.new_uow() as uow:
                await catalog.refresh_statistics(uow)
                await uow.commit()

    async def apply(self, batch: Batch, position: Position, relay: catalog.Relay | None) -> None:
        """Writes one prepared batch and the run's progress in one transaction."""
        try:
            await self._apply(batch, position, relay)
        except BaseException as exc:
            if relay is not None:
                relay.ended(exc)
            raise
        if relay is not None:
            relay.ended(None)
        if self.progress is not None:
            self.progress(self.run, position.bytes_read)
        await self._note_growth()

    async def _apply(self, batch: Batch, position: Position, relay: catalog.Relay | None) -> None:
        run = self.run
        counts, errors, lines = batch.counts, batch.errors, batch.lines
        deletes, named = batch.deletes, batch.named
        async with self.new_uow() as uow:
            if batch.offers:
                results = await catalog.write_offers(
                    uow,
                    supplier_id=run.supplier_id,
                    offers=batch.offers,
                    source="feed",
                    dry_run=run.dry_run,
                    relay=relay,
                    products=self.products,
                )
                outcomes = Counter(result.outcome for result in results)
                for outcome, count in outcomes.items():
                    name = "inserted" if outcome == "created" else outcome
                    setattr(counts, name, getattr(counts, name) + count)
                if outcomes["failed"]:  # a SKU repeated in the batch: the last wins
                    errors.extend(
                        RowError(lines[result.index], result.sku, error, result.sku)
                        for result in results
                        if result.outcome == "failed"
                        for error in result.errors
                    )
            if relay is not None:
                relay.open()
                await relay.turn()
            if deletes:
                gone = await catalog.delete_offers(
                    uow, supplier_id=run.supplier_id, skus=list(deletes), dry_run=run.dry_run
                )
                counts.deleted += len(gone)
                counts.unchanged += len(deletes) - len(gone)
            if run.mode is Mode.FULL:
                await catalog.note_listed(uow, token=run.id, skus=named)
            kept = errors[: max(0, ERRORS_KEPT - self.errors_kept)]
            conn = await uow.connection()
            await store.add_errors(conn, run.id, self.errors_kept + 1, kept)
            self.errors_kept += len(kept)
            run.counts.add(counts)
            run.line_reached = batch.last_line
            run.heartbeat_at = utcnow()
            run.format = str(position.format)
            run.compressed = position.compressed
            if not await store.save_run(conn, run, expected=RunStatus.RUNNING):
                raise RunTaken(run.id)
            await uow.commit()

    async def _note_growth(self) -> None:
        """Each time the run has doubled what it inserted, the statistics its lookups need
        (the whole table's took 2 s of a 23 s import of 100,000 rows; these a fifth)."""
        run = self.run
        if run.counts.inserted >= 2 * self.analyzed_at and not run.dry_run:
            self.analyzed_at = run.counts.inserted  # first: the next batch may get here meanwhile
            async with self.new_uow() as uow:
                await catalog.refresh_statistics(uow, lookups_only=True)
                await uow.commit()


async def _settled(tasks: list[asyncio.Task[None]]) -> BaseException | None:
    """Awaits every task, in order; the first one's failure, if any."""
    failure: BaseException | None = None
    for task in tasks:
        try:
            await task
        except BaseException as exc:
            failure = failure or exc
    return failure


def _transition(run: FeedRun, action: str) -> RunStatus:
    """Moves the run (in memory) by `action`; the caller saves it with `expected`."""
    target = next_status(run.status, action)
    if target is None:
        raise InvalidTransition(
            f"a {run.status} feed run cannot {action}",
            extra={"status": str(run.status)},
        )
    previous = run.status
    run.status = target
    return previous


async def _finish(
    new_uow: NewUnitOfWork,
    run: FeedRun,
    action: str,
    *,
    code: str | None = None,
    detail: str | None = None,
) -> FeedRun:
    async with new_uow() as uow:
        previous = _transition(run, action)
        run.finished_at = run.heartbeat_at = utcnow()
        run.error_code, run.error_detail = code, detail
        if not await store.save_run(await uow.connection(), run, expected=previous):
            raise RunTaken(run.id)
        await _run_event(uow, run)
        if run.status is RunStatus.COMPLETE:
            await access.mark_milestone(
                uow, supplier_id=run.supplier_id, milestone=Milestone.FIRST_FEED_VALIDATED
            )
        if run.mode is Mode.FULL and run.status is not RunStatus.HELD:
            await catalog.forget_listed(uow, token=run.id)
        await uow.commit()
    if run.status is RunStatus.COMPLETE and run.origin is not Origin.CLI and run.file_path:
        # Kept only while a re-run may need it.
        await asyncio.to_thread(Path(run.file_path).unlink, missing_ok=True)
        run.file_path = None
    return run


async def start_run(new_uow: NewUnitOfWork, run_id: str, *, worker: str) -> FeedRun | None:
    """Takes a queued run for this process; None if another took it first."""
    async with new_uow() as uow:
        run = await get_run(uow, run_id=run_id)
        if run.status is not RunStatus.QUEUED:
            return None
        _transition(run, "start")
        run.started_at = run.heartbeat_at = utcnow()
        run.worker = worker
        if not await store.save_run(await uow.connection(), run, expected=RunStatus.QUEUED):
            return None
        await _run_event(uow, run)
        await uow.commit()
    return run


async def execute_run(
    new_uow: NewUnitOfWork,
    run: FeedRun,
    *,
    hold_share: float,
    progress: ProgressHook | None = None,
    batch_size: int = BATCH,
    feed_format: FeedFormat | None = None,
    process_from: int | None = None,
) -> FeedRun:
    """Reads the run's file and applies it; the run must be running (see `start_run`). A file
    of `process_from` bytes or more is read, mapped and checked by a separate process."""
    async with new_uow() as uow:
        saved = await store.get_mapping(await uow.connection(), run.supplier_id)
        categories = await catalog.list_categories(uow)
        overlap = uow.dialect == "postgresql"  # SQLite has one writer at a time
    spec, run.mapping_version = saved if saved is not None else (None, None)
    assert run.file_path is not None
    job = Job(
        path=Path(run.file_path),
        format=feed_format or (FeedFormat(run.format) if run.format else None),
        filename=run.filename,
        mapping=spec,
        categories=categories,
        batch_size=batch_size,
        batch_bytes=BATCH_BYTES,
    )
    apart = process_from is not None and (run.file_bytes or 0) >= process_from
    execution = _Execution(new_uow, run, progress, overlap=overlap)
    try:
        with fewer_collections():
            prepared = await open_batches(job, apart=apart)
            try:
                mapping = parse_mapping(spec) if spec is not None else EMPTY
                columns = prepared.columns  # None: JSON, whose rows name their own fields
                missing = missing_columns(mapping, columns) if columns is not None else []
                if not missing:
                    await execution.apply_all(prepared)
            finally:
                await prepared.close()
        if missing:
            return await _finish(
                new_uow,
                run,
                "fail",
                code="mapping_mismatch",
                detail=f"the mapping names columns the file lacks: {', '.join(missing)}",
            )
    except PreparationFailed as exc:
        return await _finish(
            new_uow,
            run,
            "fail",
            code="preparation_failed",
            detail=f"{exc} (line {run.line_reached} reached); rows before it were applied",
        )
    except FeedUnreadable as exc:
        line = max(exc.line, run.line_reached)
        return await _finish(
            new_uow,
            run,
            "fail",
            code="feed_unreadable",
            detail=f"{exc.detail} (line {line}); rows before it were applied",
        )
    except OSError as exc:
        return await _finish(new_uow, run, "fail", code="file_unavailable", detail=str(exc))
    if all_rows_failed(run.counts):
        return await _finish(
            new_uow, run, "fail", code="all_rows_failed", detail="every row of the file is bad"
        )
    if run.mode is Mode.FULL:
        return await _deactivate(new_uow, run, hold_share=hold_share)
    return await _finish(new_uow, run, "complete")


async def _deactivate(
    new_uow: NewUnitOfWork, run: FeedRun, *, hold_share: float, confirmed: bool = False
) -> FeedRun:
    async with new_uow() as uow:
        absent, active = await catalog.unlisted_count(
            uow, supplier_id=run.supplier_id, token=run.id
        )
    run.to_deactivate, run.live_before = absent, active
    if run.dry_run:
        return await _finish(new_uow, run, "complete")
    if not confirmed and should_hold(absent, active, hold_share):
        share = absent / active
        return await _finish(
            new_uow,
            run,
            "hold",
            code="held_for_confirmation",
            detail=f"the feed would deactivate {absent} of {active} live offers ({share:.0%}); "
            "confirm or discard the run",
        )
    while True:
        async with new_uow() as uow:
            done = await catalog.deactivate_unlisted(uow, supplier_id=run.supplier_id, token=run.id)
            run.counts.deactivated += done
            run.heartbeat_at = utcnow()
            if not await store.save_run(await uow.connection(), run, expected=RunStatus.RUNNING):
                raise RunTaken(run.id)
            await uow.commit()
        if done == 0:
            break
    return await _finish(new_uow, run, "complete")


async def resolve_held(
    new_uow: NewUnitOfWork, *, run_id: str, supplier_id: str | None, confirm: bool
) -> FeedRun:
    """A held full feed: `confirm` deactivates what it left out; otherwise the run completes
    without deactivating anything (its rows were applied already)."""
    async with new_uow() as uow:
        run = await get_run(uow, run_id=run_id, supplier_id=supplier_id)
        if run.status is not RunStatus.HELD:
            raise InvalidTransition(
                f"the run is {run.status}, not held", extra={"status": str(run.status)}
            )
        if confirm:
            _transition(run, "confirm")
            run.heartbeat_at = utcnow()
            if not await store.save_run(await uow.connection(), run, expected=RunStatus.HELD):
                raise Conflict("the run was resolved meanwhile", code="feed_run_changed")
            await uow.commit()
    if not confirm:
        return await _finish(new_uow, run, "discard")
    return await _deactivate(new_uow, run, hold_share=1.0, confirmed=True)


# --- interrupted runs -----------------------------------------------------------------------


def _alive(worker: str | None, *, host: str) -> bool | None:
    """Whether the worker process lives: True/False on this host, None elsewhere (unknown)."""
    if not worker:
        return None
    name, _, pid = worker.rpartition(":")
    if name != host or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def recover_interrupted(new_uow: NewUnitOfWork, *, stale_after: float) -> list[FeedRun]:
    """Marks failed the running runs whose process is gone: on this host, a dead pid; anywhere,
    no progress for `stale_after` seconds. Their applied batches stay; the report says the line."""
    host = socket.gethostname()
    now = utcnow()
    failed: list[FeedRun] = []
    async with new_uow() as uow:
        running = await store.runs_in(await uow.connection(), RunStatus.RUNNING)
    for run in running:
        alive = _alive(run.worker, host=host)
        beat = run.heartbeat_at or run.started_at or run.created_at
        if alive is False or (alive is None and now - beat > timedelta(seconds=stale_after)):
            try:
                failed.append(
                    await _finish(
                        new_uow,
                        run,
                        "fail",
                        code="interrupted",
                        detail=f"the run stopped at line {run.line_reached} (its process "
                        "ended); applied batches stay: run the same file again to complete it",
                    )
                )
            except RunTaken:
                continue
    return failed


# --- sources: URLs fetched on a schedule -----------------------------------------------------


async def add_source(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    url: str,
    mode: Mode,
    feed_format: str | None,
    interval_seconds: int,
) -> FeedSource:
    now = utcnow()
    source = FeedSource(
        id=new_id("fsrc"),
        supplier_id=supplier_id,
        url=url,
        mode=mode,
        format=feed_format,
        interval_seconds=interval_seconds,
        enabled=True,
        next_run_at=now,
        last_run_id=None,
        created_at=now,
        updated_at=now,
    )
    await store.insert_source(await uow.connection(), source)
    return source


async def list_sources(uow: UnitOfWork, *, supplier_id: str) -> list[FeedSource]:
    return await store.list_sources(await uow.connection(), supplier_id)


async def disable_source(uow: UnitOfWork, *, supplier_id: str, source_id: str) -> FeedSource:
    conn = await uow.connection()
    source = await store.get_source(conn, source_id)
    if source is None or source.supplier_id != supplier_id:
        raise NotFound(f"no feed source {source_id}", code="feed_source_not_found")
    await store.disable_source(conn, source_id, utcnow())
    found = await store.get_source(conn, source_id)
    assert found is not None
    return found


async def get_source(uow: UnitOfWork, *, source_id: str) -> FeedSource | None:
    return await store.get_source(await uow.connection(), source_id)


async def claim_due_source(uow: UnitOfWork) -> FeedSource | None:
    return await store.claim_due_source(await uow.connection(), utcnow())


async def note_source_run(uow: UnitOfWork, *, source_id: str, run_id: str) -> None:
    await store.set_last_run(await uow.connection(), source_id, run_id)


async def fail_run(new_uow: NewUnitOfWork, run: FeedRun, *, code: str, detail: str) -> FeedRun:
    return await _finish(new_uow, run, "fail", code=code, detail=detail)


# --- preview: the first rows as they would be stored -----------------------------------------


async def preview(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    stream: BinaryIO,
    filename: str | None,
    feed_format: FeedFormat | None,
    spec: Any | None,
    limit: int,
) -> dict[str, Any]:
    """Maps and checks the first `limit` rows with the given mapping (else the saved one);
    writes nothing."""
    mapping = parse_mapping(spec) if spec is not None else (await _mapping(uow, supplier_id))[0]
    types = types_by_ref(await catalog.list_categories(uow))
    mapper = Mapper(mapping, types_for=types.get)
    feed = open_feed(stream, format=feed_format, filename=filename)
    shown: list[dict[str, Any]] = []
    drafts: list[tuple[int, OfferDraft]] = []
    for row in feed.rows():
        if len(shown) >= limit:
            break
        entry: dict[str, Any] = {"line": row.line, "sku": None, "offer": None, "errors": []}
        shown.append(entry)
        if row.values is None:
            assert row.error is not None
            entry["outcome"] = "invalid"
            entry["errors"] = [_error_out(row.line, None, row.error, shown_value(row.raw))]
            continue
        mapped = mapper.map(row.values)
        entry["sku"] = mapped.sku
        if mapped.errors:
            entry["outcome"] = "invalid"
            entry["errors"] = [
                _error_out(row.line, mapped.sku, e, shown_value(v)) for e, v in mapped.errors
            ]
        elif mapped.delete:
            entry["outcome"] = "delete"
        else:
            assert mapped.draft is not None
            drafts.append((len(shown) - 1, mapped.draft))
    checked = await catalog.check_offers(uow, [d for _, d in drafts])
    for (index, draft), outcome in zip(drafts, checked, strict=True):
        entry = shown[index]
        if isinstance(outcome, list):
            entry["outcome"] = "invalid"
            entry["errors"] = [
                _error_out(entry["line"], draft.sku, e, shown_value(offending(draft, e.field)))
                for e in outcome
            ]
        else:
            entry["outcome"] = "valid"
            entry["offer"] = {
                "sku": outcome.sku,
                "category": outcome.category_id,
                "title": outcome.title,
                "description": outcome.description,
                "attributes": outcome.attributes,
                "price": {"amount": outcome.price_amount, "currency": outcome.currency},
                "quantity": outcome.quantity,
                "status": str(outcome.status),
                "gtin": outcome.gtin,
            }
    return {
        "format": str(feed.format),
        "compressed": feed.compressed,
        "columns": feed.columns,
        "missing_columns": missing_columns(mapping, feed.columns) if feed.columns else [],
        "rows": shown,
    }


def _error_out(line: int, sku: str | None, error: FieldError, value: str | None) -> dict[str, Any]:
    return {
        "seq": 0,
        "line": line,
        "sku": sku,
        "field": error.field,
        "code": error.code,
        "message": error.message,
        "value": value,
    }


# --- the error report, in the format of the file ---------------------------------------------

REPORT_COLUMNS = ("line", "sku", "field", "code", "message", "value")
REPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "json": "application/json",
}


async def error_report(new_uow: NewUnitOfWork, run: FeedRun) -> AsyncIterator[bytes]:
    """Every stored row error of the run, as CSV (cells a spreadsheet could take for a formula
    are escaped), JSON Lines or a JSON array: the format the supplier uploaded."""
    kind = run.format or "csv"
    if kind == "csv":
        yield _csv_line(REPORT_COLUMNS)
    elif kind == "json":
        yield b"["
    after, first = 0, True
    while True:
        async with new_uow() as uow:
            page = await run_errors(uow, run_id=run.id, after_seq=after, limit=1000)
        if not page:
            break
        chunk = bytearray()
        for entry in page:
            record = {k: entry[k] for k in REPORT_COLUMNS}
            if kind == "csv":
                chunk += _csv_line(
                    ["" if v is None else spreadsheet_safe(str(v)) for v in record.values()]
                )
            elif kind == "jsonl":
                chunk += orjson.dumps(record) + b"\n"
            else:
                chunk += (b"" if first else b",") + orjson.dumps(record)
            first = False
        after = page[-1]["seq"]
        yield bytes(chunk)
    if kind == "json":
        yield b"]"


def _csv_line(values: Iterable[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue().encode()


# --- measures --------------------------------------------------------------------------------


async def metrics(uow: UnitOfWork, *, limit: int = 200) -> dict[str, Any]:
    """Integration time per supplier, and rows/s and error rate of the latest finished runs."""
    conn = await uow.connection()
    checklists = await access.checklists(uow)
    integration = [
        {
            "supplier": c.supplier_id,
            "created_at": c.created_at,
            "first_offer_live_at": c.reached.get(Milestone.FIRST_OFFER_LIVE),
            "integration_seconds": c.integration_seconds,
        }
        for c in checklists
    ]
    runs = await store.finished_runs(conn, since=None, limit=limit)
    measured = [
        {
            "id": r.id,
            "supplier": r.supplier_id,
            "status": r.status,
            "rows": r.counts.read,
            "seconds": r.seconds,
            "rows_per_s": r.rows_per_s,
            "error_rate": r.error_rate,
        }
        for r in runs
    ]
    seconds = [c.integration_seconds for c in checklists if c.integration_seconds is not None]
    speeds = [r.rows_per_s for r in runs if r.rows_per_s is not None]
    read = sum(r.counts.read for r in runs)
    return {
        "integration": integration,
        "integration_seconds_median": statistics.median(seconds) if seconds else None,
        "runs": measured,
        "rows_per_s_median": statistics.median(speeds) if speeds else None,
        "error_rate": round(sum(r.counts.failed for r in runs) / read, 4) if read else None,
    }
