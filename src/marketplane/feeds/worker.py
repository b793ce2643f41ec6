"""The feed worker: takes queued runs one at a time, fetches due sources, and fails runs whose
process died. Several workers (processes) can share one database: each run and each due source
is claimed by a conditional update, so exactly one of them takes it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import urlsplit

from marketplane.feeds import service
from marketplane.feeds.fetch import FetchFailed, FetchRefused, fetch_to_file, parse_allow
from marketplane.feeds.model import FeedRun, Origin, RunStatus
from marketplane.feeds.service import NewUnitOfWork, RunTaken
from marketplane.feeds.store import first_queued, save_run
from marketplane.settings import Settings


def feed_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "feeds"


async def _schedule_due(new_uow: NewUnitOfWork) -> FeedRun | None:
    """Queues a run for the next due source, if any."""
    async with new_uow() as uow:
        source = await service.claim_due_source(uow)
        if source is None:
            return None
        name = Path(urlsplit(source.url).path).name or None
        run = await service.create_run(
            uow,
            supplier_id=source.supplier_id,
            mode=source.mode,
            dry_run=False,
            origin=Origin.URL,
            filename=name,
            stored=None,
            source_id=source.id,
        )
        await service.note_source_run(uow, source_id=source.id, run_id=run.id)
        await uow.commit()
    return run


async def _fetch(new_uow: NewUnitOfWork, run: FeedRun, settings: Settings) -> FeedRun | None:
    """Fetches a URL run's file; on failure the run fails with the reason and None comes back."""
    assert run.source_id is not None
    async with new_uow() as uow:
        source = await service.get_source(uow, source_id=run.source_id)
    if source is None:
        await service.fail_run(new_uow, run, code="source_gone", detail="no such feed source")
        return None
    dest = feed_dir(settings) / run.id
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fetched = await fetch_to_file(
            source.url,
            dest,
            max_bytes=settings.feed_max_bytes,
            timeout=settings.fetch_timeout,
            allow=parse_allow(p for p in settings.allow_private_targets.split(",") if p.strip()),
        )
    except (FetchRefused, FetchFailed) as exc:
        await service.fail_run(new_uow, run, code=exc.code, detail=exc.detail)
        return None
    run.file_path, run.file_bytes, run.file_sha256 = str(dest), fetched.bytes, fetched.sha256
    async with new_uow() as uow:
        if not await save_run(await uow.connection(), run, expected=RunStatus.RUNNING):
            raise RunTaken(run.id)
        await uow.commit()
    return run


async def run_next(new_uow: NewUnitOfWork, settings: Settings) -> FeedRun | None:
    """Does one piece of work: the oldest queued run, else the next due source's run. Returns
    the run it finished, or None when there was nothing to do."""
    async with new_uow() as uow:
        run_id = await first_queued(await uow.connection())
    if run_id is None:
        scheduled = await _schedule_due(new_uow)
        if scheduled is None:
            return None
        run_id = scheduled.id
    run = await service.start_run(new_uow, run_id, worker=service.worker_name())
    if run is None:
        return None  # another worker took it
    try:
        if run.origin is Origin.URL and run.file_path is None:
            fetched = await _fetch(new_uow, run, settings)
            if fetched is None:
                return run
            run = fetched
        return await service.execute_run(
            new_uow,
            run,
            hold_share=settings.feed_hold_share,
            process_from=settings.feed_process_bytes or None,
        )
    except RunTaken:
        return None


async def drain(new_uow: NewUnitOfWork, settings: Settings) -> list[FeedRun]:
    """Runs everything queued or due now (tests and the CLI use it)."""
    await service.recover_interrupted(new_uow, stale_after=settings.feed_stale_seconds)
    done: list[FeedRun] = []
    while (run := await run_next(new_uow, settings)) is not None:
        done.append(run)
    return done


async def work(
    new_uow: NewUnitOfWork, settings: Settings, *, stop: asyncio.Event, poll: float = 1.0
) -> None:
    """Until `stop`: recover interrupted runs, then take work, waiting `poll` when idle."""
    recovered_at = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        if loop.time() - recovered_at > min(30.0, settings.feed_stale_seconds / 2):
            await service.recover_interrupted(new_uow, stale_after=settings.feed_stale_seconds)
            recovered_at = loop.time()
        if await run_next(new_uow, settings) is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll)
