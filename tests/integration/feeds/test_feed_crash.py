"""Killing a feed import at any moment: every batch is in or out with its counts, the run is
marked failed at the line it reached, search agrees with the offers, and a re-run completes it.
The same when the rows are prepared by a separate process, which ends with the import."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import books_supplier
from marketplane.bootstrap import Platform
from marketplane.demo import data
from marketplane.feeds import service
from marketplane.feeds.model import RunStatus
from marketplane.feeds.store import feed_runs

ROWS = 8000
CLI = [sys.executable, "-m", "marketplane", "feed", "import"]


def write_feed(path: Path) -> None:
    pool = data.book_pool(7, 1000)
    with path.open("w") as out:
        for draft in data.books(1, ROWS, pool=pool, prefix="K"):
            body = {
                "sku": draft.sku,
                "category": "books",
                "title": draft.title,
                "description": draft.description,  # "… edition by …"
                "price": {"amount": draft.price_amount, "currency": "EUR"},
                "quantity": draft.quantity,
                "attributes": draft.attributes,
            }
            out.write(json.dumps(body) + "\n")


async def prepare(platform: Platform) -> str:
    return await books_supplier(platform, "Crashy")


def env_for(platform: Platform, process_bytes: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLANE_")}
    env["MARKETPLANE_DATABASE_URL"] = platform.settings.database_url
    env["MARKETPLANE_DATA_DIR"] = str(platform.settings.data_dir)
    env["MARKETPLANE_FEED_PROCESS_BYTES"] = str(process_bytes)
    return env


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait a while for its reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def line_reached(platform: Platform) -> int:
    async with platform.uow(write=False) as uow:
        found = await (await uow.connection()).execute(
            sa.select(sa.func.max(feed_runs.c.line_reached))
        )
        return int(found.scalar() or 0)


async def live_and_indexed(platform: Platform, supplier_id: str) -> tuple[int, int]:
    """(live offers, live offers full-text search finds for a word every title has)."""
    async with platform.uow(write=False) as uow:
        conn = await uow.connection()
        live = (
            await conn.execute(
                sa.text("SELECT count(*) FROM offers WHERE supplier_id = :s AND live = 1"),
                {"s": supplier_id},
            )
        ).scalar_one()
        if uow.dialect == "sqlite":
            query = "SELECT count(*) FROM offers_fts WHERE offers_fts MATCH 'edition'"
        else:
            query = (
                "SELECT count(*) FROM offers WHERE live = 1 "
                "AND search_tsv @@ to_tsquery('simple', 'edition')"
            )
        indexed = (await conn.execute(sa.text(query))).scalar_one()
    return int(live), int(indexed)


@pytest.mark.parametrize("process_bytes", [0, 1], ids=["thread", "process"])
async def test_a_killed_import_keeps_whole_batches_and_a_rerun_completes_it(
    platform: Platform, tmp_path: Path, process_bytes: int
) -> None:
    # given a feed of 8,000 offers (eight batches) being imported by the CLI
    supplier_id = await prepare(platform)
    feed = tmp_path / "feed.jsonl"
    write_feed(feed)
    argv = [*CLI, str(feed), "--supplier", supplier_id, "--json"]
    process = await asyncio.create_subprocess_exec(
        *argv, env=env_for(platform, process_bytes), stdout=asyncio.subprocess.DEVNULL
    )
    # when it is killed (-9) once a few batches are in
    while await line_reached(platform) < 2000 and process.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout=0.02)
    assert process.returncode is None, "the import ended before it could be killed"
    helpers = children(process.pid)  # the preparing process, when there is one
    os.kill(process.pid, signal.SIGKILL)
    await process.wait()
    for _ in range(500):  # it ends at its next send, into a pipe nobody reads
        if not any(running(pid) for pid in helpers):
            break
        await asyncio.sleep(0.02)
    assert not any(running(pid) for pid in helpers), "a helper process outlived the import"
    assert helpers if process_bytes else not helpers
    recovered = await service.recover_interrupted(platform.uow, stale_after=3600)
    # then the run failed at the line it reached, with exactly what was applied
    assert len(recovered) == 1
    run = recovered[0]
    assert run.status is RunStatus.FAILED and run.error_code == "interrupted"
    assert run.line_reached % 1000 == 0 and 2000 <= run.line_reached < ROWS
    assert f"line {run.line_reached}" in (run.error_detail or "")
    live, indexed = await live_and_indexed(platform, supplier_id)
    assert live == run.counts.inserted == run.line_reached
    assert indexed == live

    # when the same file is imported again
    again = await asyncio.create_subprocess_exec(
        *argv, env=env_for(platform, process_bytes), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await again.communicate()
    # then it completes: what was in is unchanged, the rest inserted
    assert again.returncode == 0
    done = json.loads(output)
    assert done["status"] == "complete"
    assert done["counts"]["unchanged"] == run.counts.inserted
    assert done["counts"]["inserted"] == ROWS - run.counts.inserted
    assert await live_and_indexed(platform, supplier_id) == (ROWS, ROWS)
