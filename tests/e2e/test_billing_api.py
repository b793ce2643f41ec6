"""What the platform bills suppliers, through the API: subscription plans billed a month in
advance (at once, then by the worker), sponsored placement first in store search and flagged,
clicks on it charged per click, orders that followed one charged per order."""

from __future__ import annotations

from datetime import timedelta

from test_money_api import held
from test_orders_api import line, place, post, shop

from conftest import Market, book
from marketplane.bootstrap import Platform
from marketplane.kernel.clock import utcnow
from marketplane.money import billing_store
from marketplane.money import jobs as money_jobs
from marketplane.money.model import add_months


async def test_a_subscription_bills_each_month_in_advance_once(
    market: Market, platform: Platform
) -> None:
    # given: a plan, and a supplier subscribed from two months and a day ago
    s = await shop(market)
    plan = await market.admin(
        "POST",
        "/admin/v1/plans",
        json={"name": "Pro", "price": {"amount": 2900, "currency": "EUR"}},
    )
    assert plan.status_code == 201, plan.text
    start = utcnow() - timedelta(days=1)
    start = add_months(start, -2)
    # when
    made = await market.admin(
        "POST", "/admin/v1/subscriptions",
        json={"supplier": s["alice_id"], "plan": plan.json()["id"], "start": start.isoformat()},
    )  # fmt: skip
    # then: the three months begun are billed at once, and owed (nothing is payable yet)
    assert made.status_code == 201, made.text
    subscription = made.json()
    assert subscription["billed_until"] > utcnow().isoformat()
    books = held((await market.admin("GET", "/admin/v1/ledger/accounts")).json())
    assert books[("subscriptions", "platform")] == 3 * 2900
    assert books[("supplier_receivable", s["alice_id"])] == 3 * 2900
    twice = await market.admin(
        "POST", "/admin/v1/subscriptions",
        json={"supplier": s["alice_id"], "plan": plan.json()["id"]},
    )  # fmt: skip
    assert twice.status_code == 409 and twice.json()["code"] == "subscription_active"
    assert await money_jobs.sweep(platform.uow, platform.payouts) == 0
    # when: a month passes (its billing date is moved back) and the worker runs twice
    async with platform.uow() as uow:
        conn = await uow.connection()
        await conn.execute(
            billing_store.subscriptions.update().values(billed_until=utcnow() - timedelta(hours=1))
        )
        await uow.commit()
    assert await money_jobs.sweep(platform.uow, platform.payouts) == 1
    assert await money_jobs.sweep(platform.uow, platform.payouts) == 0
    books = held((await market.admin("GET", "/admin/v1/ledger/accounts")).json())
    assert books[("subscriptions", "platform")] == 4 * 2900
    # when: it ends, and then another month would begin
    ended = await market.admin(
        "POST", f"/admin/v1/subscriptions/{subscription['id']}/end",
        json={"at": (utcnow() - timedelta(hours=2)).isoformat()},
    )  # fmt: skip
    assert ended.status_code == 200, ended.text
    async with platform.uow() as uow:
        conn = await uow.connection()
        await conn.execute(
            billing_store.subscriptions.update().values(billed_until=utcnow() - timedelta(hours=1))
        )
        await uow.commit()
    # then: it is billed no more
    assert await money_jobs.sweep(platform.uow, platform.payouts) == 0
    mine = await market.api.get("/supply/v1/subscriptions", headers=market.auth(s["alice"]))
    assert [x["ended_at"] is not None for x in mine.json()] == [True]
    unknown = await market.admin(
        "POST", "/admin/v1/subscriptions", json={"supplier": s["bob_id"], "plan": "plan_nope"}
    )
    assert unknown.status_code == 422


