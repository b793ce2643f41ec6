"""A run applies its rows in batches: at most `batch_size` rows, and fewer when their content
passes BATCH_BYTES, so a file of large rows never holds a batch of thousands in memory. A large
file's batches are prepared by a separate process (`process_from`), with the same outcome."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from test_feed_crash import prepare

from marketplane.bootstrap import Platform
from marketplane.feeds import cli, service
from marketplane.feeds.model import FeedRun, Mode, Origin, RunStatus

APART = pytest.mark.parametrize("process_from", [None, 1], ids=["thread", "process"])


async def started_run(platform: Platform, path: Path, supplier_id: str | None = None) -> FeedRun:
    """A delta run of the file, queued and taken by this process (a new supplier's if none)."""
    supplier_id = supplier_id or await prepare(platform)
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
    return run


async def run_file(
    platform: Platform,
    path: Path,
    supplier_id: str | None = None,
    on_progress: Any = None,
    **options: Any,
) -> tuple[FeedRun, list[int]]:
    run = await started_run(platform, path, supplier_id)
    read_after_each: list[int] = []

    def progress(current: FeedRun, _: int) -> None:
        read_after_each.append(current.counts.read)
        if on_progress is not None:
            on_progress(current)

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


@APART
async def test_rows_are_applied_batch_size_at_a_time(
    platform: Platform, tmp_path: Path, process_from: int | None
) -> None:
    # given
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n) for n in range(12)))
    # when
    run, read_after_each = await run_file(platform, path, batch_size=5, process_from=process_from)
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


@APART
async def test_bad_rows_and_repeats_are_reported_the_same_however_prepared(
    platform: Platform, tmp_path: Path, process_from: int | None
) -> None:
    # given good rows, a bad price, a line that is not JSON, and a SKU repeated a batch later
    path = tmp_path / "feed.jsonl"
    bad_price = book(3).replace('"amount": 999', '"amount": -5')
    path.write_text(book(1) + book(2) + bad_price + "{oops\n" + book(5) + book(1))
    # when
    run, _ = await run_file(platform, path, batch_size=3, process_from=process_from)
    # then
    assert run.status is RunStatus.COMPLETE, (run.error_code, run.error_detail)
    counts = run.counts
    assert (counts.read, counts.inserted, counts.updated, counts.failed) == (6, 3, 0, 2)
    assert counts.unchanged == 1  # the repeat of B1 states what the first row did
    async with platform.uow(write=False) as uow:
        errors = await service.run_errors(uow, run_id=run.id, after_seq=0, limit=10)
    assert [(e["line"], e["code"]) for e in errors] == [
        (3, "out_of_range"),
        (4, "invalid_json"),
        (6, "duplicate_sku"),
    ]


@APART
async def test_an_unreadable_file_applies_every_row_before_the_damage(
    platform: Platform, tmp_path: Path, process_from: int | None
) -> None:
    # given a gzip file cut off after its first few hundred rows
    whole = gzip.compress("".join(book(n) for n in range(2000)).encode())
    path = tmp_path / "feed.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    # when
    run, _ = await run_file(platform, path, batch_size=100, process_from=process_from)
    # then every row read whole before the cut is in (not only whole batches), and the run says
    # where it stopped
    assert run.status is RunStatus.FAILED and run.error_code == "feed_unreadable"
    assert 0 < run.counts.inserted == run.line_reached < 2000
    assert run.line_reached % 100 != 0, "only whole batches were applied"
    assert f"line {run.line_reached}" in (run.error_detail or "")


async def test_a_csv_prepared_apart_lacking_a_mapped_column_fails_before_any_row(
    platform: Platform, tmp_path: Path
) -> None:
    # given a saved mapping naming a column the file lacks
    supplier_id = await prepare(platform)
    async with platform.uow() as uow:
        await service.save_mapping(
            uow, supplier_id=supplier_id, spec={"fields": {"sku": {"column": "ref"}}}
        )
        await uow.commit()
    path = tmp_path / "feed.csv"
    path.write_text("sku,title\nA,Book A\n")
    # when
    run, read_after_each = await run_file(platform, path, supplier_id, process_from=1)
    # then
    assert run.status is RunStatus.FAILED and run.error_code == "mapping_mismatch"
    assert "ref" in (run.error_detail or "") and read_after_each == []


async def test_a_preparing_process_that_dies_fails_the_run_and_a_rerun_completes_it(
    platform: Platform, tmp_path: Path
) -> None:
    # given a file of many batches, prepared apart
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n, "word " * 200) for n in range(3000)))

    def kill_the_preparer(_: FeedRun) -> None:
        tasks = Path(f"/proc/{os.getpid()}/task").iterdir()
        for pid in (int(p) for task in tasks for p in (task / "children").read_text().split()):
            with contextlib.suppress(FileNotFoundError):
                if "prepare_apart" in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)

    # when the preparing process is killed (-9) once the first batch is written
    run, _ = await run_file(
        platform, path, on_progress=kill_the_preparer, batch_size=50, process_from=1
    )
    # then the run fails at the line it reached, with the batches before it applied
    assert run.status is RunStatus.FAILED and run.error_code == "preparation_failed"
    assert 50 <= run.counts.inserted == run.line_reached < 3000
    assert f"line {run.line_reached}" in (run.error_detail or "")
    # and running the file again completes it
    again, _ = await run_file(platform, path, run.supplier_id, batch_size=50, process_from=1)
    assert again.status is RunStatus.COMPLETE
    reached = run.line_reached
    assert (again.counts.unchanged, again.counts.inserted) == (reached, 3000 - reached)
