"""Orders under contention, on SQLite and PostgreSQL, with real concurrent transactions (many
tasks, each with its own unit of work; on PostgreSQL each on its own pooled connection, on
SQLite queued for the one writer): stock is never oversold, jobs running several at once (and
from a second engine) move each order once, and a provider's callbacks apply once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from order_shop import Shop, history_rows, make_due, open_shop, stock_of, table_rows

from marketplane.bootstrap import Platform, build
from marketplane.kernel.errors import Conflict, Unauthorized
from marketplane.orders import decisions, jobs, service, store
from marketplane.orders.model import (
    LineRequest,
    LineStatus,
    OrderStatus,
    PaymentStatus,
    RefundStatus,
    SupplierOrderStatus,
)
from marketplane.orders.payments import Outcome, TestProvider
from marketplane.orders.transitions import Actor, Detail

T = TypeVar("T")
ACCEPT_SECONDS = 3600.0
TAKEN = "tok_test_ok"  # the test provider takes the payment at once


async def outcome(call: Awaitable[T]) -> T | Exception:
    """What a call gave: its result, or what it raised (so every call of a gather finishes,
    and a database error shows in the assertion that did not expect it)."""
    try:
        return await call
    except Exception as exc:
        return exc


def unexpected(results: list[Any], *codes: str) -> list[Any]:
    """The errors among `results` that are not conflicts with one of `codes`."""
    return [
        r
        for r in results
        if isinstance(r, Exception) and not (isinstance(r, Conflict) and r.code in codes)
    ]


async def place(platform: Platform, shop: Shop, *lines: LineRequest) -> Detail:
    async with platform.uow() as uow:
        found = await service.place_order(
            uow,
            view=shop.client,
            customer_ref="cust-1",
            shipping=None,
            lines=list(lines),
            default_hold_seconds=900,
        )
        await uow.commit()
    return found


async def pay(platform: Platform, shop: Shop, order_id: str, token: str = TAKEN) -> Detail:
    return await service.pay_order(
        platform.uow,
        provider(platform),
        client_id=shop.client.client_id,
        order_id=order_id,
        token=token,
        accept_seconds=ACCEPT_SECONDS,
    )


def provider(platform: Platform) -> TestProvider:
    return TestProvider(platform.settings.payment_test_secret)


async def callback(platform: Platform, headers: dict[str, str], body: bytes) -> bool:
    return await service.handle_callback(
        platform.uow,
        provider(platform),
        headers=headers,
        body=body,
        accept_seconds=ACCEPT_SECONDS,
    )


async def held_by_lines(platform: Platform, offer_id: str, status: LineStatus) -> int:
    return sum(
        row.quantity
        for row in await table_rows(platform, store.order_lines)
        if row.offer_id == offer_id and row.status == status
    )


async def conserved(platform: Platform, offer_id: str, total: int) -> tuple[int, int, int]:
    """The offer's stock, checked against its lines: nothing made or lost."""
    quantity, reserved, sold = await stock_of(platform, offer_id)
    assert min(quantity, reserved, sold) >= 0
    assert quantity + reserved + sold == total
    assert reserved == await held_by_lines(platform, offer_id, LineStatus.RESERVED)
    assert sold == await held_by_lines(platform, offer_id, LineStatus.SOLD)
    return quantity, reserved, sold


def moves(history: list[Any]) -> Counter[tuple[str, str]]:
    """How often each object made each move."""
    return Counter((row.object_id, row.action) for row in history)


# --- stock ----------------------------------------------------------------------------------


