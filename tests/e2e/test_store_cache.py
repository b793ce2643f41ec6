"""The store cache: a repeated read is answered from memory, and never after a commit."""

from __future__ import annotations

from conftest import Market, asgi_client, book
from marketplane.bootstrap import Platform, build
from marketplane.settings import Settings

CACHE = "X-Marketplane-Cache"


async def test_a_repeated_search_is_served_from_the_cache(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    _, client = await market.client()
    await market.put(supplier, "A", book())
    # when
    first = await market.store(client, "/store/v1/offers", q="golden")
    second = await market.store(client, "/store/v1/offers", q="golden")
    # then
    assert first.headers[CACHE] == "miss"
    assert second.headers[CACHE] == "hit"
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"


async def test_a_supply_change_is_seen_by_the_next_read(market: Market) -> None:
    # given a cached page, offer and product
    _, supplier = await market.supplier()
    _, client = await market.client()
    created = (await market.put(supplier, "A", book(amount=1000))).json()
    paths = ["/store/v1/offers", f"/store/v1/offers/{created['id']}"]
    paths.append(f"/store/v1/products/{created['product']}")
    for path in paths * 2:
        await market.store(client, path)
    # when the price changes
    await market.put(supplier, "A", book(amount=800))
    page, offer, product = [await market.store(client, path) for path in paths]
    # then
    assert page.headers[CACHE] == offer.headers[CACHE] == product.headers[CACHE] == "miss"
    assert page.json()["data"][0]["price"]["amount"] == 800
    assert offer.json()["price"]["amount"] == 800
    assert product.json()["buy_box"]["price"]["amount"] == 800


async def test_a_client_sees_its_new_markup_and_a_suspension_at_once(market: Market) -> None:
    # given
    supplier_id, supplier = await market.supplier()
    client_id, client = await market.client()
    await market.put(supplier, "A", book(amount=1000))
    await market.store(client, "/store/v1/offers")
    # when
    await market.admin("PATCH", f"/admin/v1/clients/{client_id}", json={"markup_bps": 1000})
    marked_up = await market.store(client, "/store/v1/offers")
    await market.admin("POST", f"/admin/v1/suppliers/{supplier_id}/suspend", json={"reason": "x"})
    after_suspension = await market.store(client, "/store/v1/offers")
    # then
    assert marked_up.json()["data"][0]["price"]["amount"] == 1100
    assert after_suspension.json()["data"] == []


async def test_a_commit_by_another_process_ends_what_this_one_cached(
    platform: Platform, market: Market
) -> None:
    # given a page this process has cached, and a second process on the same database
    _, supplier = await market.supplier()
    _, client = await market.client()
    await market.put(supplier, "A", book(amount=1000))
    await market.store(client, "/store/v1/offers")
    assert (await market.store(client, "/store/v1/offers")).headers[CACHE] == "hit"
    other = build(Settings(database_url=platform.settings.database_url, key_cache_seconds=0))
    try:
        # when the other one changes the offer (as another server process would)
        async with asgi_client(other) as api:
            changed = await api.put(
                "/supply/v1/offers/A", json=book(amount=700), headers=market.auth(supplier)
            )
        page = await market.store(client, "/store/v1/offers")
    finally:
        await other.close()
    # then
    assert changed.status_code == 200, changed.text
    assert page.headers[CACHE] == "miss"
    assert page.json()["data"][0]["price"]["amount"] == 700


async def test_a_bad_request_is_never_cached(market: Market) -> None:
    # given
    _, client = await market.client()
    # when
    first = await market.store(client, "/store/v1/offers", sort="sideways")
    second = await market.store(client, "/store/v1/offers", sort="sideways")
    # then
    assert first.status_code == second.status_code == 422
    assert CACHE not in second.headers


async def test_a_cached_answer_is_only_for_keys_that_may_read_it(market: Market) -> None:
    # given a page cached for a client that sees everything
    _, supplier = await market.supplier()
    _, everything = await market.client("Web")
    _, stays_only = await market.client("Travel", allowed_categories=[market.categories["stays"]])
    await market.put(supplier, "A", book())
    await market.store(everything, "/store/v1/offers")
    assert (await market.store(everything, "/store/v1/offers")).headers[CACHE] == "hit"
    # when others ask for the same URL
    other_client = await market.store(stays_only, "/store/v1/offers")
    supply_key = await market.store(supplier, "/store/v1/offers")
    no_key = await market.api.get("/store/v1/offers")
    wrong_key = await market.store("mk_live_not_a_key", "/store/v1/offers")
    # then
    assert other_client.status_code == 200 and other_client.json()["data"] == []
    assert supply_key.status_code == 403
    assert no_key.status_code == 401
    assert wrong_key.status_code == 401
    assert CACHE not in supply_key.headers and CACHE not in no_key.headers


async def test_a_revoked_key_gets_nothing_from_the_cache(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    client_id, client = await market.client()
    await market.put(supplier, "A", book())
    await market.store(client, "/store/v1/offers")
    keys = await market.admin("GET", "/admin/v1/keys", params={"owner": client_id})
    key_id = keys.json()[0]["id"]
    # when
    await market.admin("POST", f"/admin/v1/keys/{key_id}/revoke")
    after = await market.store(client, "/store/v1/offers")
    # then
    assert after.status_code == 401