async def test_sponsored_offers_come_first_flagged_and_their_clicks_are_charged(
    market: Market,
) -> None:
    # given: Bob bids per click on books
    s = await shop(market)
    bid = await post(
        market, s["bob"], "/supply/v1/bids",
        {"category": "books", "basis": "click", "price": {"amount": 50, "currency": "EUR"}},
    )  # fmt: skip
    assert bid.status_code == 201, bid.text
    read = market.auth(s["client"])
    # when
    page = await market.api.get("/store/v1/offers", params={"category": "books"}, headers=read)
    small = await market.api.get(
        "/store/v1/offers", params={"category": "books", "limit": 1}, headers=read
    )
    stays = await market.api.get("/store/v1/offers", params={"category": "stays"}, headers=read)
    # then: Bob's book first, flagged, and not again below
    found = page.json()["data"]
    assert [(o["id"], o.get("sponsored")) for o in found] == [(s["b1"], True), (s["a1"], None)]
    assert [o.get("sponsored") for o in small.json()["data"]] == [None]  # no room on the page
    assert stays.json()["data"] == []
    # when: a click on the sponsored placement, one on an organic result, one on nothing
    clicked = await post(market, s["client"], "/store/v1/clicks",
                         {"offer": s["b1"], "placement": "sponsored"})  # fmt: skip
    organic = await post(market, s["client"], "/store/v1/clicks", {"offer": s["a1"]})
    missing = await post(market, s["client"], "/store/v1/clicks", {"offer": "off_nope"})
    # then: the sponsored click is charged to Bob; the store is told nothing of it
    assert clicked.status_code == 201, clicked.text
    assert set(clicked.json()) == {"id", "offer", "placement", "at"}
    assert organic.status_code == 201 and missing.status_code == 404
    books = held((await market.admin("GET", "/admin/v1/ledger/accounts")).json())
    assert books[("advertising", "platform")] == 50
    assert books[("supplier_receivable", s["bob_id"])] == 50
    # when: Bob withdraws his bid
    withdrawn = await market.api.delete(
        f"/supply/v1/bids/{bid.json()['id']}", headers=market.auth(s["bob"])
    )
    assert withdrawn.status_code == 204
    after = await market.api.get("/store/v1/offers", params={"category": "books"}, headers=read)
    assert [o.get("sponsored") for o in after.json()["data"]] == [None, None]
    again = await post(market, s["client"], "/store/v1/clicks",
                       {"offer": s["b1"], "placement": "sponsored"})  # fmt: skip
    assert again.status_code == 201
    books = held((await market.admin("GET", "/admin/v1/ledger/accounts")).json())
    assert books[("advertising", "platform")] == 50


async def test_an_order_after_a_sponsored_click_is_charged_the_order_bid(market: Market) -> None:
    # given: Bob bids per order; the shop's customer clicks his sponsored book, another shop's
    # does not
    s = await shop(market)
    await post(
        market, s["bob"], "/supply/v1/bids",
        {"category": "books", "basis": "order", "price": {"amount": 300, "currency": "EUR"}},
    )  # fmt: skip
    await post(
        market, s["client"], "/store/v1/clicks", {"offer": s["b1"], "placement": "sponsored"}
    )
    _, other = await market.client("Other shop")
    # when: both order it, pay, and Bob accepts both
    parts = []
    for key in (s["client"], other):
        order = (await place(market, key, line(s["b1"], 1, 2000))).json()
        await post(market, key, f"/store/v1/orders/{order['id']}/pay")
        parts.append(order["supplier_orders"][0]["id"])
    for part in parts:
        accepted = await post(market, s["bob"], f"/supply/v1/orders/{part}/accept")
        assert accepted.status_code == 200, accepted.text
    # then: one order bid charged, and no click charged (no click bid)
    books = held((await market.admin("GET", "/admin/v1/ledger/accounts")).json())
    assert books[("advertising", "platform")] == 300
    transactions = await market.admin(
        "GET", "/admin/v1/ledger/transactions", params={"owner": s["bob_id"]}
    )
    kinds = [t["kind"] for t in transactions.json()["data"]]
    assert kinds.count("advertising_order") == 1 and "advertising_click" not in kinds
    bids = await market.admin("GET", "/admin/v1/bids")
    assert [(b["basis"], b["price"]["amount"]) for b in bids.json()] == [("order", 300)]


async def test_the_highest_bids_come_first_each_placing_its_own_currency(market: Market) -> None:
    # given: Alice bids 10 a click, Bob 50; Carol bids a great deal, but in USD on EUR offers
    s = await shop(market)
    _, carol = await market.supplier("Carol")
    c = await market.put(carol, "C1", book(amount=1500, isbn="9780141439518"))
    assert c.status_code == 201, c.text
    for key, amount, currency in ((s["alice"], 10, "EUR"), (s["bob"], 50, "EUR"),
                                  (carol, 10**6, "USD")):  # fmt: skip
        made = await post(
            market, key, "/supply/v1/bids",
            {"category": "books", "basis": "click",
             "price": {"amount": amount, "currency": currency}},
        )  # fmt: skip
        assert made.status_code == 201, made.text
    # when
    page = await market.api.get(
        "/store/v1/offers", params={"category": "books"}, headers=market.auth(s["client"])
    )
    # then: Bob's, then Alice's; Carol's book only among the others
    shown = [(o["id"], o.get("sponsored")) for o in page.json()["data"]]
    assert shown == [(s["b1"], True), (s["a1"], True), (c.json()["id"], None)]


async def test_times_without_an_offset_and_odd_signatures_are_refused_cleanly(
    market: Market,
) -> None:
    s = await shop(market)
    plan = await market.admin(
        "POST",
        "/admin/v1/plans",
        json={"name": "Basic", "price": {"amount": 900, "currency": "EUR"}},
    )
    naive = await market.admin(
        "POST", "/admin/v1/subscriptions",
        json={"supplier": s["alice_id"], "plan": plan.json()["id"], "start": "2026-11-01T00:00:00"},
    )  # fmt: skip
    assert naive.status_code == 422, naive.text
    odd = await market.api.post(
        "/hooks/payouts/test",
        content=b"{}",
        headers={"test-signature": ("\u00e9" * 64).encode("latin-1")},
    )
    assert odd.status_code == 401, odd.text