async def test_two_hundred_orders_for_a_hundred_units_take_exactly_a_hundred(
    platform: Platform,
) -> None:
    # given
    shop = await open_shop(platform, offers={"A1": (1000, 100)})
    a1 = shop.offers["A1"]
    # when: 200 clients order one unit each, at once
    results = await asyncio.gather(
        *(outcome(place(platform, shop, shop.line("A1", 1))) for _ in range(200))
    )
    # then
    placed = [r for r in results if isinstance(r, Detail)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert unexpected(results, "insufficient_stock") == []
    assert len(placed) == 100
    assert len(refused) == 100
    for error in refused:
        assert error.extra["lines"] == [{"offer": a1, "wanted": 1, "available": 0}]
    assert await conserved(platform, a1, 100) == (0, 100, 0)
    assert len({d.order.id for d in placed}) == 100
    assert len(await table_rows(platform, store.orders)) == 100


async def test_two_lines_for_one_offer_cannot_reserve_more_than_exists(
    platform: Platform,
) -> None:
    # given
    shop = await open_shop(platform, offers={"A1": (1000, 3), "B1": (2000, 5)})
    a1 = shop.offers["A1"]
    # when: 2 + 2 of an offer with 3, next to a line that could be had
    refused = await outcome(
        place(platform, shop, shop.line("A1", 2), shop.line("B1", 1), shop.line("A1", 2))
    )
    # then: refused whole, the summed quantity named, nothing reserved anywhere
    assert isinstance(refused, Conflict)
    assert refused.code == "insufficient_stock"
    assert refused.extra["lines"] == [{"offer": a1, "wanted": 4, "available": 3}]
    assert await conserved(platform, a1, 3) == (3, 0, 0)
    assert await conserved(platform, shop.offers["B1"], 5) == (5, 0, 0)
    assert await table_rows(platform, store.orders) == []
    assert await table_rows(platform, store.order_lines) == []


async def test_concurrent_orders_with_two_lines_for_one_offer_never_oversell(
    platform: Platform,
) -> None:
    # given: 10 units; every order wants 2 + 1 of them
    shop = await open_shop(platform, offers={"A1": (1000, 10)})
    a1 = shop.offers["A1"]
    # when
    results = await asyncio.gather(
        *(outcome(place(platform, shop, shop.line("A1", 2), shop.line("A1", 1))) for _ in range(20))
    )
    # then: three orders of three fit in ten; the rest are refused and take nothing
    assert unexpected(results, "insufficient_stock") == []
    assert sum(isinstance(r, Detail) for r in results) == 3
    assert await conserved(platform, a1, 10) == (1, 9, 0)


async def test_concurrent_orders_naming_offers_in_opposite_orders_neither_deadlock_nor_oversell(
    platform: Platform,
) -> None:
    # given: two offers of two suppliers, 30 units each
    shop = await open_shop(platform, offers={"A1": (1000, 30), "B1": (2000, 30)})
    # when: 60 orders of one of each, half naming A first, half B first
    results = await asyncio.gather(
        *(
            outcome(
                place(platform, shop, shop.line("A1", 1), shop.line("B1", 1))
                if n % 2
                else place(platform, shop, shop.line("B1", 1), shop.line("A1", 1))
            )
            for n in range(60)
        )
    )
    # then: only stock ran out (no deadlock, no other error), and exactly 30 fit
    assert unexpected(results, "insufficient_stock") == []
    placed = [r for r in results if isinstance(r, Detail)]
    assert len(placed) == 30
    assert all(len(d.parts) == 2 for d in placed)
    assert await conserved(platform, shop.offers["A1"], 30) == (0, 30, 0)
    assert await conserved(platform, shop.offers["B1"], 30) == (0, 30, 0)


# --- jobs -----------------------------------------------------------------------------------


async def run_everywhere(platform: Platform, job: Any, *args: Any, times: int = 4) -> list[int]:
    """Runs a job `times` at once on the platform and, as another process would, twice on a
    second engine over the same database."""
    other = build(platform.settings)
    try:
        return list(
            await asyncio.gather(
                *(job(platform.uow, *args) for _ in range(times)),
                *(job(other.uow, *args) for _ in range(2)),
            )
        )
    finally:
        await other.close()


async def test_concurrent_expiry_jobs_expire_each_order_once_and_release_once(
    platform: Platform,
) -> None:
    # given: 12 unpaid orders of two supplier orders each, all past their hold, and one not
    shop = await open_shop(platform, offers={"A1": (1000, 40), "B1": (2000, 40)})
    due = [
        (await place(platform, shop, shop.line("A1", 1), shop.line("B1", 2))).order.id
        for _ in range(12)
    ]
    fresh = await place(platform, shop, shop.line("A1", 3))
    await make_due(platform, orders=due)
    # when
    expired = await run_everywhere(platform, jobs.expire_unpaid)
    # then: twelve expirations between all the runs, each order and part moved once
    assert sum(expired) == 12
    orders = {row.id: row.status for row in await table_rows(platform, store.orders)}
    assert orders == {**dict.fromkeys(due, "expired"), fresh.order.id: "placed"}
    parts = await table_rows(platform, store.supplier_orders)
    assert Counter(p.status for p in parts) == {"expired": 24, "pending_payment": 1}
    counted = moves(await history_rows(platform))
    for order_id in due:
        assert counted[(order_id, "expire")] == 1
    for part in parts:
        assert counted[(part.id, "expire")] == (1 if part.order_id in due else 0)
    assert sum(n for (_, action), n in counted.items() if action == "expire") == 12 + 24
    # the stock went back once: only the fresh order's 3 stay reserved
    assert await conserved(platform, shop.offers["A1"], 40) == (37, 3, 0)
    assert await conserved(platform, shop.offers["B1"], 40) == (40, 0, 0)
    # and another pass finds nothing to do
    assert await jobs.expire_unpaid(platform.uow) == 0


async def test_concurrent_deadline_and_refund_jobs_reject_once_and_refund_once(
    platform: Platform,
) -> None:
    # given: 8 paid orders of two supplier orders each, none accepted by its deadline
    shop = await open_shop(platform, offers={"A1": (1000, 20), "B1": (2000, 20)})
    placed = [await place(platform, shop, shop.line("A1", 2), shop.line("B1", 1)) for _ in range(8)]
    for found in placed:
        await pay(platform, shop, found.order.id)
    parts = [p.id for found in placed for p in found.parts]
    await make_due(platform, parts=parts)
    # when
    rejected = await run_everywhere(platform, jobs.enforce_deadlines)
    sent = await run_everywhere(platform, jobs.send_refunds, provider(platform))
    # then: each supplier order rejected once, each order closed once
    assert sum(rejected) == 16
    counted = moves(await history_rows(platform))
    for found in placed:
        assert counted[(found.order.id, "close")] == 1
        for part in found.parts:
            assert counted[(part.id, "reject")] == 1
    assert {row.status for row in await table_rows(platform, store.orders)} == {"closed"}
    assert {row.status for row in await table_rows(platform, store.supplier_orders)} == {"rejected"}
    # the stock went back once
    assert await conserved(platform, shop.offers["A1"], 20) == (20, 0, 0)
    assert await conserved(platform, shop.offers["B1"], 20) == (20, 0, 0)
    # one refund of the whole amount per supplier order, sent and settled once
    refunds = await table_rows(platform, store.refunds)
    assert sorted(r.supplier_order_id for r in refunds) == sorted(parts)
    amounts = {p.id: p.amount for found in placed for p in found.parts}
    assert all(r.amount == amounts[r.supplier_order_id] for r in refunds)
    assert {r.status for r in refunds} == {RefundStatus.SUCCEEDED}
    assert sum(sent) == 16
    for row in await table_rows(platform, store.orders):
        assert row.refunded_amount == row.amount
    assert await jobs.sweep(platform.uow, provider(platform), hold_seconds=3600) == 0


async def test_every_job_at_once_moves_each_order_once(platform: Platform) -> None:
    # given: unpaid orders past their hold, paid ones past their deadline, one accepted in time
    shop = await open_shop(platform, offers={"A1": (1000, 30), "B1": (2000, 30)})
    unpaid = [
        (await place(platform, shop, shop.line("B1", 1), shop.line("A1", 1))) for _ in range(5)
    ]
    paid = [(await place(platform, shop, shop.line("A1", 2), shop.line("B1", 2))) for _ in range(5)]
    for found in paid:
        await pay(platform, shop, found.order.id)
    kept = paid.pop()
    async with platform.uow() as uow:
        for part in kept.parts:
            await decisions.accept(
                uow,
                supplier_id=part.supplier_id,
                supplier_order_id=part.id,
                decisions=None,
                actor=Actor("supplier", part.supplier_id),
            )
        await uow.commit()
    await make_due(
        platform,
        orders=[d.order.id for d in unpaid],
        parts=[p.id for d in [*paid, kept] for p in d.parts],
    )
    # when: whole sweeps, several at once, from two engines
    done = await run_everywhere(
        platform, functools.partial(jobs.sweep, hold_seconds=3600), provider(platform)
    )
    # then: 5 expired + 8 rejected + 8 refunds settled, once each
    assert sum(done) == 5 + 8 + 8
    counted = moves(await history_rows(platform))
    assert all(n == 1 for n in counted.values()), [k for k, n in counted.items() if n > 1]
    statuses = {row.id: row.status for row in await table_rows(platform, store.orders)}
    assert [statuses[d.order.id] for d in unpaid] == ["expired"] * 5
    assert [statuses[d.order.id] for d in paid] == ["closed"] * 4
    assert statuses[kept.order.id] == "paid"
    # only the accepted order's stock is taken: sold, never released
    assert await conserved(platform, shop.offers["A1"], 30) == (28, 0, 2)
    assert await conserved(platform, shop.offers["B1"], 30) == (28, 0, 2)
    assert {r.status for r in await table_rows(platform, store.refunds)} == {"succeeded"}


# --- payment callbacks ----------------------------------------------------------------------


async def pending_order(platform: Platform, shop: Shop) -> tuple[Detail, str]:
    """A placed order whose payment waits for the provider's callback."""
    found = await place(platform, shop, shop.line("A1", 2), shop.line("B1", 1))
    paying = await pay(platform, shop, found.order.id, token="tok_test_pending")
    assert paying.order.status is OrderStatus.PLACED
    [payment] = paying.payments
    assert payment.status is PaymentStatus.PENDING
    return found, payment.id


async def snapshot(platform: Platform) -> dict[str, list[tuple[Any, ...]]]:
    """Every order table's rows (timestamps of rows that do not move included)."""
    tables = [
        store.orders,
        store.supplier_orders,
        store.order_lines,
        store.payments,
        store.refunds,
        store.order_history,
        store.payment_callbacks,
    ]
    return {
        table.name: sorted(tuple(row) for row in await table_rows(platform, table))
        for table in tables
    }


async def test_a_callback_sent_twice_and_concurrently_is_applied_once(platform: Platform) -> None:
    # given
    shop = await open_shop(platform, offers={"A1": (1000, 10), "B1": (2000, 10)})
    found, payment_id = await pending_order(platform, shop)
    headers, body = provider(platform).make_callback(
        event_id="evt_provider_1", payment_id=payment_id, outcome=Outcome.SUCCEEDED
    )
    # when: the provider sends it five times at once, then once more
    applied = await asyncio.gather(*(callback(platform, headers, body) for _ in range(5)))
    again = await callback(platform, headers, body)
    # then
    assert sorted(applied) == [False] * 4 + [True]
    assert again is False
    async with platform.uow(write=False) as uow:
        after = await service.any_order(uow, order_id=found.order.id)
    assert after.order.status is OrderStatus.PAID
    assert {p.status for p in after.parts} == {SupplierOrderStatus.AWAITING_ACCEPTANCE}
    assert [p.status for p in after.payments] == [PaymentStatus.CAPTURED]
    counted = moves(await history_rows(platform))
    assert counted[(found.order.id, "pay")] == 1
    assert all(counted[(p.id, "pay")] == 1 for p in found.parts)
    assert len(await table_rows(platform, store.payment_callbacks)) == 1


async def test_another_callback_about_a_settled_payment_changes_nothing(
    platform: Platform,
) -> None:
    # given: a payment captured by one callback
    shop = await open_shop(platform, offers={"A1": (1000, 10), "B1": (2000, 10)})
    _, payment_id = await pending_order(platform, shop)
    sender = provider(platform)
    assert await callback(
        platform,
        *sender.make_callback(event_id="evt_1", payment_id=payment_id, outcome=Outcome.SUCCEEDED),
    )
    before = await snapshot(platform)
    # when: the provider sends the same answer and a contrary one under new event ids, at once
    await asyncio.gather(
        callback(
            platform,
            *sender.make_callback(
                event_id="evt_2", payment_id=payment_id, outcome=Outcome.SUCCEEDED
            ),
        ),
        callback(
            platform,
            *sender.make_callback(
                event_id="evt_3",
                payment_id=payment_id,
                outcome=Outcome.FAILED,
                failure_code="card_declined",
            ),
        ),
    )
    # then: noted as received, nothing else moved
    after = await snapshot(platform)
    assert len(after.pop("payment_callbacks")) == 3
    before.pop("payment_callbacks")
    assert after == before


async def test_contrary_callbacks_at_once_settle_the_payment_one_way(platform: Platform) -> None:
    # given
    shop = await open_shop(platform, offers={"A1": (1000, 10), "B1": (2000, 10)})
    found, payment_id = await pending_order(platform, shop)
    sender = provider(platform)
    succeeded = sender.make_callback(
        event_id="evt_ok", payment_id=payment_id, outcome=Outcome.SUCCEEDED
    )
    failed = sender.make_callback(
        event_id="evt_no", payment_id=payment_id, outcome=Outcome.FAILED, failure_code="x"
    )
    # when
    await asyncio.gather(
        *(callback(platform, *succeeded) for _ in range(3)),
        *(callback(platform, *failed) for _ in range(3)),
    )
    # then: either captured and paid, or failed and still placed; never both
    async with platform.uow(write=False) as uow:
        after = await service.any_order(uow, order_id=found.order.id)
    [payment] = after.payments
    if payment.status is PaymentStatus.CAPTURED:
        assert after.order.status is OrderStatus.PAID
        assert moves(await history_rows(platform))[(found.order.id, "pay")] == 1
    else:
        assert payment.status is PaymentStatus.FAILED
        assert after.order.status is OrderStatus.PLACED
        assert moves(await history_rows(platform))[(found.order.id, "pay")] == 0
    assert after.refunds == []


async def test_a_capture_after_the_order_expired_is_refunded_once(platform: Platform) -> None:
    # given: the order expires while its payment waits for the provider
    shop = await open_shop(platform, offers={"A1": (1000, 10), "B1": (2000, 10)})
    found, payment_id = await pending_order(platform, shop)
    await make_due(platform, orders=[found.order.id])
    assert await jobs.expire_unpaid(platform.uow) == 1
    headers, body = provider(platform).make_callback(
        event_id="evt_late", payment_id=payment_id, outcome=Outcome.SUCCEEDED
    )
    # when: the capture arrives, several times at once, and refunds are sent at once
    applied = await asyncio.gather(*(callback(platform, headers, body) for _ in range(4)))
    sent = await run_everywhere(platform, jobs.send_refunds, provider(platform))
    # then: nothing is sold; all that was taken goes back, once per supplier order
    assert sorted(applied) == [False, False, False, True]
    async with platform.uow(write=False) as uow:
        after = await service.any_order(uow, order_id=found.order.id)
    assert after.order.status is OrderStatus.EXPIRED
    assert sorted((r.supplier_order_id, r.amount) for r in after.refunds) == sorted(
        (p.id, p.amount) for p in found.parts
    )
    assert {r.status for r in after.refunds} == {RefundStatus.SUCCEEDED}
    assert sum(sent) == 2
    assert after.order.refunded_amount == found.order.amount
    assert await conserved(platform, shop.offers["A1"], 10) == (10, 0, 0)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: ({**h, "test-signature": "0" * 64}, b), id="wrong-signature"),
        pytest.param(lambda h, b: ({}, b), id="unsigned"),
        pytest.param(lambda h, b: (h, b.replace(b"succeeded", b"failed")), id="altered-body"),
        pytest.param(
            lambda h, b: ({"test-signature": TestProvider("another-secret-entirely").sign(b)}, b),
            id="another-secret",
        ),
    ],
)
async def test_a_callback_with_a_bad_signature_is_refused_and_changes_nothing(
    platform: Platform, tamper: Any
) -> None:
    # given
    shop = await open_shop(platform, offers={"A1": (1000, 10), "B1": (2000, 10)})
    _, payment_id = await pending_order(platform, shop)
    headers, body = tamper(
        *provider(platform).make_callback(
            event_id="evt_forged", payment_id=payment_id, outcome=Outcome.SUCCEEDED
        )
    )
    before = await snapshot(platform)
    # when
    with pytest.raises(Unauthorized) as refused:
        await callback(platform, headers, body)
    # then
    assert refused.value.code == "bad_signature"
    assert await snapshot(platform) == before


