"""What a sale posts, read through the admin and supply APIs: capture, acceptance with
commission, markup and the client's share, a proportional refund; the books balance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from test_orders_api import line, offer, place, post, shop

from conftest import Market


def held(accounts: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    return {(a["purpose"], a["owner"]): a["balance"]["amount"] for a in accounts}


async def test_a_sale_and_its_refund_post_balanced_exact_entries(market: Market) -> None:
    # given: 10% commission for everyone, the client keeps 20% of it and marks up 10%
    rule = await market.admin("POST", "/admin/v1/commission-rules", json={"rate_bps": 1000})
    assert rule.status_code == 201, rule.text
    s = await shop(market, markup_bps=1000)
    shared = await market.admin(
        "POST", "/admin/v1/revenue-shares", json={"client": s["client_id"], "share_bps": 2000}
    )
    assert shared.status_code == 201, shared.text
    # when: two books sold at 1100 (the supplier's 1000), accepted, then half refunded
    order = (await place(market, s["client"], line(s["a1"], 2, 1100))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    part = order["supplier_orders"][0]["id"]
    await post(market, s["alice"], f"/supply/v1/orders/{part}/accept")
    refund = await post(
        market, s["client"], f"/store/v1/orders/{order['id']}/refunds",
        {"supplier_order": part, "amount": {"amount": 1100, "currency": "EUR"}, "reason": "late"},
    )  # fmt: skip
    assert refund.status_code == 201, refund.text
    # then
    accounts = await market.admin("GET", "/admin/v1/ledger/accounts")
    assert accounts.status_code == 200, accounts.text
    books = held(accounts.json())
    fee = (2200 * 140 + 5000) // 10_000 + 25  # the test provider's 1.4% + 0.25
    assert books == {
        ("cash", "platform"): 2200 - fee - 1100,
        ("payment_fees", "platform"): fee,
        ("customer_funds", "platform"): 0,
        ("supplier_pending", s["alice_id"]): 1800 - 900,  # held until after fulfilment
        ("commission", "platform"): 200 - 100,
        ("markup", "platform"): 200 - 100,
        ("distribution", "platform"): 40 - 20,
        ("client_payable", s["client_id"]): 40 - 20,
    }
    raw = {
        a["purpose"]: a["balance"]["amount"] * (1 if a["type"] in ("asset", "expense") else -1)
        for a in accounts.json()
    }
    assert sum(raw.values()) == 0
    mine = await market.api.get("/supply/v1/balance", headers=market.auth(s["alice"]))
    assert held(mine.json()) == {("supplier_pending", s["alice_id"]): 900}
    kinds = await market.admin("GET", "/admin/v1/ledger/transactions", params={"limit": 2})
    page = kinds.json()
    assert [t["kind"] for t in page["data"]] == ["refund_of_sale", "sale_accepted"]
    assert page["has_more"]
    rest = await market.admin(
        "GET", "/admin/v1/ledger/transactions", params={"cursor": page["next_cursor"]}
    )
    assert [t["kind"] for t in rest.json()["data"]] == ["payment_captured"]
    for transaction in page["data"] + rest.json()["data"]:
        assert sum(p["amount"]["amount"] for p in transaction["postings"]) == 0


async def test_refunds_of_a_whole_sale_reverse_exactly_what_it_posted(market: Market) -> None:
    # given: amounts that do not divide evenly
    await market.admin("POST", "/admin/v1/commission-rules", json={"rate_bps": 1234})
    s = await shop(market, markup_bps=777)
    await market.admin(
        "POST", "/admin/v1/revenue-shares", json={"client": s["client_id"], "share_bps": 3333}
    )
    price = await market.api.get(f"/store/v1/offers/{s['a1']}", headers=market.auth(s["client"]))
    unit = price.json()["price"]["amount"]
    order = (await place(market, s["client"], line(s["a1"], 3, unit))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    part = order["supplier_orders"][0]["id"]
    await post(market, s["alice"], f"/supply/v1/orders/{part}/accept")
    # when: refunded in three uneven pieces that add up to the whole
    total = 3 * unit
    for piece in (1, total // 3, total - 1 - total // 3):
        made = await post(
            market, s["client"], f"/store/v1/orders/{order['id']}/refunds",
            {"supplier_order": part, "amount": {"amount": piece, "currency": "EUR"},
             "reason": "piece"},
        )  # fmt: skip
        assert made.status_code == 201, made.text
    # then: nothing of the sale is left anywhere but the provider's fee
    books = held((await market.admin("GET", "/admin/v1/ledger/accounts")).json())
    fee = books[("payment_fees", "platform")]
    assert books[("cash", "platform")] == -fee
    for purpose, owner in [
        ("supplier_pending", s["alice_id"]), ("commission", "platform"), ("markup", "platform"),
        ("distribution", "platform"), ("client_payable", s["client_id"]),
        ("customer_funds", "platform"),
    ]:  # fmt: skip
        assert books[(purpose, owner)] == 0, purpose
    assert (await offer(market, s["alice"], "A1"))["sold"] == 3


async def test_the_books_as_they_stood_at_a_past_time(market: Market) -> None:
    # given: a sale paid, and the time before it
    s = await shop(market)
    start = datetime.now(UTC).isoformat()
    order = (await place(market, s["client"], line(s["a1"], 1, 1000))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    # when
    then = await market.admin("GET", "/admin/v1/ledger/accounts", params={"at": start})
    now = await market.admin("GET", "/admin/v1/ledger/accounts")
    bad = await market.admin(
        "GET", "/admin/v1/ledger/accounts", params={"at": "2026-13-01T00:00:00Z"}
    )
    # then
    assert then.status_code == 200, then.text
    assert {a["balance"]["amount"] for a in then.json()} <= {0}
    assert held(now.json())[("customer_funds", "platform")] == 1000
    assert bad.status_code == 422
