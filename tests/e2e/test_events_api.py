"""The event log on each side: every change written with it, each side seeing its own."""

from __future__ import annotations

from typing import Any

from conftest import Market, book


async def log(market: Market, key: str | None, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every event a key may read at `path`, following next_cursor page by page."""
    headers = market.auth(key) if key else market.auth(market.operator_key)
    found: list[dict[str, Any]] = []
    params = {"limit": 2, **params}
    while True:
        response = await market.api.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["data"])
        if not page["has_more"]:
            return found
        params["after"] = page["next_cursor"]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_each_offer_change_is_one_event_of_its_kind(market: Market) -> None:
    # given
    supplier_id, supplier = await market.supplier("Alice")
    # when: created, repriced, restocked, retitled, sent again unchanged, deleted
    assert (await market.put(supplier, "B1", book(amount=1299))).status_code == 201
    assert (await market.put(supplier, "B1", book(amount=999))).status_code == 200
    assert (await market.put(supplier, "B1", book(amount=999, quantity=2))).status_code == 200
    assert (await market.put(supplier, "B1", book(amount=999, quantity=2, title="New"))).is_success
    assert (await market.put(supplier, "B1", book(amount=999, quantity=2, title="New"))).is_success
    deleted = await market.api.delete("/supply/v1/offers/B1", headers=market.auth(supplier))
    assert deleted.status_code == 200, deleted.text
    # then
    offers = await log(
        market,
        supplier,
        "/supply/v1/events",
        types="offer.created,offer.updated,offer.price_changed,offer.stock_changed,offer.removed",
    )
    assert kinds(offers) == [
        "offer.created",
        "offer.price_changed",
        "offer.stock_changed",
        "offer.updated",
        "offer.removed",
    ]
    assert [e["object"]["version"] for e in offers] == [1, 2, 3, 4, 5]
    assert offers[1]["data"]["price"] == {"amount": 999, "currency": "EUR"}
    assert offers[2]["data"]["quantity"] == 2
    assert offers[3]["data"]["title"] == "New"
    assert offers[4]["data"]["status"] == "deleted"
    assert all(e["data"]["supplier"] == supplier_id for e in offers)
    seqs = [e["seq"] for e in offers]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_supplier_reads_only_its_own_events(market: Market) -> None:
    # given
    alice_id, alice = await market.supplier("Alice")
    bob_id, bob = await market.supplier("Bob")
    await market.put(alice, "A1", book())
    await market.put(bob, "B1", book())
    # when
    alices = await log(market, alice, "/supply/v1/events")
    everything = await log(market, None, "/admin/v1/events")
    # then
    assert kinds(alices) == ["supplier.created", "supplier.status_changed", "offer.created"]
    assert {e["object"]["id"] for e in alices} - {alice_id} == {alices[-1]["object"]["id"]}
    assert all(e["data"].get("supplier", alice_id) == alice_id for e in alices)
    assert kinds(everything).count("offer.created") == 2
    assert {e["object"]["id"] for e in everything} >= {alice_id, bob_id}
    only_bob = await log(market, None, "/admin/v1/events", supplier=bob_id)
    assert only_bob and all(
        e["object"]["id"] == bob_id or e["data"]["supplier"] == bob_id for e in only_bob
    )


async def test_a_client_sees_the_store_view_of_what_it_may_see(market: Market) -> None:
    # given: a client with a markup that may see Alice's offers only
    alice_id, alice = await market.supplier("Alice")
    _, bob = await market.supplier("Bob")
    _, client = await market.client(markup_bps=1000, allowed_suppliers=[alice_id])
    await market.put(alice, "A1", book(amount=1000))
    await market.put(bob, "B1", book(amount=1000))
    await market.put(alice, "A1", book(amount=2000))
    # when
    seen = await log(market, client, "/store/v1/events")
    # then: Alice's two changes, marked up, without supplier-private fields
    assert kinds(seen) == ["offer.created", "offer.price_changed"]
    assert [e["data"]["price"]["amount"] for e in seen] == [1100, 2200]
    assert all("sku" not in e["data"] and "status" not in e["data"] for e in seen)
    assert all(e["data"]["supplier"] == alice_id for e in seen)


async def test_sandbox_offers_reach_clients_only_once_their_supplier_is_approved(
    market: Market,
) -> None:
    # given: a pending supplier's offer (visible to itself, not to clients)
    supplier_id, supplier = await market.supplier("Pending", approve=False)
    _, client = await market.client()
    await market.put(supplier, "P1", book())
    assert await log(market, client, "/store/v1/events") == []
    # when
    approved = await market.admin("POST", f"/admin/v1/suppliers/{supplier_id}/approve")
    assert approved.status_code == 200
    # then: new to the client; listed for the supplier
    seen = await log(market, client, "/store/v1/events")
    assert kinds(seen) == ["offer.created"]
    own = await log(market, supplier, "/supply/v1/events", types="offer.created,offer.listed")
    assert kinds(own) == ["offer.created", "offer.listed"]
    # and a suspension takes it away again
    suspended = await market.admin("POST", f"/admin/v1/suppliers/{supplier_id}/suspend")
    assert suspended.status_code == 200, suspended.text
    seen = await log(market, client, "/store/v1/events")
    assert kinds(seen) == ["offer.created", "offer.removed"]
    assert set(seen[-1]["data"]) == {"id", "version"}


async def test_types_filter_and_bad_requests(market: Market) -> None:
    # given
    _, supplier = await market.supplier("Alice")
    await market.put(supplier, "A1", book())
    # when / then
    only = await log(market, supplier, "/supply/v1/events", types="offer.created")
    assert kinds(only) == ["offer.created"]
    unknown = await market.api.get(
        "/supply/v1/events", params={"types": "offer.exploded"}, headers=market.auth(supplier)
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["code"] == "unknown_event_type"
    negative = await market.api.get(
        "/supply/v1/events", params={"after": -1}, headers=market.auth(supplier)
    )
    assert negative.status_code == 422
    wrong_side = await market.api.get("/store/v1/events", headers=market.auth(supplier))
    assert wrong_side.status_code == 403


async def test_metrics_show_latency_per_client(market: Market) -> None:
    # given
    client_id, client = await market.client("Web")
    await market.store(client, "/store/v1/offers")
    # when
    response = await market.api.get("/metrics")
    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert any(
        line.startswith("marketplane_http_request_seconds_count")
        and f'client="{client_id}"' in line
        and 'route="/store/v1/offers"' in line
        for line in lines
    )
    assert any(
        line.startswith('marketplane_webhook_deliveries{status="pending"}') for line in lines
    )