# --- races: SQLite serializes them, PostgreSQL runs them at once ---------------------------


async def warm(platform: Platform, connections: int) -> None:
    """Opens `connections` pooled connections together and gives them back, so the concurrent
    calls that follow start together rather than one by one as each connection opens (on
    SQLite writers queue for the one writer connection anyway)."""
    if platform.db.dialect != "postgresql":
        return
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(connections):
            uow = await stack.enter_async_context(platform.uow(write=False))
            await uow.connection()


async def test_concurrent_payments_of_one_order_take_the_money_once(
    platform: Platform,
) -> None:
    # given: six placed orders
    shop = await open_shop(platform, offers={"A1": (1000, 20), "B1": (2000, 20)})
    placed = [
        (await place(platform, shop, shop.line("A1", 2), shop.line("B1", 1))).order.id
        for _ in range(6)
    ]
    await warm(platform, 20)
    # when: each order's "pay" is sent six times at once
    results = await asyncio.gather(
        *(outcome(pay(platform, shop, order_id)) for order_id in placed for _ in range(6))
    )
    # then: one payment is taken per order; the other attempts are refused before the provider
    captured = Counter(
        p.order_id for p in await table_rows(platform, store.payments) if p.status == "captured"
    )
    assert captured == dict.fromkeys(placed, 1)
    assert await table_rows(platform, store.refunds) == []
    assert unexpected(results, "payment_in_progress", "invalid_transition") == []
    assert sum(isinstance(r, Detail) for r in results) == len(placed)


