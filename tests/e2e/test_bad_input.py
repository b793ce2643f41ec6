"""Bad input gets a clear 4xx problem+json naming the field, and nothing is half-written."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Market, book, stay


def _problem(response: Any, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].startswith("urn:marketplane:problem:")
    assert body["request_id"] == response.headers["x-request-id"]
    assert field in {e["field"] for e in body["errors"]}, body
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (book(colour="red"), "colour"),  # unknown field
        (book(quantity="five"), "quantity"),  # wrong type
        (book(quantity=-1), "quantity"),  # negative quantity
        (book(price={"amount": 12.5, "currency": "EUR"}), "price.amount"),  # float money
        (book(price={"decimal": "12.999", "currency": "EUR"}), "price.decimal"),  # precision
        (book(price={"amount": 100, "currency": "EURO"}), "price.currency"),
        (book(price={"amount": 100, "currency": "ZZZ"}), "price.currency"),  # not ISO 4217
        (book(category="nope"), "category"),
        ({**book(), "attributes": {"isbn": "9780306406157", "author": 7}}, "attributes.author"),
        ({**book(), "attributes": {"author": "A"}}, "attributes"),  # required isbn missing
        ({**book(), "attributes": {"isbn": "123", "author": "A"}}, "attributes.isbn"),  # bad GTIN
        ({**book(), "attributes": {**book()["attributes"], "pages": 3}}, "attributes"),
    ],
)
async def test_a_bad_offer_names_its_field_and_writes_nothing(
    market: Market, body: dict[str, Any], field: str
) -> None:
    # given
    _, supplier = await market.supplier()
    # when
    response = await market.put(supplier, "SKU-1", body)
    # then
    _problem(response, 422, field)
    listed = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    assert listed.json()["data"] == []


async def test_a_bad_update_leaves_the_offer_as_it_was(market: Market) -> None:
    _, supplier = await market.supplier()
    await market.put(supplier, "SKU-1", book(amount=1000))
    response = await market.put(supplier, "SKU-1", book(amount=2000, quantity=-3))
    _problem(response, 422, "quantity")
    offer = (await market.api.get("/supply/v1/offers/SKU-1", headers=market.auth(supplier))).json()
    assert (offer["price"]["amount"], offer["version"]) == (1000, 1)


async def test_a_batch_reports_per_item_and_applies_the_good_ones(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    items = [
        {**book(), "sku": "GOOD-1"},
        {**book(quantity=-1), "sku": "BAD-QTY"},
        {**stay(), "sku": "GOOD-2"},
        {**book(quantity="x"), "sku": "BAD-TYPE"},
        {**book(), "sku": "GOOD-1"},  # the same sku again: the last wins
    ]
    # when
    response = await market.api.post(
        "/supply/v1/offers/batch", json={"offers": items}, headers=market.auth(supplier)
    )
    # then
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["failed", "failed", "created", "failed", "created"]
    assert results[0]["errors"][0]["code"] == "duplicate_sku"
    assert results[1]["errors"][0]["field"] == "quantity"
    assert results[3]["errors"][0]["field"] == "quantity"
    assert response.json()["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "failed": 3}
    listed = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    assert sorted(o["sku"] for o in listed.json()["data"]) == ["GOOD-1", "GOOD-2"]


async def test_an_oversized_batch_is_refused_whole(market: Market) -> None:
    _, supplier = await market.supplier()
    items = [{**book(), "sku": f"S-{n}"} for n in range(1001)]
    response = await market.api.post(
        "/supply/v1/offers/batch", json={"offers": items}, headers=market.auth(supplier)
    )
    body = _problem(response, 422, "offers")
    assert body["code"] == "batch_too_large"
    listed = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    assert listed.json()["data"] == []


@pytest.mark.parametrize(
    ("params", "field", "status"),
    [
        ({"cursor": "not-a-cursor"}, "cursor", 400),
        ({"limit": "500"}, "limit", 422),
        ({"limit": "ten"}, "limit", 422),
        ({"sort": "cheapest"}, "sort", 422),
        ({"fields": "title,cost"}, "fields", 422),
        ({"attr.nights_min": "many"}, "attr.nights_min", 422),
        ({"price_min": "-5"}, "price_min", 422),
        ({"facets": "colour"}, "facets", 422),
    ],
)
async def test_bad_store_queries_name_their_parameter(
    market: Market, params: dict[str, str], field: str, status: int
) -> None:
    _, client = await market.client()
    _problem(await market.store(client, "/store/v1/offers", **params), status, field)


async def test_a_cursor_cannot_be_replayed_against_another_query(market: Market) -> None:
    _, supplier = await market.supplier()
    _, client = await market.client()
    for n in range(3):
        await market.put(supplier, f"S-{n}", book())
    page = await market.store(client, "/store/v1/offers", limit=1, sort="price")
    cursor = page.json()["next_cursor"]
    other = await market.store(
        client, "/store/v1/offers", limit=1, sort="price", q="golden", cursor=cursor
    )
    body = _problem(other, 400, "cursor")
    assert body["code"] == "invalid_cursor"


async def test_bad_category_schemas_and_slugs(market: Market) -> None:
    not_object = await market.admin(
        "POST",
        "/admin/v1/categories",
        json={"slug": "x", "name": "X", "attribute_schema": {"type": "string"}},
    )
    broken = await market.admin(
        "POST",
        "/admin/v1/categories",
        json={
            "slug": "y",
            "name": "Y",
            "attribute_schema": {"type": "object", "properties": {"a": {"type": "nonsense"}}},
        },
    )
    slug = await market.admin(
        "POST",
        "/admin/v1/categories",
        json={"slug": "Bad Slug", "name": "Z", "attribute_schema": {"type": "object"}},
    )
    taken = await market.admin(
        "POST",
        "/admin/v1/categories",
        json={"slug": "books", "name": "B", "attribute_schema": {"type": "object"}},
    )
    _problem(not_object, 422, "attribute_schema")
    _problem(broken, 422, "attribute_schema")
    _problem(slug, 422, "slug")
    assert taken.status_code == 409 and taken.json()["code"] == "slug_taken"


async def test_malformed_json_and_oversized_bodies(market: Market) -> None:
    _, supplier = await market.supplier()
    malformed = await market.api.put(
        "/supply/v1/offers/S-1",
        content=b"{not json",
        headers={**market.auth(supplier), "content-type": "application/json"},
    )
    assert malformed.status_code == 422
    huge = await market.api.put(
        "/supply/v1/offers/S-1",
        content=b"x" * (9 * 1024 * 1024),
        headers={**market.auth(supplier), "content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json()["code"] == "payload_too_large"


async def test_every_response_carries_a_request_id(market: Market) -> None:
    ok = await market.api.get("/healthz")
    echoed = await market.api.get("/healthz", headers={"x-request-id": "trace-123"})
    missing = await market.api.get("/store/v1/nothing-here")
    assert ok.headers["x-request-id"].startswith("req_")
    assert echoed.headers["x-request-id"] == "trace-123"
    assert missing.status_code == 404
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
