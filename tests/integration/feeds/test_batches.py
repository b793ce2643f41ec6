"""A run applies its rows in batches: at most `batch_size` rows, and fewer when their content
passes BATCH_BYTES, so a file of large rows never holds a batch of thousands in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_feed_crash import prepare

from marketplane.bootstrap import Platform
from marketplane.feeds import cli, service
from marketplane.feeds.model import FeedRun, Mode, Origin, RunStatus


async def run_file(platform: Platform, path: Path, **options: int) -> tuple[FeedRun, list[int]]:
    supplier_id = await prepare(platform)
    async with platform.uow() as uow:
        queued = await service.create_run(
            uow,
            supplier_id=supplier_id,
            mode=Mode.DELTA,
            dry_run=False,
            origin=Origin.CLI,
            filename=path.name,
            stored=cli.local_file(path),
        )
        await uow.commit()
    run = await service.start_run(platform.uow, queued.id, worker=service.worker_name())
    assert run is not None
    read_after_each: list[int] = []

    def progress(current: FeedRun, _: int) -> None:
        read_after_each.append(current.counts.read)

    done = await service.execute_run(
        platform.uow, run, hold_share=0.5, progress=progress, **options
    )
    return done, read_after_each


def book(n: int, description: str = "") -> str:
    body = {
        "sku": f"B{n}",
        "category": "books",
        "title": f"Book {n}",
        "description": description,
        "price": {"amount": 999, "currency": "EUR"},
        "quantity": 1,
        "attributes": {"isbn": "9780306406157", "author": "Ada Hartmann", "year": 2001},
    }
    return json.dumps(body) + "\n"


async def test_rows_are_applied_batch_size_at_a_time(platform: Platform, tmp_path: Path) -> None:
    # given
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n) for n in range(12)))
    # when
    run, read_after_each = await run_file(platform, path, batch_size=5)
    # then
    assert run.status is RunStatus.COMPLETE, (run.error_code, run.error_detail)
    assert read_after_each == [5, 10, 12]
    assert run.counts.inserted == 12


async def test_large_rows_cut_a_batch_by_their_bytes(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: 30 rows of ~300 KB each, 9 MB in all, and batches cut at 1 MB
    monkeypatch.setattr(service, "BATCH_BYTES", 1_000_000)
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n, "word " * 60_000) for n in range(30)))
    # when
    run, read_after_each = await run_file(platform, path)
    # then: batches of a few rows, never all 30 at once
    assert run.status is RunStatus.COMPLETE, (run.error_code, run.error_detail)
    assert run.counts.inserted == 30
    sizes = [b - a for a, b in zip([0, *read_after_each], read_after_each, strict=False)]
    assert len(sizes) >= 5 and max(sizes) <= 6, sizes