async def cancel(platform: Platform, shop: Shop, order_id: str) -> Detail:
    async with platform.uow() as uow:
        done = await decisions.cancel_order(
            uow, client_id=shop.client.client_id, order_id=order_id, reason=None
        )
        await uow.commit()
    return done


async def test_concurrent_cancels_release_each_order_once(
    platform: Platform,
) -> None:
    # given: orders of two supplier orders, half naming A first, half B first; half paid
    shop = await open_shop(platform, offers={"A1": (1000, 40), "B1": (2000, 40)})
    placed = [
        await place(
            platform,
            shop,
            *(
                (shop.line("A1", 1), shop.line("B1", 1))
                if n % 2
                else (shop.line("B1", 1), shop.line("A1", 1))
            ),
        )
        for n in range(6)
    ]
    for found in placed[:3]:
        await pay(platform, shop, found.order.id)
    await warm(platform, 12)
    # when: every order cancelled twice, all at once
    results = await asyncio.gather(
        *(outcome(cancel(platform, shop, found.order.id)) for found in placed for _ in range(2))
    )
    # then: each cancelled once (the second try is a conflict), nothing but conflicts failed
    assert unexpected(results, "invalid_transition") == []
    assert sum(isinstance(r, Detail) for r in results) == 6
    counted = moves(await history_rows(platform))
    assert all(counted[(f.order.id, "cancel")] == 1 for f in placed)
    assert await conserved(platform, shop.offers["A1"], 40) == (40, 0, 0)
    assert await conserved(platform, shop.offers["B1"], 40) == (40, 0, 0)
    refunds = await table_rows(platform, store.refunds)
    assert len(refunds) == 6  # the paid orders' two supplier orders each


