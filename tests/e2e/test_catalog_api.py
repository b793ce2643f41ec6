"""The catalog through the API: supply writes, store reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from conftest import Market, book, stay


async def test_supplier_puts_offer_and_store_finds_it(market: Market) -> None:
    # given
    _, supplier = await market.supplier("Paper Lane")
    _, client = await market.client("Web")
    # when
    created = await market.put(supplier, "PL-1", book(title="The Golden River"))
    found = await market.store(client, "/store/v1/offers", q="golden")
    # then
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    data = found.json()["data"]
    assert [o["id"] for o in data] == [created.json()["id"]]
    assert data[0]["price"] == {"amount": 1299, "currency": "EUR"}
    assert "sku" not in data[0]


async def test_identical_put_is_unchanged_and_a_change_bumps_version(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    first = await market.put(supplier, "PL-1", book())
    # when
    same = await market.put(supplier, "PL-1", book())
    changed = await market.put(supplier, "PL-1", book(amount=999))
    # then
    assert same.status_code == 200 and same.json()["version"] == 1
    assert changed.json()["version"] == 2
    assert changed.json()["id"] == first.json()["id"]
    assert changed.json()["price"]["amount"] == 999


async def test_decimal_price_is_converted_by_currency_precision(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    # when
    eur = await market.put(supplier, "A", book(price={"decimal": "12.99", "currency": "EUR"}))
    jpy = await market.put(supplier, "B", book(price={"decimal": "1299", "currency": "JPY"}))
    bad = await market.put(supplier, "C", book(price={"decimal": "12.999", "currency": "EUR"}))
    # then
    assert eur.json()["price"] == {"amount": 1299, "currency": "EUR"}
    assert jpy.json()["price"] == {"amount": 1299, "currency": "JPY"}
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "price.decimal"
    assert bad.json()["errors"][0]["code"] == "currency_precision"


async def test_products_group_offers_by_gtin_cheapest_first(market: Market) -> None:
    # given two suppliers selling the same ISBN (one as ISBN-10)
    _, first = await market.supplier("One")
    _, second = await market.supplier("Two")
    _, client = await market.client()
    a = await market.put(first, "A", book(isbn="9780306406157", amount=1500))
    b = await market.put(second, "B", book(isbn="0-306-40615-2", amount=1100))
    # when
    product_id = a.json()["product"]
    product = await market.store(client, f"/store/v1/products/{product_id}")
    # then
    assert b.json()["product"] == product_id
    body = product.json()
    assert body["gtin"] == "9780306406157"
    assert [o["id"] for o in body["offers"]] == [b.json()["id"], a.json()["id"]]
    assert body["buy_box"]["id"] == b.json()["id"]


async def test_an_offer_keeps_its_product_while_its_gtin_stays_and_moves_with_it(
    market: Market,
) -> None:
    _, key = await market.supplier()
    first = (await market.put(key, "A", book(isbn="9780306406157"))).json()["product"]
    repriced = await market.put(key, "A", book(isbn="9780306406157", amount=999))
    assert repriced.status_code == 200 and repriced.json()["product"] == first
    moved = await market.put(key, "A", book(isbn="9781861972712", amount=999))
    assert moved.json()["product"] not in (None, first)
    back = await market.put(key, "A", book(isbn="9780306406157", amount=999))
    assert back.json()["product"] == first


async def test_markup_applies_to_prices_and_price_filters(market: Market) -> None:
    # given a client with a 10% markup
    _, supplier = await market.supplier()
    _, client = await market.client(markup_bps=1000)
    await market.put(supplier, "A", book(amount=1000))
    await market.put(supplier, "B", book(amount=2000, isbn="9781402894626"))
    # when
    page = await market.store(
        client, "/store/v1/offers", sort="price", price_min=1100, price_max=1100
    )
    # then
    assert [o["price"]["amount"] for o in page.json()["data"]] == [1100]


async def test_attribute_filters_numeric_ranges_and_facets(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    _, client = await market.client()
    await market.put(supplier, "S1", stay(city="Lisbon", nights=2))
    await market.put(supplier, "S2", stay(city="Lisbon", nights=5))
    await market.put(supplier, "S3", stay(city="Porto", nights=7))
    await market.put(supplier, "B1", book(author="Ada Hartmann"))
    # when
    lisbon = await market.store(client, "/store/v1/offers", **{"attr.city": "Lisbon"})
    long_stays = await market.store(
        client, "/store/v1/offers", **{"attr.nights_min": "4", "facets": "attr.city,category"}
    )
    # then
    assert {o["attributes"]["city"] for o in lisbon.json()["data"]} == {"Lisbon"}
    assert len(lisbon.json()["data"]) == 2
    body = long_stays.json()
    assert sorted(o["attributes"]["nights"] for o in body["data"]) == [5, 7]
    assert body["facets"]["attr.city"] == [
        {"value": "Lisbon", "count": 1},
        {"value": "Porto", "count": 1},
    ]
    assert body["facets"]["category"] == [{"value": market.categories["stays"], "count": 2}]


async def test_fields_selects_what_comes_back(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    _, client = await market.client()
    await market.put(supplier, "A", book())
    # when
    page = await market.store(client, "/store/v1/offers", fields="title,price")
    # then
    assert set(page.json()["data"][0]) == {"id", "title", "price"}


async def test_relevance_puts_title_matches_first(market: Market) -> None:
    # given one offer matching in the title and a newer one matching only in the description
    _, supplier = await market.supplier()
    _, client = await market.client()
    title_match = await market.put(supplier, "A", book(title="Lantern Harbor"))
    await market.put(
        supplier,
        "B",
        book(title="Other", description="about a lantern harbor", isbn="9781402894626"),
    )
    # when
    page = await market.store(client, "/store/v1/offers", q="lantern harbor")
    # then
    ids = [o["id"] for o in page.json()["data"]]
    assert len(ids) == 2
    assert ids[0] == title_match.json()["id"]


async def test_delete_hides_the_offer_everywhere(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    _, client = await market.client()
    created = await market.put(supplier, "A", book())
    # when
    deleted = await market.api.delete("/supply/v1/offers/A", headers=market.auth(supplier))
    # then
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "deleted"
    gone = await market.store(client, f"/store/v1/offers/{created.json()['id']}")
    assert gone.status_code == 404
    own = await market.api.get("/supply/v1/offers/A", headers=market.auth(supplier))
    assert own.status_code == 404


async def test_facets_count_within_every_filter_whatever_drives_the_page(market: Market) -> None:
    # given stays in two cities
    _, supplier = await market.supplier()
    _, client = await market.client()
    await market.put(supplier, "S1", stay(city="Lisbon", nights=2))
    await market.put(supplier, "S2", stay(city="Lisbon", nights=5))
    await market.put(supplier, "S3", stay(city="Porto", nights=5))
    for sort in ("newest", "price", "-price"):
        # when a page is filtered on an exact attribute value
        page = await market.store(
            client,
            "/store/v1/offers",
            sort=sort,
            facets="attr.nights,attr.city",
            **{"attr.city": "Lisbon"},
        )
        # then the page and its facets agree
        body = page.json()
        assert len(body["data"]) == 2, sort
        assert body["facets"]["attr.city"] == [{"value": "Lisbon", "count": 2}], sort
        assert sorted(f["value"] for f in body["facets"]["attr.nights"]) == ["2", "5"], sort


async def test_many_concurrent_searches_all_complete(market: Market) -> None:
    # given more concurrent requests than any connection pool holds, each with a facet (which
    # reads off the event loop after its page was read on it)
    _, supplier = await market.supplier()
    _, client = await market.client()
    for n in range(5):
        await market.put(supplier, f"S-{n}", stay(city="Lisbon"))
    requests = [
        market.store(client, "/store/v1/offers", facets="attr.city", limit=2, sort=sort)
        for sort in ("newest", "price", "-price") * 12
    ]
    # when they all run at once (bounded, so a deadlock fails instead of hanging)
    responses = await asyncio.wait_for(asyncio.gather(*requests), timeout=60)
    # then every one was answered
    assert [r.status_code for r in responses] == [200] * len(requests)
    assert all(r.json()["facets"]["attr.city"][0]["count"] == 5 for r in responses)
