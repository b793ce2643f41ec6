"""Orders through the API, on each side: place, pay, accept, fulfil, complete, refund; the
error families (stock, price, state, visibility, payment) and the events each side is told."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import httpx

from conftest import Market, book
from marketplane.bootstrap import Platform
from marketplane.kernel.clock import utcnow
from marketplane.orders import jobs
from marketplane.orders import store as order_tables
from marketplane.orders.payments import Outcome, TestProvider

_keys = itertools.count()


def idem() -> dict[str, str]:
    return {"Idempotency-Key": f"order-test-{next(_keys)}"}


async def shop(market: Market, *, quantity: int = 5, markup_bps: int = 0) -> dict[str, Any]:
    """Two suppliers with a book each, and a client."""
    alice_id, alice = await market.supplier("Alice")
    bob_id, bob = await market.supplier("Bob")
    a = await market.put(alice, "A1", book(amount=1000, quantity=quantity))
    b = await market.put(bob, "B1", book(amount=2000, quantity=quantity, isbn="9780140449136"))
    assert a.status_code == 201 and b.status_code == 201, (a.text, b.text)
    client_id, client = await market.client("Shop", markup_bps=markup_bps)
    return {
        "alice": alice, "alice_id": alice_id, "bob": bob, "bob_id": bob_id,
        "a1": a.json()["id"], "b1": b.json()["id"], "client": client, "client_id": client_id,
    }  # fmt: skip


def line(offer: str, quantity: int, amount: int) -> dict[str, Any]:
    return {
        "offer": offer,
        "quantity": quantity,
        "unit_price": {"amount": amount, "currency": "EUR"},
    }


async def place(market: Market, key: str, *lines: dict[str, Any]) -> httpx.Response:
    return await market.api.post(
        "/store/v1/orders",
        json={"customer_ref": "cust-1", "lines": list(lines)},
        headers={**market.auth(key), **idem()},
    )


async def post(market: Market, key: str, path: str, body: Any = None) -> httpx.Response:
    return await market.api.post(path, json=body, headers={**market.auth(key), **idem()})


async def offer(market: Market, key: str, sku: str) -> dict[str, Any]:
    response = await market.api.get(f"/supply/v1/offers/{sku}", headers=market.auth(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_an_order_is_split_per_supplier_paid_accepted_fulfilled_and_completed(
    market: Market,
) -> None:
    # given
    s = await shop(market, markup_bps=1000)
    # when
    placed = await place(market, s["client"], line(s["a1"], 2, 1100), line(s["b1"], 1, 2200))
    # then
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "placed"
    assert order["total"] == {"amount": 2 * 1100 + 2200, "currency": "EUR"}
    parts = {p["supplier"]: p for p in order["supplier_orders"]}
    assert set(parts) == {s["alice_id"], s["bob_id"]}
    assert parts[s["alice_id"]]["total"]["amount"] == 2200
    a1 = await offer(market, s["alice"], "A1")
    assert (a1["quantity"], a1["reserved"], a1["sold"]) == (3, 2, 0)
    # the supplier sees nothing before payment
    listed = await market.api.get("/supply/v1/orders", headers=market.auth(s["alice"]))
    assert listed.json()["data"] == []

    paid = await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    assert paid.json()["payment"]["status"] == "captured"

    listed = await market.api.get("/supply/v1/orders", headers=market.auth(s["alice"]))
    mine = listed.json()["data"]
    assert [p["status"] for p in mine] == ["awaiting_acceptance"]
    part = mine[0]
    # the supplier sees its own price, not the client's
    assert part["lines"][0]["unit_price"]["amount"] == 1000 and part["lines"][0]["sku"] == "A1"
    accepted = await post(market, s["alice"], f"/supply/v1/orders/{part['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    a1 = await offer(market, s["alice"], "A1")
    assert (a1["quantity"], a1["reserved"], a1["sold"]) == (3, 0, 2)

    fulfilled = await post(
        market, s["alice"], f"/supply/v1/orders/{part['id']}/fulfil",
        {"tracking": {"carrier": "DHL", "number": "123"}},
    )  # fmt: skip
    assert fulfilled.status_code == 200, fulfilled.text
    assert fulfilled.json()["tracking"] == {"carrier": "DHL", "number": "123"}
    completed = await post(market, s["alice"], f"/supply/v1/orders/{part['id']}/complete")
    assert completed.json()["status"] == "completed"

    bob_part = (await market.api.get("/supply/v1/orders", headers=market.auth(s["bob"]))).json()
    rejected = await post(
        market, s["bob"], f"/supply/v1/orders/{bob_part['data'][0]['id']}/reject",
        {"reason": "out of print"},
    )  # fmt: skip
    assert rejected.status_code == 200, rejected.text
    b1 = await offer(market, s["bob"], "B1")
    assert (b1["quantity"], b1["reserved"], b1["sold"]) == (5, 0, 0)

    final = await market.api.get(
        f"/store/v1/orders/{order['id']}", headers=market.auth(s["client"])
    )
    body = final.json()
    assert body["status"] == "closed"
    assert body["refunded"]["amount"] == 2200
    assert [(r["amount"]["amount"], r["status"]) for r in body["refunds"]] == [(2200, "succeeded")]

    history = await market.admin("GET", f"/admin/v1/orders/{order['id']}")
    assert history.status_code == 200, history.text
    moves = [(h["kind"], h["to"], h["actor"].split(":")[0]) for h in history.json()["history"]]
    assert ("supplier_order", "accepted", "supplier") in moves
    assert ("order", "closed", "system") in moves


async def test_not_enough_stock_reserves_nothing(market: Market) -> None:
    # given
    s = await shop(market, quantity=3)
    # when: the second line cannot be had, and two lines for one offer are summed
    short = await place(market, s["client"], line(s["a1"], 2, 1000), line(s["b1"], 4, 2000))
    summed = await place(market, s["client"], line(s["a1"], 2, 1000), line(s["a1"], 2, 1000))
    # then
    assert short.status_code == 409 and short.json()["code"] == "insufficient_stock"
    assert summed.status_code == 409 and summed.json()["code"] == "insufficient_stock"
    a1 = await offer(market, s["alice"], "A1")
    assert (a1["quantity"], a1["reserved"]) == (3, 0)


async def test_a_changed_price_is_a_conflict_with_todays_prices(market: Market) -> None:
    # given
    s = await shop(market, markup_bps=500)
    # when
    response = await place(market, s["client"], line(s["a1"], 1, 1000))
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "price_changed"
    assert response.json()["prices"] == [
        {"offer": s["a1"], "price": {"amount": 1050, "currency": "EUR"}}
    ]
    assert (await offer(market, s["alice"], "A1"))["reserved"] == 0


async def test_orders_need_an_idempotency_key_and_a_secret_key(market: Market) -> None:
    # given
    s = await shop(market)
    _, publishable = await market.client("Browser", kind="publishable")
    body = {"customer_ref": "c", "lines": [line(s["a1"], 1, 1000)]}
    # when
    without = await market.api.post("/store/v1/orders", json=body, headers=market.auth(s["client"]))
    public = await market.api.post(
        "/store/v1/orders", json=body, headers={**market.auth(publishable), **idem()}
    )
    # then
    assert without.status_code == 400 and without.json()["code"] == "idempotency_key_required"
    assert public.status_code == 403 and public.json()["code"] == "secret_key_required"


async def test_a_replayed_order_is_placed_once(market: Market) -> None:
    # given
    s = await shop(market)
    headers = {**market.auth(s["client"]), "Idempotency-Key": "same-order"}
    body = {"customer_ref": "c", "lines": [line(s["a1"], 1, 1000)]}
    # when
    first = await market.api.post("/store/v1/orders", json=body, headers=headers)
    again = await market.api.post("/store/v1/orders", json=body, headers=headers)
    other = await market.api.post(
        "/store/v1/orders", json={**body, "customer_ref": "d"}, headers=headers
    )
    # then
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert (await offer(market, s["alice"], "A1"))["reserved"] == 1


async def test_each_side_sees_only_its_own_orders(market: Market) -> None:
    # given
    s = await shop(market)
    _, other_client = await market.client("Other")
    order = (
        await place(market, s["client"], line(s["a1"], 1, 1000), line(s["b1"], 1, 2000))
    ).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    bob_part = next(p for p in order["supplier_orders"] if p["supplier"] == s["bob_id"])
    # when
    other_reads = await market.api.get(
        f"/store/v1/orders/{order['id']}", headers=market.auth(other_client)
    )
    other_cancels = await post(market, other_client, f"/store/v1/orders/{order['id']}/cancel")
    alice_reads_bobs = await market.api.get(
        f"/supply/v1/orders/{bob_part['id']}", headers=market.auth(s["alice"])
    )
    alice_accepts_bobs = await post(
        market, s["alice"], f"/supply/v1/orders/{bob_part['id']}/accept"
    )
    other_list = await market.api.get("/store/v1/orders", headers=market.auth(other_client))
    # then
    assert other_reads.status_code == 404
    assert other_cancels.status_code == 404
    assert alice_reads_bobs.status_code == 404
    assert alice_accepts_bobs.status_code == 404
    assert other_list.json()["data"] == []


async def test_invalid_moves_are_conflicts_with_the_current_state(market: Market) -> None:
    # given: an accepted supplier order
    s = await shop(market)
    order = (await place(market, s["client"], line(s["a1"], 1, 1000))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    part = order["supplier_orders"][0]["id"]
    await post(market, s["alice"], f"/supply/v1/orders/{part}/accept")
    # when
    again = await post(market, s["alice"], f"/supply/v1/orders/{part}/accept")
    complete_early = await post(market, s["alice"], f"/supply/v1/orders/{part}/complete")
    cancel_late = await post(market, s["client"], f"/store/v1/orders/{order['id']}/cancel")
    pay_twice = await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    # then
    for response, current in [
        (again, "accepted"), (complete_early, "accepted"), (cancel_late, "accepted"),
        (pay_twice, "paid"),
    ]:  # fmt: skip
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "invalid_transition"
        assert response.json()["current_status"] == current


async def test_cancel_before_acceptance_releases_and_refunds(market: Market) -> None:
    # given
    s = await shop(market)
    order = (await place(market, s["client"], line(s["a1"], 2, 1000))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    # when
    cancelled = await post(
        market, s["client"], f"/store/v1/orders/{order['id']}/cancel", {"reason": "changed mind"}
    )
    # then
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["supplier_orders"][0]["status"] == "cancelled"
    assert [(r["amount"]["amount"], r["status"]) for r in body["refunds"]] == [(2000, "succeeded")]
    a1 = await offer(market, s["alice"], "A1")
    assert (a1["quantity"], a1["reserved"], a1["sold"]) == (5, 0, 0)


async def test_line_by_line_acceptance_and_partial_refunds(market: Market) -> None:
    # given: two lines from one supplier
    s = await shop(market)
    second = await market.put(s["alice"], "A2", book(amount=500, quantity=5, isbn="9780262033848"))
    a2 = second.json()["id"]
    order = (await place(market, s["client"], line(s["a1"], 1, 1000), line(a2, 2, 500))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    part = order["supplier_orders"][0]
    refused = next(x for x in part["lines"] if x["offer"] == a2)
    # when
    accepted = await post(
        market, s["alice"], f"/supply/v1/orders/{part['id']}/accept",
        {"lines": [{"id": refused["id"], "accepted": False}]},
    )  # fmt: skip
    refund = await post(
        market, s["client"], f"/store/v1/orders/{order['id']}/refunds",
        {"supplier_order": part["id"], "amount": {"amount": 300, "currency": "EUR"},
         "reason": "damaged cover"},
    )  # fmt: skip
    too_much = await post(
        market, s["client"], f"/store/v1/orders/{order['id']}/refunds",
        {"supplier_order": part["id"], "amount": {"amount": 701, "currency": "EUR"},
         "reason": "more"},
    )  # fmt: skip
    # then
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted_total"]["amount"] == 1000
    assert {x["offer"]: x["status"] for x in accepted.json()["lines"]} == {
        s["a1"]: "sold",
        a2: "released",
    }
    assert (await offer(market, s["alice"], "A2"))["quantity"] == 5
    assert refund.status_code == 201, refund.text
    assert refund.json()["status"] == "succeeded"
    assert too_much.status_code == 409 and too_much.json()["code"] == "refund_exceeds_paid"
    final = (
        await market.api.get(f"/store/v1/orders/{order['id']}", headers=market.auth(s["client"]))
    ).json()
    assert final["refunded"]["amount"] == 1000 + 300


async def test_a_declined_payment_leaves_the_order_to_pay_again(market: Market) -> None:
    # given
    s = await shop(market)
    order = (await place(market, s["client"], line(s["a1"], 1, 1000))).json()
    # when
    declined = await post(
        market, s["client"], f"/store/v1/orders/{order['id']}/pay",
        {"payment_token": "tok_test_declined"},
    )  # fmt: skip
    paid = await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    # then
    assert declined.status_code == 402
    assert declined.json()["code"] == "payment_failed"
    assert declined.json()["failure_code"] == "card_declined"
    assert paid.status_code == 200 and paid.json()["status"] == "paid"


async def test_order_events_reach_the_client_and_the_supplier_only(market: Market) -> None:
    # given
    s = await shop(market)
    _, other = await market.client("Other")
    order = (await place(market, s["client"], line(s["a1"], 1, 1000))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    part = order["supplier_orders"][0]["id"]
    await post(market, s["alice"], f"/supply/v1/orders/{part}/accept")
    # when
    mine = await market.api.get(
        "/store/v1/events", params={"types": "order.placed,order.paid,order.accepted"},
        headers=market.auth(s["client"]),
    )  # fmt: skip
    others = await market.api.get(
        "/store/v1/events", params={"types": "order.placed"}, headers=market.auth(other)
    )
    alices = await market.api.get(
        "/supply/v1/events", params={"types": "supplier_order.created,supplier_order.accepted"},
        headers=market.auth(s["alice"]),
    )  # fmt: skip
    bobs = await market.api.get(
        "/supply/v1/events", params={"types": "supplier_order.created"},
        headers=market.auth(s["bob"]),
    )  # fmt: skip
    # then
    assert [e["type"] for e in mine.json()["data"]] == [
        "order.placed",
        "order.paid",
        "order.accepted",
    ]
    assert mine.json()["data"][-1]["data"]["supplier_orders"][0]["status"] == "accepted"
    versions = [e["object"]["version"] for e in mine.json()["data"]]
    assert versions == sorted(versions) and len(set(versions)) == 3
    assert others.json()["data"] == []
    assert [e["type"] for e in alices.json()["data"]] == [
        "supplier_order.created", "supplier_order.accepted"
    ]  # fmt: skip
    assert bobs.json()["data"] == []


async def test_a_pending_payment_settles_by_the_providers_callback_once(
    market: Market, platform: Platform
) -> None:
    # given: the provider answers later
    s = await shop(market)
    order = (await place(market, s["client"], line(s["a1"], 1, 1000))).json()
    pending = await post(
        market, s["client"], f"/store/v1/orders/{order['id']}/pay",
        {"payment_token": "tok_test_pending"},
    )  # fmt: skip
    assert pending.status_code == 202, pending.text
    assert (pending.json()["status"], pending.json()["payment"]["status"]) == ("placed", "pending")
    provider = TestProvider(platform.settings.payment_test_secret)
    headers, body = provider.make_callback(
        event_id="evt_1", payment_id=pending.json()["payment"]["id"], outcome=Outcome.SUCCEEDED
    )
    # when
    first = await market.api.post("/hooks/payments/test", content=body, headers=headers)
    again = await market.api.post("/hooks/payments/test", content=body, headers=headers)
    forged = await market.api.post(
        "/hooks/payments/test", content=body, headers={**headers, "test-signature": "0" * 64}
    )
    # then
    assert first.status_code == 200 and first.json() == {"applied": True}
    assert again.status_code == 200 and again.json() == {"applied": False}
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    final = await market.api.get(
        f"/store/v1/orders/{order['id']}", headers=market.auth(s["client"])
    )
    assert final.json()["status"] == "paid"
    assert final.json()["payment"]["status"] == "captured"


async def test_the_jobs_expire_unpaid_orders_and_reject_late_ones(
    market: Market, platform: Platform
) -> None:
    # given: one order never paid, one paid but never accepted, both past their time
    s = await shop(market)
    unpaid = (await place(market, s["client"], line(s["a1"], 1, 1000))).json()
    late = (await place(market, s["client"], line(s["a1"], 2, 1000))).json()
    await post(market, s["client"], f"/store/v1/orders/{late['id']}/pay")
    past = utcnow() - timedelta(seconds=1)
    async with platform.uow() as uow:
        conn = await uow.connection()
        await conn.execute(
            order_tables.orders.update()
            .where(order_tables.orders.c.id == unpaid["id"])
            .values(expires_at=past)
        )
        await conn.execute(
            order_tables.supplier_orders.update()
            .where(order_tables.supplier_orders.c.order_id == late["id"])
            .values(accept_by=past)
        )
        await uow.commit()
    # when
    swept = await jobs.sweep(platform.uow, platform.payments, hold_seconds=3600)
    # then
    assert swept == 3  # one expired, one rejected, its refund sent
    read = market.auth(s["client"])
    assert (await market.api.get(f"/store/v1/orders/{unpaid['id']}", headers=read)).json()[
        "status"
    ] == "expired"
    rejected = (await market.api.get(f"/store/v1/orders/{late['id']}", headers=read)).json()
    assert rejected["status"] == "closed"
    assert rejected["supplier_orders"][0]["status"] == "rejected"
    assert [(r["amount"]["amount"], r["status"]) for r in rejected["refunds"]] == [
        (2000, "succeeded")
    ]
    a1 = await offer(market, s["alice"], "A1")
    assert (a1["quantity"], a1["reserved"], a1["sold"]) == (5, 0, 0)
    assert await jobs.sweep(platform.uow, platform.payments, hold_seconds=3600) == 0


async def test_a_replayed_decision_answers_as_the_first_did(market: Market) -> None:
    # given: a paid order and a supplier that sends its acceptance twice with one key
    s = await shop(market)
    order = (await place(market, s["client"], line(s["a1"], 1, 1000))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    part = order["supplier_orders"][0]["id"]
    headers = {**market.auth(s["alice"]), "Idempotency-Key": "accept-once"}
    # when
    first = await market.api.post(f"/supply/v1/orders/{part}/accept", headers=headers)
    again = await market.api.post(f"/supply/v1/orders/{part}/accept", headers=headers)
    # then: the same answer, not a conflict, and the stock sold once
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    a1 = await offer(market, s["alice"], "A1")
    assert (a1["quantity"], a1["reserved"], a1["sold"]) == (4, 0, 1)


async def test_a_client_may_have_its_own_payment_hold(market: Market) -> None:
    # given: a client whose orders wait two minutes for payment, not the default fifteen
    s = await shop(market)
    created = await market.admin(
        "POST", "/admin/v1/clients", json={"name": "Quick", "order_hold_seconds": 120}
    )
    assert created.status_code == 201, created.text
    assert created.json()["order_hold_seconds"] == 120
    key = await market.admin("POST", f"/admin/v1/clients/{created.json()['id']}/keys")
    # when
    quick = (await place(market, key.json()["key"], line(s["a1"], 1, 1000))).json()
    default = (await place(market, s["client"], line(s["a1"], 1, 1000))).json()

    # then
    def hold(order: dict[str, Any]) -> float:
        return (
            datetime.fromisoformat(order["expires_at"])
            - datetime.fromisoformat(order["created_at"])
        ).total_seconds()

    assert round(hold(quick)) == 120
    assert round(hold(default)) == 15 * 60


async def test_money_taken_for_an_order_that_expired_meanwhile_goes_back(
    market: Market, platform: Platform
) -> None:
    # given: a payment the provider answers later, and the order's hold passing first
    s = await shop(market)
    order = (await place(market, s["client"], line(s["a1"], 2, 1000))).json()
    pending = await post(
        market, s["client"], f"/store/v1/orders/{order['id']}/pay",
        {"payment_token": "tok_test_pending"},
    )  # fmt: skip
    async with platform.uow() as uow:
        await (await uow.connection()).execute(
            order_tables.orders.update()
            .where(order_tables.orders.c.id == order["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await uow.commit()
    assert await jobs.expire_unpaid(platform.uow) == 1
    # when: the provider says it took the money after all
    headers, body = TestProvider(platform.settings.payment_test_secret).make_callback(
        event_id="evt_late", payment_id=pending.json()["payment"]["id"], outcome=Outcome.SUCCEEDED
    )
    answered = await market.api.post("/hooks/payments/test", content=body, headers=headers)
    # then: the order stays expired, its stock on sale, the money refunded
    assert answered.status_code == 200, answered.text
    final = (
        await market.api.get(f"/store/v1/orders/{order['id']}", headers=market.auth(s["client"]))
    ).json()
    assert final["status"] == "expired"
    assert final["payment"]["status"] == "captured"
    assert [(r["amount"]["amount"], r["status"]) for r in final["refunds"]] == [(2000, "succeeded")]
    a1 = await offer(market, s["alice"], "A1")
    assert (a1["quantity"], a1["reserved"], a1["sold"]) == (5, 0, 0)
