"""Payouts and statements through the API: a sale held until the hold after fulfilment passes,
paid out on demand or on schedule, a failed payout back in the balance, a provider's late
answer, a refund after a payout owed by the supplier and settled from its next payout, and
statements that reconcile to the ledger line by line."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from test_money_api import held
from test_orders_api import line, place, post, shop

from conftest import Market
from marketplane.bootstrap import Platform
from marketplane.kernel.clock import utcnow
from marketplane.money import jobs as money_jobs
from marketplane.money import payout_store
from marketplane.money.payout_provider import PayoutOutcome, TestPayoutProvider
from marketplane.orders import jobs as order_jobs


async def sold(
    market: Market, platform: Platform, s: dict[str, Any], quantity: int
) -> tuple[str, str]:
    """Alice sells `quantity` books at 1000, fulfils them, and the hold passes: her share is
    available. Returns the order's id and her supplier order's."""
    order = (await place(market, s["client"], line(s["a1"], quantity, 1000))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    part = order["supplier_orders"][0]["id"]
    await post(market, s["alice"], f"/supply/v1/orders/{part}/accept")
    await post(market, s["alice"], f"/supply/v1/orders/{part}/fulfil")
    assert await order_jobs.release_funds(platform.uow, hold_seconds=0) == 1
    return str(order["id"]), str(part)


async def settings(market: Market, key: str, destination: str, **more: Any) -> None:
    made = await market.api.put(
        "/supply/v1/payout-settings",
        json={"destination": destination, "minimum": 100, **more},
        headers=market.auth(key),
    )
    assert made.status_code == 200, made.text


async def position(market: Market, key: str) -> dict[str, int]:
    found = await market.api.get("/supply/v1/payouts/position", headers=market.auth(key))
    assert found.status_code == 200, found.text
    return {k: v for k, v in found.json()[0].items() if k != "currency"}


async def test_a_sale_is_held_until_the_hold_after_fulfilment_then_paid_out(
    market: Market, platform: Platform
) -> None:
    # given: an accepted sale, not yet fulfilled
    s = await shop(market)
    order = (await place(market, s["client"], line(s["a1"], 2, 1000))).json()
    await post(market, s["client"], f"/store/v1/orders/{order['id']}/pay")
    part = order["supplier_orders"][0]["id"]
    await post(market, s["alice"], f"/supply/v1/orders/{part}/accept")
    await settings(market, s["alice"], "acct_test_ok")
    # then: held, nothing to pay out, and no release before fulfilment
    assert await position(market, s["alice"]) == {
        "pending": 2000, "available": 0, "owed": 0, "in_transit": 0,
    }  # fmt: skip
    early = await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    assert early.status_code == 409 and early.json()["code"] == "below_minimum", early.text
    assert await order_jobs.release_funds(platform.uow, hold_seconds=0) == 0
    # when: fulfilled, but the hold has not passed
    fulfilled = await post(market, s["alice"], f"/supply/v1/orders/{part}/fulfil")
    assert fulfilled.json()["fulfilled_at"] is not None
    assert fulfilled.json()["released_at"] is None
    assert await order_jobs.release_funds(platform.uow, hold_seconds=3600) == 0
    # when: it has
    assert await order_jobs.release_funds(platform.uow, hold_seconds=0) == 1
    assert await order_jobs.release_funds(platform.uow, hold_seconds=0) == 0
    assert await position(market, s["alice"]) == {
        "pending": 0, "available": 2000, "owed": 0, "in_transit": 0,
    }  # fmt: skip
    paid = await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    # then
    assert paid.status_code == 201, paid.text
    payout = paid.json()
    assert payout["status"] == "paid" and payout["amount"] == {"amount": 2000, "currency": "EUR"}
    assert payout["trigger"] == "supplier" and payout["reference"] == f"tpo_{payout['id']}"
    assert await position(market, s["alice"]) == {
        "pending": 0, "available": 0, "owed": 0, "in_transit": 0,
    }  # fmt: skip
    books = held((await market.admin("GET", "/admin/v1/ledger/accounts")).json())
    fee = books[("payment_fees", "platform")]
    assert books[("cash", "platform")] == 2000 - fee - 2000
    assert books[("payouts_in_transit", "platform")] == 0
    again = await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    assert again.status_code == 409 and again.json()["code"] == "below_minimum"
    listed = await market.api.get("/supply/v1/payouts", headers=market.auth(s["alice"]))
    assert [p["id"] for p in listed.json()["data"]] == [payout["id"]]
    other = await market.api.get(
        f"/supply/v1/payouts/{payout['id']}", headers=market.auth(s["bob"])
    )
    assert other.status_code == 404
    events = await market.api.get(
        "/supply/v1/events", params={"types": "payout.pending,payout.paid"},
        headers=market.auth(s["alice"]),
    )  # fmt: skip
    assert [e["type"] for e in events.json()["data"]] == ["payout.pending", "payout.paid"]


async def test_payouts_need_settings_and_a_known_destination(market: Market) -> None:
    s = await shop(market)
    missing = await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    assert missing.status_code == 409 and missing.json()["code"] == "payout_settings_missing"
    unknown = await market.api.put(
        "/supply/v1/payout-settings", json={"destination": "DE89 3704"},
        headers=market.auth(s["alice"]),
    )  # fmt: skip
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["code"] == "unknown_destination"
    read = await market.api.get("/supply/v1/payout-settings", headers=market.auth(s["alice"]))
    assert read.status_code == 404


async def test_a_failed_payout_returns_the_money_and_the_next_one_pays_it(
    market: Market, platform: Platform
) -> None:
    # given
    s = await shop(market)
    await sold(market, platform, s, 3)
    await settings(market, s["alice"], "acct_test_fails")
    # when
    failed = await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    # then
    assert failed.status_code == 201, failed.text
    assert failed.json()["status"] == "failed"
    assert failed.json()["failure_code"] == "account_closed"
    assert (await position(market, s["alice"]))["available"] == 3000
    # when: a working destination, and an operator pays out
    await settings(market, s["alice"], "acct_test_ok")
    paid = await market.admin(
        "POST", f"/admin/v1/suppliers/{s['alice_id']}/payouts", json={"currency": "EUR"}
    )
    assert paid.status_code == 201, paid.text
    assert (paid.json()["status"], paid.json()["amount"]["amount"]) == ("paid", 3000)
    assert paid.json()["trigger"] == "operator"
    books = held((await market.admin("GET", "/admin/v1/ledger/accounts")).json())
    assert books[("payouts_in_transit", "platform")] == 0
    assert books[("supplier_payable", s["alice_id"])] == 0
    listed = await market.admin("GET", "/admin/v1/payouts", params={"supplier": s["alice_id"]})
    assert [p["status"] for p in listed.json()["data"]] == ["paid", "failed"]


async def test_a_pending_payout_settles_by_signed_callback_once(
    market: Market, platform: Platform
) -> None:
    # given: a payout the provider accepted but has not paid
    s = await shop(market)
    await sold(market, platform, s, 1)
    await settings(market, s["alice"], "acct_test_pending")
    made = await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    payout = made.json()
    assert payout["status"] == "in_transit"
    assert await position(market, s["alice"]) == {
        "pending": 0, "available": 0, "owed": 0, "in_transit": 1000,
    }  # fmt: skip
    provider = platform.payouts
    assert isinstance(provider, TestPayoutProvider)
    # when: a forged callback, then the real one three times
    headers, body = provider.make_callback(
        event_id="evt_1", payout_id=payout["id"], outcome=PayoutOutcome.FAILED,
        failure_code="account_closed",
    )  # fmt: skip
    forged = await market.api.post(
        "/hooks/payouts/test", content=body, headers={**headers, "test-signature": "0" * 64}
    )
    answers = [
        await market.api.post("/hooks/payouts/test", content=body, headers=headers)
        for _ in range(3)
    ]
    # then: applied once; the money is back
    assert forged.status_code == 401
    assert [a.json()["applied"] for a in answers] == [True, False, False]
    found = await market.api.get(
        f"/supply/v1/payouts/{payout['id']}", headers=market.auth(s["alice"])
    )
    assert found.json()["status"] == "failed"
    assert (await position(market, s["alice"]))["available"] == 1000
    late = provider.make_callback(
        event_id="evt_2", payout_id=payout["id"], outcome=PayoutOutcome.PAID
    )
    paid_late = await market.api.post("/hooks/payouts/test", content=late[1], headers=late[0])
    assert paid_late.json()["applied"] is True  # seen, but a failed payout stays failed
    assert (await position(market, s["alice"]))["available"] == 1000


async def test_a_refund_after_a_payout_is_owed_and_settled_from_the_next_payout(
    market: Market, platform: Platform
) -> None:
    # given: a sale of 3 paid out, then one refunded
    s = await shop(market)
    order, part = await sold(market, platform, s, 3)
    await settings(market, s["alice"], "acct_test_ok")
    await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    refund = await post(
        market, s["client"], f"/store/v1/orders/{order}/refunds",
        {"supplier_order": part, "amount": {"amount": 1000, "currency": "EUR"},
         "reason": "damaged"},
    )  # fmt: skip
    assert refund.status_code == 201, refund.text
    # then: nothing left to take it from: the supplier owes it
    assert await position(market, s["alice"]) == {
        "pending": 0, "available": 0, "owed": 1000, "in_transit": 0,
    }  # fmt: skip
    # when: another sale of 2, released
    await sold(market, platform, s, 2)
    paid = await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    # then: what it owed is settled first
    assert (paid.json()["amount"]["amount"], paid.json()["netted"]["amount"]) == (1000, 1000)
    assert await position(market, s["alice"]) == {
        "pending": 0, "available": 0, "owed": 0, "in_transit": 0,
    }  # fmt: skip


async def test_scheduled_payouts_run_once_per_period(market: Market, platform: Platform) -> None:
    # given: a daily schedule whose run is due, and money available
    s = await shop(market)
    await sold(market, platform, s, 2)
    await settings(market, s["alice"], "acct_test_ok", schedule="daily")
    async with platform.uow() as uow:
        conn = await uow.connection()
        found = await payout_store.settings_of(conn, s["alice_id"])
        assert found is not None and found.next_run_at is not None
        await conn.execute(
            payout_store.payout_settings.update().values(next_run_at=utcnow() - timedelta(hours=1))
        )
        await uow.commit()
    # when: the worker sweeps twice
    first = await money_jobs.sweep(platform.uow, platform.payouts)
    second = await money_jobs.sweep(platform.uow, platform.payouts)
    # then
    assert (first, second) == (1, 0)
    listed = await market.api.get("/supply/v1/payouts", headers=market.auth(s["alice"]))
    [payout] = listed.json()["data"]
    assert (payout["trigger"], payout["status"], payout["amount"]["amount"]) == (
        "schedule", "paid", 2000,
    )  # fmt: skip
    ahead = await market.api.get("/supply/v1/payout-settings", headers=market.auth(s["alice"]))
    assert ahead.json()["next_run_at"] > utcnow().isoformat()


async def test_a_statement_reconciles_to_the_ledger_line_by_line(
    market: Market, platform: Platform
) -> None:
    # given: a commission, two sales, a payout, a refund after it, and a fee
    await market.admin("POST", "/admin/v1/commission-rules", json={"rate_bps": 1000})
    s = await shop(market)
    first, part = await sold(market, platform, s, 2)
    middle = utcnow()
    await settings(market, s["alice"], "acct_test_ok")
    await post(market, s["alice"], "/supply/v1/payouts", {"currency": "EUR"})
    await post(
        market, s["client"], f"/store/v1/orders/{first}/refunds",
        {"supplier_order": part, "amount": {"amount": 500, "currency": "EUR"},
         "reason": "partly damaged"},
    )  # fmt: skip
    await sold(market, platform, s, 1)
    # when
    whole = await market.api.get(
        "/supply/v1/statements", params={"currency": "EUR"}, headers=market.auth(s["alice"])
    )
    later = await market.api.get(
        "/supply/v1/statements",
        params={"currency": "EUR", "since": middle.isoformat()},
        headers=market.auth(s["alice"]),
    )
    as_csv = await market.admin(
        "GET", f"/admin/v1/suppliers/{s['alice_id']}/statement",
        params={"currency": "EUR", "format": "csv"},
    )  # fmt: skip
    # then: opening + lines = closing, each line a posting of a ledger transaction
    assert whole.status_code == 200, whole.text
    statement = whole.json()
    assert statement["opening"]["net"] == 0
    assert (
        statement["opening"]["net"] + sum(li["amount"] for li in statement["lines"])
        == (statement["closing"]["net"])
    )
    assert [li["kind"] for li in statement["lines"]] == [
        "sale_accepted", "sale_released", "sale_released", "payout_opened",
        "refund_of_sale", "sale_accepted", "sale_released", "sale_released",
    ]  # fmt: skip
    # 2 books at 1000 less 10%: 1800; paid out; 500 refunded: 450 owed; 900 more, netted later
    assert statement["closing"] == {"pending": 0, "available": 900, "owed": -450, "net": 450}
    ledger = await market.admin(
        "GET", "/admin/v1/ledger/transactions", params={"owner": s["alice_id"], "limit": 100}
    )
    postings = {
        (t["id"], p["purpose"]): -p["amount"]["amount"]
        for t in ledger.json()["data"]
        for p in t["postings"]
        if p["owner"] == s["alice_id"]
    }
    accounts = {"pending": "supplier_pending", "available": "supplier_payable",
                "owed": "supplier_receivable"}  # fmt: skip
    assert {(li["transaction"], accounts[li["account"]]): li["amount"]
            for li in statement["lines"]} == postings  # fmt: skip
    part = later.json()
    assert (
        part["opening"]["net"] + sum(li["amount"] for li in part["lines"])
        == (part["closing"]["net"])
    )
    assert part["opening"]["net"] == 1800
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert rows[0][:3] == ["posted_at", "transaction", "kind"]
    assert [r[1] for r in rows[2:-1]] == [li["transaction"] for li in statement["lines"]]
    assert [int(r[5]) for r in rows[2:-1]] == [li["amount"] for li in statement["lines"]]
    assert int(rows[-1][7]) == statement["closing"]["net"]
