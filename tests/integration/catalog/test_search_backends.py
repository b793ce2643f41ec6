"""Search on SQLite FTS5 and PostgreSQL tsvector: the same query over the same data gives the same
set; pages stay exact while offers are inserted concurrently."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from itertools import islice

import pytest

from conftest import create_pg_database, open_platform, remove_pg_database
from marketplane.access import service as access
from marketplane.bootstrap import Platform
from marketplane.catalog import service as catalog
from marketplane.catalog.model import OfferDraft, SearchRequest, parse_search
from marketplane.demo import data

POOL = data.book_pool(11, 150)
QUERIES: list[list[tuple[str, str]]] = [
    [("q", POOL[0]["title"].split()[-1])],
    [("q", POOL[0]["title"])],
    [("q", "in Lisbon")],
    [("q", POOL[0]["author"].split()[1].upper())],
    [("q", "in"), ("category", "stays")],
    [("q", "the"), ("sort", "price")],
    [("category", "books"), ("attr.author", POOL[0]["author"])],
    [("attr.city", "Porto"), ("attr.nights_min", "4"), ("attr.nights_max", "9")],
    [("attr.year", str(POOL[0]["year"]))],
    [("price_min", "1000"), ("price_max", "2000"), ("sort", "-price")],
    [("q", "crème brûlée")],
    [("q", "édition")],
]


async def _seed(platform: Platform, count: int) -> dict[str, str]:
    async with platform.uow() as uow:
        await catalog.create_category(
            uow, slug="books", name="Books", attribute_schema=data.BOOKS_SCHEMA
        )
        await catalog.create_category(
            uow, slug="stays", name="Stays", attribute_schema=data.STAYS_SCHEMA
        )
        ids = {}
        for name in ("books", "stays"):
            supplier = await access.create_supplier(uow, name=name, email=None)
            supplier = await access.transition_supplier(
                uow, supplier_id=supplier.id, action="approve", actor="test"
            )
            await catalog.apply_supplier_status(
                uow, supplier_id=supplier.id, status=supplier.status
            )
            ids[name] = supplier.id
        await uow.commit()
    drafts: dict[str, list[OfferDraft]] = {
        "books": list(data.books(5, count, pool=POOL, prefix="B")),
        "stays": list(data.stays(6, count, prefix="S")),
    }
    drafts["books"].append(
        OfferDraft(
            sku="B-accents",
            category="books",
            title="Crème Brûlée",
            description="Édition",
            price_currency="EUR",
            price_amount=500,
            quantity=1,
            attributes={"isbn": "9780306406157", "author": "Zoé", "year": 2001},
        )
    )
    for name, items in drafts.items():
        async with platform.uow() as uow:
            results = await catalog.upsert_offers(uow, supplier_id=ids[name], drafts=items)
            assert all(r.outcome == "created" for r in results)
            await uow.commit()
    return ids


async def _all_skus(
    platform: Platform, params: list[tuple[str, str]], limit: int = 37
) -> list[str]:
    skus: list[str] = []
    cursor = None
    while True:
        query = [*params, ("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
        request = parse_search(query)
        assert isinstance(request, SearchRequest)
        async with platform.uow(write=False) as uow:
            page = await catalog.search_offers(uow, view=None, request=request)
            for offer in page["data"]:
                found = await catalog.any_offer(uow, offer_id=offer["id"])
                skus.append(found.sku)
        cursor = page["next_cursor"]
        if not cursor:
            return skus


@pytest.mark.postgres
async def test_the_same_query_returns_the_same_set_on_both_databases(sqlite_url: str) -> None:
    name = f"mp_parity_{os.getpid()}"
    pg_url = await create_pg_database(name)
    lite = await open_platform(sqlite_url)
    pg = await open_platform(pg_url)
    try:
        await _seed(lite, 400)
        await _seed(pg, 400)
        for params in QUERIES:
            on_sqlite = await _all_skus(lite, params)
            on_postgres = await _all_skus(pg, params)
            assert len(on_sqlite) == len(set(on_sqlite)), params
            assert set(on_sqlite) == set(on_postgres), params
            assert on_sqlite, f"the query {params} should match something"
            # relevance and sorts are defined by the offer alone, so even the order agrees
            assert on_sqlite == on_postgres, params
    finally:
        await lite.close()
        await pg.close()
        await remove_pg_database(name)


async def _insert_while_paging(platform: Platform, supplier_id: str, stop: asyncio.Event) -> int:
    stream = data.books(99, 10_000, pool=data.book_pool(3, 50), prefix="NEW")
    inserted = 0
    while not stop.is_set():
        chunk = list(islice(stream, 3))
        async with platform.uow() as uow:
            await catalog.upsert_offers(uow, supplier_id=supplier_id, drafts=chunk)
            await uow.commit()
        inserted += len(chunk)
        await asyncio.sleep(0)
    return inserted


@pytest.mark.parametrize(
    "params",
    [
        [("sort", "newest")],
        [("sort", "price")],
        [("sort", "-price")],
        [("q", "the")],
        [("q", "in the"), ("sort", "relevance")],
    ],
)
async def test_paging_under_concurrent_inserts_has_no_duplicates_or_skips(
    platform: Platform, params: list[tuple[str, str]]
) -> None:
    # given a catalog and the full result before paging starts
    ids = await _seed(platform, 120)
    before = set(await _all_skus(platform, params))
    assert len(before) > 20, "the query should span several pages"
    # when offers are inserted while a client pages through
    stop = asyncio.Event()
    inserter = asyncio.create_task(_insert_while_paging(platform, ids["books"], stop))
    try:
        paged = await _all_skus(platform, params, limit=9)
    finally:
        stop.set()
        inserted = await inserter
    # then every offer that existed is seen exactly once, and nothing twice
    assert inserted > 0
    assert len(paged) == len(set(paged))
    assert before <= set(paged)
    assert all(sku.startswith("NEW") for sku in set(paged) - before)


async def test_search_results_follow_every_write(platform: Platform) -> None:
    ids = await _seed(platform, 10)
    drafts = [
        OfferDraft(
            sku="X-1",
            category="stays",
            title="Velvet cabin in Oslo",
            price_currency="EUR",
            price_amount=10000,
            quantity=1,
            attributes={"city": "Oslo", "check_in": "2027-01-01", "nights": 2, "guests": 2},
        )
    ]
    async with platform.uow() as uow:
        await catalog.upsert_offers(uow, supplier_id=ids["stays"], drafts=drafts)
        await uow.commit()
    assert await _all_skus(platform, [("q", "velvet oslo")]) == ["X-1"]
    renamed = [replace(drafts[0], title="Iron cabin in Oslo")]
    async with platform.uow() as uow:
        await catalog.upsert_offers(uow, supplier_id=ids["stays"], drafts=renamed)
        await uow.commit()
    assert await _all_skus(platform, [("q", "velvet oslo")]) == []
    assert await _all_skus(platform, [("q", "iron oslo")]) == ["X-1"]
