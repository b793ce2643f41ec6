"""On PostgreSQL a run writes several batches at once (catalog.Relay): a batch inserts its new
offers while the ones before it finish, and commits after them. Whatever the overlap, the
outcome is a run's batches applied one after the other: products shared across batches made
once, events in the file's order, and a batch that fails taking the ones after it with it,
never the ones before. The same tests run on SQLite, which writes one batch at a time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from test_batches import run_file, started_run
from test_feed_crash import prepare

from marketplane.bootstrap import Platform
from marketplane.catalog import store as catalog_store
from marketplane.catalog.store import offer_attrs, offers, products
from marketplane.events.store import events
from marketplane.feeds import service
from marketplane.feeds.model import FeedRun, RunStatus
from marketplane.feeds.service import IN_FLIGHT
from marketplane.feeds.store import feed_runs

ISBNS = ("9780306406157", "9780131103627", "9780262033848")  # three products, in every batch


def book(n: int) -> str:
    body = {
        "sku": f"R{n:03d}",
        "category": "books",
        "title": f"Relay {n}",
        "price": {"amount": 500 + n, "currency": "EUR"},
        "quantity": 1,
        "attributes": {"isbn": ISBNS[n % 3], "author": "Ada Hartmann", "year": 2001},
    }
    return json.dumps(body) + "\n"


async def test_batches_written_at_once_make_each_product_once(
    platform: Platform, tmp_path: Path
) -> None:
    # given 60 rows in batches of 6, each batch naming the same three GTINs
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n) for n in range(60)))
    # when
    run, read_after_each = await run_file(platform, path, batch_size=6)
    # then
    assert run.status is RunStatus.COMPLETE, (run.error_code, run.error_detail)
    assert read_after_each == list(range(6, 61, 6))  # progress in the file's order
    assert run.counts.inserted == 60
    async with platform.uow(write=False) as uow:
        conn = await uow.connection()
        made = {r.gtin: r.id for r in await conn.execute(sa.select(products))}
        linked = list(await conn.execute(sa.select(offers.c.gtin, offers.c.product_id)))
        entries = (await conn.execute(sa.select(sa.func.count()).select_from(offer_attrs))).scalar()
        created = [
            r.object_id
            for r in await conn.execute(
                sa.select(events.c.object_id)
                .where(events.c.type == "offer.created")
                .order_by(events.c.seq)
            )
        ]
        by_sku = dict(list(await conn.execute(sa.select(offers.c.id, offers.c.sku))))
    assert set(made) == set(ISBNS)
    assert len(linked) == 60 and all(made[gtin] == product for gtin, product in linked)
    assert entries == 60 * 3  # isbn, author, year: every batch's attribute entries are in
    assert [by_sku[object_id] for object_id in created] == [f"R{n:03d}" for n in range(60)]


async def test_a_run_looks_each_product_up_until_it_has_seen_it_committed(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given 60 rows in batches of 6, each batch naming the same three GTINs, and every
    # product lookup noted
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n) for n in range(60)))
    asked: list[list[str]] = []
    real = catalog_store.products_by_gtin

    async def noted(conn: AsyncConnection, gtins: Any) -> dict[str, str]:
        asked.append(sorted(gtins))
        return await real(conn, gtins)

    monkeypatch.setattr(catalog_store, "products_by_gtin", noted)
    # when
    run, _ = await run_file(platform, path, batch_size=6)
    # then the products are asked for twice (none there yet; the ones made, committed by then
    # on PostgreSQL, and on SQLite by the next batch), and the eight batches after not at all
    assert run.status is RunStatus.COMPLETE, (run.error_code, run.error_detail)
    assert run.counts.inserted == 60
    assert asked == [sorted(ISBNS), sorted(ISBNS)]


async def test_a_failing_batch_takes_the_batches_after_it_and_none_before(
    platform: Platform, tmp_path: Path
) -> None:
    # given: the database refuses row 27 (the fifth batch of 6) as it is inserted
    supplier_id = await prepare(platform)
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n) for n in range(60)))
    async with _refusing(platform, "R027"):
        # when
        with pytest.raises(sa.exc.DBAPIError, match="refused"):
            await run_file(platform, path, supplier_id, batch_size=6)
    # then: the first four batches and their events, nothing of the fifth or later
    async with platform.uow(write=False) as uow:
        conn = await uow.connection()
        skus = sorted(r.sku for r in await conn.execute(sa.select(offers.c.sku)))
        created = (
            await conn.execute(sa.select(sa.func.count()).where(events.c.type == "offer.created"))
        ).scalar()
        entries = (await conn.execute(sa.select(sa.func.count()).select_from(offer_attrs))).scalar()
    assert skus == [f"R{n:03d}" for n in range(24)]
    assert created == 24
    assert entries == 24 * 3


@asynccontextmanager
async def _refusing(platform: Platform, sku: str) -> AsyncIterator[None]:
    """A trigger that makes the database refuse to insert the offer `sku`, while inside."""
    if platform.db.dialect == "postgresql":
        create = [
            "CREATE FUNCTION refuse_offer() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'refused %', NEW.sku; END $$",
            f"CREATE TRIGGER refuse BEFORE INSERT ON offers FOR EACH ROW "
            f"WHEN (NEW.sku = '{sku}') EXECUTE FUNCTION refuse_offer()",
        ]
        drop = ["DROP TRIGGER refuse ON offers", "DROP FUNCTION refuse_offer()"]
    else:
        create = [
            f"CREATE TRIGGER refuse BEFORE INSERT ON offers WHEN NEW.sku = '{sku}' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
        drop = ["DROP TRIGGER refuse"]
    await _execute(platform, create)
    try:
        yield
    finally:
        await _execute(platform, drop)


async def _execute(platform: Platform, statements: list[str]) -> None:
    async with platform.uow() as uow:
        conn = await uow.connection()
        for statement in statements:
            await conn.exec_driver_sql(statement)
        await uow.commit()


# --- batches in flight (PostgreSQL) -----------------------------------------------------------


async def _in_transaction(conn: AsyncConnection) -> list[Any]:
    """The other sessions of this database inside a transaction: (pid, state, wait type)."""
    await conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))  # else read once a transaction
    found = await conn.execute(
        sa.text(
            "SELECT pid, state, wait_event_type FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND xact_start IS NOT NULL ORDER BY xact_start"
        )
    )
    return list(found)


async def _all_in_flight(conn: AsyncConnection) -> list[Any]:
    """Waits until one batch waits for the run's row and each of the ones after it that may be
    in flight has written its new offers and waits for its turn (idle in its transaction, not
    on a lock: the products it shares with the first one were there for it before that one
    commits)."""
    waiting = [("active", "Lock"), *[("idle in transaction", "Client")] * (IN_FLIGHT - 1)]
    for _ in range(600):
        sessions = await _in_transaction(conn)
        states = sorted((s.state, s.wait_event_type or "") for s in sessions)
        if states == waiting:
            return sessions
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {IN_FLIGHT} batches in flight: {sessions}")


@asynccontextmanager
async def _batches_in_flight(
    platform: Platform, path: Path
) -> AsyncIterator[tuple[AsyncConnection, list[Any], FeedRun, asyncio.Task[FeedRun]]]:
    """A run of the file whose row this session holds, so its first batch cannot commit,
    once the batches after it have gone as far as they may: (this session, the run's sessions,
    the run as started, the run executing). Leaving rolls back, which lets the row go."""
    run = await started_run(platform, path)
    async with platform.uow() as uow:
        conn = await uow.connection()
        await conn.execute(
            sa.select(feed_runs.c.id).where(feed_runs.c.id == run.id).with_for_update()
        )
        running = asyncio.create_task(
            service.execute_run(platform.uow, run, hold_share=0.5, batch_size=6)
        )
        yield conn, await _all_in_flight(conn), run, running


@pytest.mark.postgres
async def test_the_next_batch_writes_while_the_one_before_is_finishing(
    pg_platform: Platform, tmp_path: Path
) -> None:
    # given a run whose row another session holds, so its first batch cannot commit yet
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n) for n in range(30)))
    # when: the batches after it get as far as they may, and the row is let go
    async with _batches_in_flight(pg_platform, path) as (_, _, _, running):
        pass
    done = await running
    # then everything is written, as if one after the other
    assert done.status is RunStatus.COMPLETE, (done.error_code, done.error_detail)
    assert done.counts.inserted == 30 and done.line_reached == 30


@pytest.mark.postgres
async def test_a_batch_lost_while_the_next_is_in_flight_takes_that_one_too(
    pg_platform: Platform, tmp_path: Path
) -> None:
    # given a first batch waiting for the run's row, and the ones after it waiting for their turn
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(book(n) for n in range(30)))
    async with _batches_in_flight(pg_platform, path) as (conn, sessions, run, running):
        first = next(s for s in sessions if s.wait_event_type == "Lock")
        # when the first batch's connection is lost, and the run's row is let go
        await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first.pid})
    with pytest.raises(sa.exc.DBAPIError, match="terminat"):
        await running
    # then the batches after it did not commit either: nothing was written
    async with pg_platform.uow(write=False) as uow:
        conn = await uow.connection()
        written = (await conn.execute(sa.select(sa.func.count()).select_from(offers))).scalar()
        changes = (
            await conn.execute(sa.select(sa.func.count()).where(events.c.type.like("offer.%")))
        ).scalar()
        stored = await service.get_run(uow, run_id=run.id)
    assert written == 0
    assert changes == 0
    assert stored.status is RunStatus.RUNNING and stored.line_reached == 0  # for recovery
