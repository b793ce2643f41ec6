"""Orders driven at random through the service layer: place; pay (taken, declined, or answered
later by the provider's callback, sent once, twice or forged); expire; accept whole or line by
line; reject; miss the acceptance deadline; cancel; fulfil; complete; refund all or part; send
the refunds; and suppliers restating their stock, over three offers of two suppliers.

A model of what each call should do runs alongside. After every step the database must agree
with it, and with the laws of the orders context: stock is never negative and changes its total
only through a supplier's update; reserved and sold are exactly what the order lines hold;
every status is one of the model's and every recorded move is in a transition table; refunds
never exceed what was paid for a supplier order. A call the model says is invalid must be
refused (a conflict, or not found where the caller may not see the order) and change nothing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from order_shop import Shop, make_due, open_shop, stock_of, supply

from fresh_databases import FreshDatabases
from marketplane.bootstrap import Platform
from marketplane.catalog import store as catalog_tables
from marketplane.events import store as event_tables
from marketplane.kernel.errors import (
    Conflict,
    InvalidTransition,
    MarketplaneError,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from marketplane.money import ledger
from marketplane.money import store as money_tables
from marketplane.money.model import PLATFORM, AccountKey, Purpose
from marketplane.orders import decisions, jobs, service, store
from marketplane.orders.model import (
    SUPPLIER_ORDER_ENDS,
    TRANSITIONS,
    Action,
    LineStatus,
    OrderKind,
    OrderStatus,
    PaymentStatus,
    RefundStatus,
    SupplierOrderStatus,
)
from marketplane.orders.payments import Outcome, TestProvider
from marketplane.orders.transitions import Actor, Detail

T = TypeVar("T")
ACCEPT_SECONDS = 3600.0
MARKUP_BPS = 1000  # the client shows 10% over the suppliers' prices
OFFERS = {"A1": (1000, 8), "A2": (450, 6), "B1": (2000, 10)}  # sku → (price, first quantity)
SKUS = sorted(OFFERS)
HIDDEN_FROM_SUPPLIER = {SupplierOrderStatus.PENDING_PAYMENT, SupplierOrderStatus.EXPIRED}
REFUNDABLE = {
    SupplierOrderStatus.ACCEPTED,
    SupplierOrderStatus.FULFILLED,
    SupplierOrderStatus.COMPLETED,
}
CANCELLABLE = {SupplierOrderStatus.PENDING_PAYMENT, SupplierOrderStatus.AWAITING_ACCEPTANCE}
# The status a supplier's decision is valid from, and what a supplier order does next.
VALID_FROM = {
    "accept": SupplierOrderStatus.AWAITING_ACCEPTANCE,
    "reject": SupplierOrderStatus.AWAITING_ACCEPTANCE,
    "deadline passes": SupplierOrderStatus.AWAITING_ACCEPTANCE,
    "fulfil": SupplierOrderStatus.ACCEPTED,
    "complete": SupplierOrderStatus.FULFILLED,
}
NEXT_STEP = {
    SupplierOrderStatus.AWAITING_ACCEPTANCE,
    SupplierOrderStatus.ACCEPTED,
    SupplierOrderStatus.FULFILLED,
}


# --- the model ------------------------------------------------------------------------------


@dataclass
class Line:
    id: str
    offer_id: str
    quantity: int
    amount: int
    status: LineStatus = LineStatus.RESERVED


@dataclass
class Part:
    id: str
    supplier_id: str
    amount: int
    lines: list[Line]
    status: SupplierOrderStatus = SupplierOrderStatus.PENDING_PAYMENT
    refunded: int = 0


@dataclass
class Refund:
    part_id: str
    amount: int
    status: RefundStatus = RefundStatus.PENDING


@dataclass
class Order:
    id: str
    parts: list[Part]  # in id order, as the service visits them
    status: OrderStatus = OrderStatus.PLACED
    pending_payment: str | None = None  # a payment the provider answers by callback
    captured: bool = False
    refunds_fail: bool = False  # paid with the token whose refunds the provider refuses
    refunds: list[Refund] = field(default_factory=list)

    def owe(self, part: Part, amount: int) -> None:
        if amount > 0:
            part.refunded += amount
            self.refunds.append(Refund(part.id, amount))

    def unpaid_but_answered_later(self) -> bool:
        return self.status is OrderStatus.PLACED and self.pending_payment is not None

    def unpaid(self) -> bool:
        """Placed, and no payment waiting for the provider: it may be paid."""
        return self.status is OrderStatus.PLACED and self.pending_payment is None

    def release(self, part: Part, status: SupplierOrderStatus) -> None:
        part.status = status
        for line in part.lines:
            if line.status is LineStatus.RESERVED:
                line.status = LineStatus.RELEASED

    def close_if_done(self) -> None:
        if self.status is OrderStatus.PAID and all(
            p.status in SUPPLIER_ORDER_ENDS for p in self.parts
        ):
            self.status = OrderStatus.CLOSED


# --- databases: a fresh one per example -----------------------------------------------------


async def seed_shop(platform: Platform) -> Shop:
    return await open_shop(platform, offers=OFFERS, markup_bps=MARKUP_BPS)


# --- the machine ----------------------------------------------------------------------------

picks = st.integers(min_value=0, max_value=1000)


class Orders(RuleBasedStateMachine):
    def __init__(self, runner: asyncio.Runner, backend: FreshDatabases[Shop]) -> None:
        super().__init__()
        self.runner = runner
        self.backend = backend
        self.platform, self.shop = self.run(backend.fresh())
        self.provider = TestProvider(self.platform.settings.payment_test_secret)
        self.totals = {self.shop.offers[sku]: quantity for sku, (_, quantity) in OFFERS.items()}
        self.orders: list[Order] = []
        self.callbacks = itertools.count()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(call)

    def teardown(self) -> None:
        self.run(self.backend.done(self.platform))

    # --- what the model knows ---------------------------------------------------------------

    def parts(self) -> list[tuple[Order, Part]]:
        return [(order, part) for order in self.orders for part in order.parts]

    def held(self, offer_id: str, status: LineStatus) -> int:
        return sum(
            line.quantity
            for _, part in self.parts()
            for line in part.lines
            if line.offer_id == offer_id and line.status is status
        )

    def available(self, offer_id: str) -> int:
        return (
            self.totals[offer_id]
            - self.held(offer_id, LineStatus.RESERVED)
            - self.held(offer_id, LineStatus.SOLD)
        )

    # --- calling the service ----------------------------------------------------------------

    async def in_uow(self, use: Any) -> Any:
        async with self.platform.uow() as uow:
            result = await use(uow)
            await uow.commit()
        return result

    def refused(
        self, call: Coroutine[Any, Any, Any], *kinds: type[MarketplaneError]
    ) -> MarketplaneError:
        """Runs a call the model says must fail: it raises one of `kinds`, changing nothing."""
        before = self.run(self.snapshot())
        with pytest.raises(kinds) as raised:
            self.run(call)
        assert self.run(self.snapshot()) == before
        return raised.value

    def refused_move(self, call: Coroutine[Any, Any, Any], current: str) -> None:
        error = self.refused(call, InvalidTransition)
        assert error.extra["current_status"] == current

    async def snapshot(self) -> dict[str, Any]:
        tables = [
            store.orders,
            store.supplier_orders,
            store.order_lines,
            store.payments,
            store.refunds,
            store.order_history,
            store.payment_callbacks,
        ]
        offers = catalog_tables.offers
        async with self.platform.uow(write=False) as uow:
            seen: dict[str, Any] = {
                t.name: sorted(tuple(r) for r in await uow.fetch(t.select())) for t in tables
            }
            seen["offers"] = sorted(
                tuple(r)
                for r in await uow.fetch(
                    sa.select(
                        offers.c.id,
                        offers.c.quantity,
                        offers.c.reserved,
                        offers.c.sold,
                        offers.c.version,
                    )
                )
            )
            seen["events"] = await uow.fetch(
                sa.select(sa.func.count()).select_from(event_tables.events)
            )
        return seen

    # --- choosing what to act on ------------------------------------------------------------

    def order_for(self, pick: int, aim: bool, valid: Callable[[Order], bool]) -> Order:
        """An order: when `aim`, one the action is valid for if there is one; else any."""
        candidates = [o for o in self.orders if valid(o)] if aim else []
        pool = candidates or self.orders
        return pool[-1 - pick % len(pool)]  # the newest first: shrinks toward it

    def part_for(self, pick: int, aim: bool, valid: set[SupplierOrderStatus]) -> tuple[Order, Part]:
        candidates = [(o, p) for o, p in self.parts() if p.status in valid] if aim else []
        pool = candidates or self.parts()
        return pool[-1 - pick % len(pool)]

    def movable(self) -> list[tuple[Order, Part | None]]:
        """What has a natural next step: unpaid orders, and supplier orders not yet done."""
        return [
            *((o, None) for o in self.orders if o.status is OrderStatus.PLACED),
            *((o, p) for o, p in self.parts() if p.status in NEXT_STEP),
        ]

    # --- rules ------------------------------------------------------------------------------

    @rule(
        wanted=st.lists(
            st.tuples(st.sampled_from(SKUS), st.integers(min_value=1, max_value=3)),
            min_size=1,
            max_size=3,
        )
    )
    def place(self, wanted: list[tuple[str, int]]) -> None:
        lines = [self.shop.line(sku, quantity) for sku, quantity in wanted]
        summed: dict[str, int] = {}
        for line in lines:
            summed[line.offer_id] = summed.get(line.offer_id, 0) + line.quantity
        short = sorted(o for o, n in summed.items() if n > self.available(o))
        call = self.in_uow(
            lambda uow: service.place_order(
                uow,
                view=self.shop.client,
                customer_ref="cust",
                shipping=None,
                lines=lines,
                default_hold_seconds=900,
            )
        )
        event(f"place: {'short' if short else 'placed'}")
        if short:
            error = self.refused(call, Conflict)
            assert error.code == "insufficient_stock"
            assert sorted(s["offer"] for s in error.extra["lines"]) == short
            assert all(
                s["wanted"] == summed[s["offer"]] and s["available"] == self.available(s["offer"])
                for s in error.extra["lines"]
            )
            return
        found: Detail = self.run(call)
        assert found.order.status is OrderStatus.PLACED
        assert {p.supplier_id for p in found.parts} == {self.shop.supplier_of(s) for s, _ in wanted}
        assert [(x.offer_id, x.quantity, x.unit_price) for x in found.lines] == [
            (x.offer_id, x.quantity, x.unit_price) for x in lines
        ]
        parts = [
            Part(
                id=p.id,
                supplier_id=p.supplier_id,
                amount=p.amount,
                lines=[
                    Line(x.id, x.offer_id, x.quantity, x.amount)
                    for x in found.lines
                    if x.supplier_order_id == p.id
                ],
            )
            for p in sorted(found.parts, key=lambda p: p.id)
        ]
        assert all(p.amount == sum(x.amount for x in p.lines) for p in parts)
        assert found.order.amount == sum(line.unit_price * line.quantity for line in lines)
        self.orders.append(Order(found.order.id, parts))

    @precondition(lambda self: self.movable())
    @rule(pick=picks, choices=st.lists(st.booleans(), min_size=3, max_size=3))
    def things_move_on(self, pick: int, choices: list[bool]) -> None:
        """The natural next step of an order or a supplier order: paid, answered, accepted
        (whole or in part), fulfilled, completed."""
        movable = self.movable()
        order, part = movable[-1 - pick % len(movable)]
        if part is None and order.pending_payment is None:
            self.pay(order, "tok_test_ok")
        elif part is None:
            self.provider_answers(order, Outcome.SUCCEEDED, times=1, forged=False)
        elif part.status is SupplierOrderStatus.AWAITING_ACCEPTANCE:
            whole = all(choices)
            chosen = None if whole else dict(zip([x.id for x in part.lines], choices, strict=False))
            self.accept(order, part, chosen, own=True)
        elif part.status is SupplierOrderStatus.ACCEPTED:
            self.fulfil(part, own=True)
        else:
            self.complete(order, part, own=True)

    @precondition(lambda self: self.orders)
    @rule(
        pick=picks,
        aim=st.booleans(),
        token=st.sampled_from(
            [
                "tok_test_ok",
                "tok_test_refund_fails",
                "tok_test_declined",
                "tok_test_pending",
                "tok_test_pending",  # twice: the callbacks' paths are the longer ones
            ]
        ),
    )
    def client_pays(self, pick: int, aim: bool, token: str) -> None:
        self.pay(self.order_for(pick, aim, Order.unpaid), token)

    @precondition(lambda self: any(o.pending_payment for o in self.orders))
    @rule(
        pick=picks,
        outcome=st.sampled_from([Outcome.SUCCEEDED, Outcome.FAILED]),
        times=st.integers(min_value=1, max_value=2),
        forged=st.booleans(),
    )
    def provider_calls_back(self, pick: int, outcome: Outcome, times: int, forged: bool) -> None:
        order = self.order_for(pick, True, lambda o: o.pending_payment is not None)
        self.provider_answers(order, outcome, times=times, forged=forged)

    @precondition(lambda self: any(o.unpaid_but_answered_later() for o in self.orders))
    @rule(
        pick=picks,
        how=st.sampled_from(["hold expires", "cancel"]),
        times=st.integers(min_value=1, max_value=2),
    )
    def money_arrives_for_an_order_gone(self, pick: int, how: str, times: int) -> None:
        """The order ends while its payment waits for the provider, who then takes it."""
        order = self.order_for(pick, True, Order.unpaid_but_answered_later)
        if how == "cancel":
            self.cancel(order)
        else:
            self.expire(order)
        self.provider_answers(order, Outcome.SUCCEEDED, times=times, forged=False)

    @precondition(lambda self: self.orders)
    @rule(pick=picks, aim=st.booleans(), how=st.sampled_from(["hold expires", "cancel"]))
    def order_ends_early(self, pick: int, aim: bool, how: str) -> None:
        if how == "cancel":
            self.cancel(self.order_for(pick, aim, self.cancellable))
        else:
            self.expire(self.order_for(pick, aim, lambda o: o.status is OrderStatus.PLACED))

    @precondition(lambda self: self.orders)
    @rule(
        pick=picks,
        aim=st.booleans(),
        how=st.sampled_from(["all", "one", "half", "rest", "past the rest", "nothing"]),
    )
    def client_asks_a_refund(self, pick: int, aim: bool, how: str) -> None:
        order, part = self.part_for(pick, aim, REFUNDABLE)
        self.refund(order, part, how)

    @rule()
    def refunds_are_sent(self) -> None:
        settled = self.run(jobs.send_refunds(self.platform.uow, self.provider))
        owed = [(o, r) for o in self.orders for r in o.refunds if r.status is RefundStatus.PENDING]
        assert settled == len(owed)
        for order, refund in owed:
            refund.status = RefundStatus.FAILED if order.refunds_fail else RefundStatus.SUCCEEDED

    @precondition(lambda self: self.orders)
    @rule(
        pick=picks,
        aim=st.booleans(),
        action=st.sampled_from(["accept", "reject", "deadline passes", "fulfil", "complete"]),
        choices=st.lists(st.booleans(), min_size=3, max_size=3),
        own=st.booleans() | st.just(True),
    )
    def supplier_decides(
        self, pick: int, aim: bool, action: str, choices: list[bool], own: bool
    ) -> None:
        order, part = self.part_for(pick, aim, {VALID_FROM[action]})
        if action == "accept":
            whole = choices[0]
            chosen = (
                None if whole else dict(zip([x.id for x in part.lines], choices[1:], strict=False))
            )
            self.accept(order, part, chosen, own=own)
        elif action == "reject":
            self.reject(order, part, own=own)
        elif action == "deadline passes":
            self.deadline_passes(order, part)
        elif action == "fulfil":
            self.fulfil(part, own=own)
        else:
            self.complete(order, part, own=own)

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(min_value=0, max_value=10))
    def supplier_restates_stock(self, sku: str, quantity: int) -> None:
        offer_id = self.shop.offers[sku]
        # The same statement as before may come again: it is heard when orders moved the stock.
        self.run(supply(self.platform, self.shop, sku, price=OFFERS[sku][0], quantity=quantity))
        self.totals[offer_id] = (
            quantity
            + self.held(offer_id, LineStatus.RESERVED)
            + self.held(offer_id, LineStatus.SOLD)
        )

    # --- the client's actions, and what the model expects of them -----------------------------

    def pay(self, order: Order, token: str) -> None:
        call = service.pay_order(
            self.platform.uow,
            self.provider,
            client_id=self.shop.client.client_id,
            order_id=order.id,
            token=token,
            accept_seconds=ACCEPT_SECONDS,
        )
        event(f"pay: {token} on {order.status}{' (pending)' if order.pending_payment else ''}")
        if order.status is not OrderStatus.PLACED:
            error = self.refused(call, Conflict)
            assert (error.code, error.extra["current_status"]) == (
                "invalid_transition",
                order.status,
            )
            return
        if order.pending_payment is not None:
            assert self.refused(call, Conflict).code == "payment_in_progress"
            return
        if token == "tok_test_declined":
            with pytest.raises(service.PaymentFailed) as failed:
                self.run(call)
            assert failed.value.extra == {"failure_code": "card_declined"}
            return
        found = self.run(call)
        payment = found.payments[-1]
        if token == "tok_test_pending":
            assert payment.status is PaymentStatus.PENDING
            order.pending_payment = payment.id
            return
        assert payment.status is PaymentStatus.CAPTURED
        self.paid(order)
        order.refunds_fail = token == "tok_test_refund_fails"

    def paid(self, order: Order) -> None:
        order.status = OrderStatus.PAID
        order.captured = True
        for part in order.parts:
            part.status = SupplierOrderStatus.AWAITING_ACCEPTANCE

    def provider_answers(self, order: Order, outcome: Outcome, *, times: int, forged: bool) -> None:
        assert order.pending_payment is not None
        headers, body = self.provider.make_callback(
            event_id=f"evt_{next(self.callbacks)}",
            payment_id=order.pending_payment,
            outcome=outcome,
            failure_code=None if outcome is Outcome.SUCCEEDED else "declined",
        )

        def send(headers: dict[str, str]) -> Coroutine[Any, Any, bool]:
            return service.handle_callback(
                self.platform.uow,
                self.provider,
                headers=headers,
                body=body,
                accept_seconds=ACCEPT_SECONDS,
            )

        event(f"callback: {outcome} on {order.status}{' forged' if forged else ''} x{times}")
        if forged:
            error = self.refused(send({**headers, "test-signature": "f" * 64}), Unauthorized)
            assert error.code == "bad_signature"
            return
        assert self.run(send(headers)) is True
        order.pending_payment = None
        if outcome is Outcome.SUCCEEDED:
            if order.status is OrderStatus.PLACED:
                self.paid(order)
            else:  # expired or cancelled meanwhile: all that was taken goes back
                order.captured = True
                for part in order.parts:
                    order.owe(part, part.amount - part.refunded)
        for _ in range(times - 1):
            before = self.run(self.snapshot())
            assert self.run(send(headers)) is False
            after = self.run(self.snapshot())
            assert len(after.pop("payment_callbacks")) == len(before.pop("payment_callbacks"))
            assert after == before

    def expire(self, order: Order) -> None:
        self.run(make_due(self.platform, orders=[order.id]))
        expired = self.run(jobs.expire_unpaid(self.platform.uow))
        event(f"expire: {order.status}")
        if order.status is not OrderStatus.PLACED:
            assert expired == 0
            return
        assert expired == 1
        order.status = OrderStatus.EXPIRED
        for part in order.parts:
            order.release(part, SupplierOrderStatus.EXPIRED)

    @staticmethod
    def blocking(order: Order) -> list[Part]:
        """The parts that keep an order from being cancelled: accepted ones."""
        return [
            p
            for p in order.parts
            if p.status not in SUPPLIER_ORDER_ENDS and p.status not in CANCELLABLE
        ]

    def cancellable(self, order: Order) -> bool:
        return order.status in (OrderStatus.PLACED, OrderStatus.PAID) and not self.blocking(order)

    def cancel(self, order: Order) -> None:
        call = self.in_uow(
            lambda uow: decisions.cancel_order(
                uow, client_id=self.shop.client.client_id, order_id=order.id, reason="changed mind"
            )
        )
        event(f"cancel: {order.status}")
        if order.status not in (OrderStatus.PLACED, OrderStatus.PAID):
            self.refused_move(call, order.status)
            return
        if self.blocking(order):
            self.refused_move(call, self.blocking(order)[0].status)
            return
        self.run(call)
        order.status = OrderStatus.CANCELLED
        for part in order.parts:
            if part.status not in SUPPLIER_ORDER_ENDS:
                order.release(part, SupplierOrderStatus.CANCELLED)
                if order.captured:
                    order.owe(part, part.amount - part.refunded)

    def refund(self, order: Order, part: Part, how: str) -> None:
        rest = part.amount - part.refunded
        amount = {
            "all": None,
            "one": 1,
            "half": rest // 2,
            "rest": rest,
            "past the rest": rest + 1,
            "nothing": 0,
        }[how]

        async def give(uow: Any) -> Any:
            found = await service.client_order(
                uow, client_id=self.shop.client.client_id, order_id=order.id
            )
            return await decisions.refund(
                uow, found=found, supplier_order_id=part.id, amount=amount, reason="damaged"
            )

        call = self.in_uow(give)
        event(f"refund: {how} on {part.status}")
        wanted = rest if amount is None else amount
        if part.status not in REFUNDABLE:
            error = self.refused(call, Conflict)
            assert (error.code, error.extra["current_status"]) == (
                "invalid_transition",
                part.status,
            )
        elif wanted <= 0:
            assert self.refused(call, ValidationFailed).code == "nothing_to_refund"
        elif wanted > rest:
            assert self.refused(call, Conflict).code == "refund_exceeds_paid"
        else:
            made = self.run(call)
            assert (made.supplier_order_id, made.amount) == (part.id, wanted)
            order.owe(part, wanted)

    # --- the suppliers' actions -------------------------------------------------------------

    def decide(
        self,
        name: str,
        part: Part,
        call: Coroutine[Any, Any, Any],
        allowed: SupplierOrderStatus,
        *,
        own: bool,
    ) -> bool:
        """Whether the model lets the part's supplier make this decision; if not, checks that
        the call is refused as it should be."""
        event(f"{name}: {part.status}{'' if own else ' by another supplier'}")
        if not own or part.status in HIDDEN_FROM_SUPPLIER:
            assert self.refused(call, NotFound).code == "order_not_found"
            return False
        if part.status is not allowed:
            self.refused_move(call, part.status)
            return False
        return True

    def supplier(self, part: Part, own: bool) -> str:
        if own:
            return part.supplier_id
        return next(s for s in self.shop.suppliers.values() if s != part.supplier_id)

    def rejected(self, order: Order, part: Part) -> None:
        order.release(part, SupplierOrderStatus.REJECTED)
        order.owe(part, part.amount - part.refunded)
        order.close_if_done()

    def accept(
        self, order: Order, part: Part, chosen: dict[str, bool] | None, *, own: bool
    ) -> None:
        supplier_id = self.supplier(part, own)
        call = self.in_uow(
            lambda uow: decisions.accept(
                uow,
                supplier_id=supplier_id,
                supplier_order_id=part.id,
                decisions=chosen,
                actor=Actor("supplier", supplier_id),
            )
        )
        if not self.decide("accept", part, call, SupplierOrderStatus.AWAITING_ACCEPTANCE, own=own):
            return
        self.run(call)
        taken = [x for x in part.lines if chosen is None or chosen.get(x.id, True)]
        if not taken:
            self.rejected(order, part)
            return
        part.status = SupplierOrderStatus.ACCEPTED
        for line in part.lines:
            line.status = LineStatus.SOLD if line in taken else LineStatus.RELEASED
        order.owe(part, sum(x.amount for x in part.lines if x not in taken))

    def reject(self, order: Order, part: Part, *, own: bool) -> None:
        supplier_id = self.supplier(part, own)
        call = self.in_uow(
            lambda uow: decisions.reject(
                uow,
                supplier_id=supplier_id,
                supplier_order_id=part.id,
                reason="out of print",
                actor=Actor("supplier", supplier_id),
            )
        )
        if self.decide("reject", part, call, SupplierOrderStatus.AWAITING_ACCEPTANCE, own=own):
            self.run(call)
            self.rejected(order, part)

    def deadline_passes(self, order: Order, part: Part) -> None:
        self.run(make_due(self.platform, parts=[part.id]))
        rejected = self.run(jobs.enforce_deadlines(self.platform.uow))
        event(f"deadline: {part.status}")
        if part.status is not SupplierOrderStatus.AWAITING_ACCEPTANCE:
            assert rejected == 0
            return
        assert rejected == 1
        self.rejected(order, part)

    def fulfil(self, part: Part, *, own: bool) -> None:
        supplier_id = self.supplier(part, own)
        call = self.in_uow(
            lambda uow: decisions.fulfil(
                uow,
                supplier_id=supplier_id,
                supplier_order_id=part.id,
                tracking={"carrier": "DHL", "number": "1"},
                actor=Actor("supplier", supplier_id),
            )
        )
        if self.decide("fulfil", part, call, SupplierOrderStatus.ACCEPTED, own=own):
            self.run(call)
            part.status = SupplierOrderStatus.FULFILLED

    def complete(self, order: Order, part: Part, *, own: bool) -> None:
        supplier_id = self.supplier(part, own)
        call = self.in_uow(
            lambda uow: decisions.complete(
                uow,
                supplier_id=supplier_id,
                supplier_order_id=part.id,
                actor=Actor("supplier", supplier_id),
            )
        )
        if self.decide("complete", part, call, SupplierOrderStatus.FULFILLED, own=own):
            self.run(call)
            part.status = SupplierOrderStatus.COMPLETED
            order.close_if_done()

    # --- what must hold after every step ----------------------------------------------------

    @invariant()
    def the_database_agrees_with_the_model_and_the_laws(self) -> None:
        self.run(self.check())

    async def check(self) -> None:
        offers_table = catalog_tables.offers
        async with self.platform.uow(write=False) as uow:  # reads inline on SQLite: quick
            offers = {
                r.id: r
                for r in await uow.fetch(
                    sa.select(
                        offers_table.c.id,
                        offers_table.c.quantity,
                        offers_table.c.reserved,
                        offers_table.c.sold,
                    )
                )
            }
            orders = {r.id: r for r in await uow.fetch(store.orders.select())}
            parts = {r.id: r for r in await uow.fetch(store.supplier_orders.select())}
            lines = {r.id: r for r in await uow.fetch(store.order_lines.select())}
            payments = await uow.fetch(store.payments.select())
            refunds = await uow.fetch(store.refunds.select())
            history = await uow.fetch(
                store.order_history.select().order_by(store.order_history.c.pk)
            )
        # stock: never negative, its total moved only by suppliers, held exactly by the lines
        assert set(offers) == set(self.totals)
        for offer_id, row in offers.items():
            assert min(row.quantity, row.reserved, row.sold) >= 0, row
            assert row.quantity + row.reserved + row.sold == self.totals[offer_id], row
            for status, held in ((LineStatus.RESERVED, row.reserved), (LineStatus.SOLD, row.sold)):
                assert held == sum(
                    x.quantity
                    for x in lines.values()
                    if x.offer_id == offer_id and x.status == status
                )
                assert held == self.held(offer_id, status)
        # every status is one of the model's, and is what the model expects
        assert {r.status for r in orders.values()} <= set(OrderStatus)
        assert {r.status for r in parts.values()} <= set(SupplierOrderStatus)
        assert {r.status for r in lines.values()} <= set(LineStatus)
        assert {r.status for r in payments} <= set(PaymentStatus)
        assert {r.status for r in refunds} <= set(RefundStatus)
        assert set(orders) == {o.id for o in self.orders}
        assert set(parts) == {p.id for _, p in self.parts()}
        for order in self.orders:
            row = orders[order.id]
            assert row.status == order.status, (order.id, row.status, order.status)
            assert row.amount == sum(p.amount for p in order.parts)
            assert row.refunded_amount == sum(p.refunded for p in order.parts)
            for part in order.parts:
                stored = parts[part.id]
                assert (stored.status, stored.amount, stored.refunded_amount) == (
                    part.status,
                    part.amount,
                    part.refunded,
                ), part.id
                assert [(lines[x.id].status, lines[x.id].quantity) for x in part.lines] == [
                    (x.status, x.quantity) for x in part.lines
                ]
            # refunds: what the model owes, never more than was paid for a supplier order
            assert sorted(
                (r.supplier_order_id, r.amount, r.status) for r in refunds if r.order_id == order.id
            ) == sorted((r.part_id, r.amount, r.status) for r in order.refunds)
            taken = sum(
                p.amount for p in payments if p.order_id == order.id and p.status == "captured"
            )
            given = sum(r.amount for r in refunds if r.order_id == order.id)
            assert given <= taken
            assert order.captured == (taken > 0)
        for part_row in parts.values():
            given = sum(r.amount for r in refunds if r.supplier_order_id == part_row.id)
            assert given == part_row.refunded_amount <= part_row.amount
        # history: every move is in a table, and the last one is where each object is
        last: dict[str, str] = {}
        for move in history:
            if move.action == "place":
                assert move.from_status is None
                assert move.to_status == (
                    "placed" if move.kind == OrderKind.ORDER else "pending_payment"
                )
            else:
                assert last.get(move.object_id) == move.from_status, move
                table = TRANSITIONS[OrderKind(move.kind)]
                assert table.get((Action(move.action), move.from_status)) == move.to_status, move
            last[move.object_id] = move.to_status
        assert last == {
            **{k: r.status for k, r in orders.items()},
            **{k: r.status for k, r in parts.items()},
        }
        # the books: each transaction balances, so does everything; no payable below zero; cash
        # is what customers paid, less the provider's fees and what went back to them
        async with self.platform.uow(write=False) as uow:
            books = await ledger.balances(uow)
            postings = await uow.fetch(
                sa.select(
                    money_tables.ledger_postings.c.transaction_pk,
                    money_tables.ledger_postings.c.amount,
                )
            )
        per_transaction: Counter[int] = Counter()
        for posting in postings:
            per_transaction[posting.transaction_pk] += posting.amount
        assert set(per_transaction.values()) <= {0}
        assert sum(books.values()) == 0
        assert all(
            raw <= 0 for key, raw in books.items() if key.purpose is Purpose.SUPPLIER_PAYABLE
        )
        captured = [p for p in payments if p.status == "captured"]
        sent_back = sum(r.amount for r in refunds if r.status == "succeeded")
        cash = books.get(AccountKey(Purpose.CASH, PLATFORM, "EUR"), 0)
        assert cash == sum(p.amount - p.fee for p in captured) - sent_back


# --- the tests ------------------------------------------------------------------------------


def bound(runner: asyncio.Runner, backend: FreshDatabases[Shop]) -> type[Orders]:
    """The machine, on this event loop and these databases."""

    class Bound(Orders):
        def __init__(self) -> None:
            super().__init__(runner, backend)

    return Bound


def drive(url: str, workdir: Path, *, examples: int, steps: int) -> None:
    with asyncio.Runner() as runner:
        backend = FreshDatabases(url, workdir, seed_shop)
        runner.run(backend.start())
        try:
            run_state_machine_as_test(
                bound(runner, backend),
                settings=settings(
                    max_examples=examples,
                    stateful_step_count=steps,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
        finally:
            runner.run(backend.stop())


def test_orders_keep_stock_money_and_history_consistent_on_sqlite(
    sqlite_url: str, tmp_path: Path
) -> None:
    drive(sqlite_url, tmp_path, examples=15, steps=40)


@pytest.mark.postgres
def test_orders_keep_stock_money_and_history_consistent_on_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    drive(pg_url, tmp_path, examples=6, steps=30)


async def test_a_supplier_restating_its_first_quantity_after_an_order_is_heard(
    platform: Platform,
) -> None:
    # given: 5 stated, 2 of them reserved by an order
    shop = await open_shop(platform, offers={"A1": (1000, 5)})
    async with platform.uow() as uow:
        await service.place_order(
            uow,
            view=shop.client,
            customer_ref="c",
            shipping=None,
            lines=[shop.line("A1", 2)],
            default_hold_seconds=900,
        )
        await uow.commit()
    assert await stock_of(platform, shop.offers["A1"]) == (3, 2, 0)
    # when: the supplier says again that 5 are available (it received more)
    await supply(platform, shop, "A1", price=1000, quantity=5)
    # then: 5 available, the 2 reserved still held
    assert await stock_of(platform, shop.offers["A1"]) == (5, 2, 0)