async def test_a_cancel_and_an_acceptance_at_once_one_wins(
    platform: Platform,
) -> None:
    # given: paid orders of one supplier order each
    shop = await open_shop(platform, offers={"A1": (1000, 20)})
    placed = [await place(platform, shop, shop.line("A1", 1)) for _ in range(4)]
    for found in placed:
        await pay(platform, shop, found.order.id)
    await warm(platform, 8)

    async def accept(part_id: str) -> Any:
        async with platform.uow() as uow:
            done = await decisions.accept(
                uow,
                supplier_id=shop.suppliers["A"],
                supplier_order_id=part_id,
                decisions=None,
                actor=Actor("supplier", shop.suppliers["A"]),
            )
            await uow.commit()
        return done

    # when: the client cancels each while its supplier accepts it
    results = await asyncio.gather(
        *(
            call
            for found in placed
            for call in (
                outcome(cancel(platform, shop, found.order.id)),
                outcome(accept(found.parts[0].id)),
            )
        )
    )
    # then: of each pair exactly one went through, the other is a conflict
    assert unexpected(results, "invalid_transition") == []
    for pair in zip(results[::2], results[1::2], strict=True):
        assert sum(isinstance(r, Conflict) for r in pair) == 1, pair
    statuses = Counter(r.status for r in await table_rows(platform, store.supplier_orders))
    assert sum(statuses.values()) == 4
    assert set(statuses) <= {"cancelled", "accepted"}
    _, reserved, sold = await conserved(platform, shop.offers["A1"], 20)
    assert (reserved, sold) == (0, statuses["accepted"])
