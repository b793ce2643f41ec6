"""PostgreSQL's full-text index: offer writes go to its pending list; a server process merges
the list in the background, so that no write has to stop and merge it itself."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conftest import books_supplier, open_platform
from marketplane.bootstrap import Platform
from marketplane.catalog import jobs, store
from marketplane.catalog import service as catalog
from marketplane.catalog.model import SearchRequest, parse_search
from marketplane.db.engine import connect
from marketplane.db.uow import UnitOfWork
from marketplane.demo import data
from marketplane.http.app import create_app

pytestmark = pytest.mark.postgres


async def _pending_pages(platform: Platform) -> int:
    """Pages in the index's pending list, read without merging them (pgstattuple)."""
    async with platform.uow() as uow:
        conn = await uow.connection()
        await conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))
        found = await conn.execute(
            sa.text("SELECT pending_pages FROM pgstatginindex(CAST(:index AS regclass))"),
            {"index": store.SEARCH_INDEX},
        )
        pages = int(found.scalar_one())
        await uow.commit()
    return pages


async def _write_books(platform: Platform, count: int) -> str:
    supplier_id = await books_supplier(platform, "books")
    drafts = list(data.books(7, count, pool=data.book_pool(5, 40), prefix="B"))
    async with platform.uow() as uow:
        results = await catalog.upsert_offers(uow, supplier_id=supplier_id, drafts=drafts)
        assert all(r.outcome == "created" for r in results)
        await uow.commit()
    return drafts[0].title.split()[-1]


async def _found(platform: Platform, term: str) -> int:
    request = parse_search([("q", term), ("limit", "100")])
    assert isinstance(request, SearchRequest)
    async with platform.uow(write=False) as uow:
        page = await catalog.search_offers(uow, view=None, request=request)
    return len(page["data"])


async def test_a_merge_moves_the_written_entries_into_the_index(own_pg_url: str) -> None:
    platform = await open_platform(own_pg_url, search_upkeep_seconds=0)
    try:
        term = await _write_books(platform, 60)
        found_before = await _found(platform, term)
        pending = await _pending_pages(platform)
        assert pending > 0  # nothing has merged them: a write would have to, once it is full
        async with platform.uow() as uow:
            merged = await store.merge_pending_search(await uow.connection())
            await uow.commit()
        assert merged == pending
        assert await _pending_pages(platform) == 0
        async with platform.uow() as uow:
            assert await store.merge_pending_search(await uow.connection()) == 0
        assert found_before > 0
        assert await _found(platform, term) == found_before  # the same offers, found in the index
    finally:
        await platform.close()


async def test_a_server_process_merges_them_in_the_background(own_pg_url: str) -> None:
    platform = await open_platform(own_pg_url, search_upkeep_seconds=0.05)
    app = create_app(platform.settings, platform)
    try:
        async with app.router.lifespan_context(app):
            await _write_books(platform, 60)
            for _ in range(600):  # the upkeep runs every 0.05 s; allow a slow machine 30 s
                if await _pending_pages(platform) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await _pending_pages(platform) == 0
    finally:
        await platform.close()


async def test_a_role_that_does_not_own_the_index_says_so_once_and_stops(
    own_pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    platform = await open_platform(own_pg_url, search_upkeep_seconds=0)
    role = f"mp_not_owner_{os.getpid()}"
    async with platform.uow() as uow:
        conn = await uow.connection()
        await conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        await conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        await uow.commit()
    other = connect(make_url(own_pg_url).set(username=role).render_as_string(False))
    try:
        with caplog.at_level(logging.WARNING, logger="marketplane.catalog"):
            await asyncio.wait_for(
                jobs.keep_search_index(lambda: UnitOfWork(other), every=0.01, stop=asyncio.Event()),
                timeout=30,
            )  # returns by itself: it would otherwise run until stopped
        said = [r.getMessage() for r in caplog.records if r.name == "marketplane.catalog"]
        assert said == ["the search index is not this role's to merge: left to autovacuum"]
    finally:
        await other.dispose()
        async with platform.uow() as uow:
            await (await uow.connection()).execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
            await uow.commit()
        await platform.close()
