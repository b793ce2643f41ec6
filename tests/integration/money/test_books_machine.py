"""The books driven at random through the money use cases, at least 10,000 operations on
SQLite (and a shorter run on PostgreSQL): captures, acceptances, cancellations (unearned
refunds), partial refunds of sales before and after their release, releases, subscriptions
begun months ago and ended, clicks on sponsored and organic placements, payouts to working,
failing and slow destinations, and the provider's late answers.

Two suppliers sell in two currencies through two clients under a commission of 10% plus 5 per
unit (in EUR only). A model computes, apart from the ledger, what each supplier has earned: its
share of each accepted sale, less what refunds took back of it, less its fees. After every step:
every transaction balances; all balances sum to zero per currency; no payable is below zero
(and its running balance is the sum of its postings), no pending balance either; for each
supplier and currency, its balance (pending + available − owed) plus what payouts took from it
equals what the model says it earned; payouts in transit are what the open payouts hold; and
cash is what was captured, less fees, refunds and payouts paid.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fresh_databases import FreshDatabases
from marketplane.bootstrap import Platform
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import Conflict
from marketplane.kernel.ids import new_id
from marketplane.money import billing, ledger, payouts, service
from marketplane.money import store as tables
from marketplane.money.model import (
    PLATFORM,
    AccountKey,
    BidBasis,
    Payout,
    PayoutStatus,
    PayoutTrigger,
    Placement,
    Plan,
    Purpose,
    Schedule,
    add_months,
    allocate,
)
from marketplane.money.payout_provider import PayoutOutcome
from marketplane.orders.payments import fee_for

T = TypeVar("T")
SUPPLIERS = (new_id("sup"), new_id("sup"))
CLIENTS = (new_id("cli"), new_id("cli"))
CURRENCIES = ("EUR", "USD")
CATEGORY = new_id("cat")
RATE_BPS, FIXED_EUR = 1000, 5
CLICK_BIDS = {"EUR": 7, "USD": 9}
PLAN_PRICE = 990  # EUR a month
DESTINATIONS = ("acct_test_ok", "acct_test_fails", "acct_test_pending")
OPERATIONS: Counter[str] = Counter()


def commission(supplier_amount: int, quantity: int, currency: str) -> int:
    rated = (supplier_amount * RATE_BPS + 5000) // 10_000
    return min(supplier_amount, rated + (FIXED_EUR * quantity if currency == "EUR" else 0))


@dataclass
class Sale:
    part: str
    supplier: str
    currency: str
    amount: int  # what the customer paid
    weights: list[int]  # the supplier's share, the commission, the markup
    refunded: int = 0
    released: bool = False


@dataclass
class Held:
    payment: str
    supplier: str
    client: str
    currency: str
    supplier_amount: int
    markup: int
    quantity: int


async def seed_terms(platform: Platform) -> Plan:
    """The commission, every supplier's click bids, and the plan; the same in every example."""
    async with platform.uow() as uow:
        await service.add_commission_rule(
            uow,
            supplier_id=None,
            category_id=None,
            rate_bps=RATE_BPS,
            fixed=FIXED_EUR,
            currency="EUR",
            effective_from=utcnow() - timedelta(days=1),
            effective_to=None,
        )
        for supplier, currency in itertools.product(SUPPLIERS, CURRENCIES):
            await billing.place_bid(
                uow,
                supplier_id=supplier,
                category_id=CATEGORY,
                basis=BidBasis.CLICK,
                amount=CLICK_BIDS[currency],
                currency=currency,
            )
        plan = await billing.create_plan(uow, name="Pro", amount=PLAN_PRICE, currency="EUR")
        await uow.commit()
    return plan


picks = st.integers(min_value=0, max_value=10_000)


class Books(RuleBasedStateMachine):
    def __init__(self, runner: asyncio.Runner, backend: FreshDatabases[Plan]) -> None:
        super().__init__()
        self.runner, self.backend = runner, backend
        self.platform, self.plan = self.run(backend.fresh())
        self.ids = itertools.count()
        self.held: list[Held] = []
        self.sales: list[Sale] = []
        self.earned: Counter[tuple[str, str]] = Counter()  # the model: (supplier, currency)
        self.captured: Counter[str] = Counter()  # per currency, less the provider's fees
        self.refunded: Counter[str] = Counter()
        self.payouts: dict[str, Payout] = {}
        self.subscribed: dict[str, str] = {}  # supplier → its subscription in force
        self.books: Counter[AccountKey] = Counter()  # raw balances, from the postings read
        self.seen = 0  # the last posting read

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(work)

    def teardown(self) -> None:
        self.run(self._whole_books_agree())
        self.run(self.backend.done(self.platform))

    async def _whole_books_agree(self) -> None:
        """The balances summed step by step are the ledger's own."""
        async with self.platform.uow(write=False) as uow:
            found = await ledger.balances(uow)
        assert {k: v for k, v in found.items() if v} == {k: v for k, v in self.books.items() if v}

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.ids)}"

    async def _in_uow(self, work: Any) -> Any:
        async with self.platform.uow() as uow:
            result = await work(uow)
            await uow.commit()
        return result

    # --- sales ----------------------------------------------------------------------------

    @rule(
        supplier=st.sampled_from(SUPPLIERS),
        client=st.sampled_from(CLIENTS),
        currency=st.sampled_from(CURRENCIES),
        supplier_amount=st.integers(1, 5000),
        markup=st.integers(0, 500),
        quantity=st.integers(1, 3),
    )
    def capture(
        self,
        supplier: str,
        client: str,
        currency: str,
        supplier_amount: int,
        markup: int,
        quantity: int,
    ) -> None:
        OPERATIONS["capture"] += 1
        payment, amount = self.next_id("pay"), supplier_amount + markup
        fee = fee_for(amount)
        self.run(
            self._in_uow(
                lambda uow: service.record_capture(
                    uow, payment_id=payment, amount=amount, fee=fee, currency=currency
                )
            )
        )
        self.captured[currency] += amount - fee
        self.held.append(
            Held(payment, supplier, client, currency, supplier_amount, markup, quantity)
        )

    @precondition(lambda self: self.held)
    @rule(pick=picks)
    def accept(self, pick: int) -> None:
        OPERATIONS["accept"] += 1
        held = self.held.pop(pick % len(self.held))
        part = self.next_id("so")
        line = service.SoldLine(
            self.next_id("off"),
            CATEGORY,
            held.quantity,
            held.supplier_amount + held.markup,
            held.supplier_amount,
        )
        self.run(
            self._in_uow(
                lambda uow: service.record_acceptance(
                    uow,
                    supplier_order_id=part,
                    supplier_id=held.supplier,
                    client_id=held.client,
                    currency=held.currency,
                    lines=[line],
                )
            )
        )
        earned = commission(held.supplier_amount, held.quantity, held.currency)
        share = held.supplier_amount - earned
        self.earned[(held.supplier, held.currency)] += share
        self.sales.append(
            Sale(
                part,
                held.supplier,
                held.currency,
                held.supplier_amount + held.markup,
                [share, earned, held.markup],
            )
        )

    @precondition(lambda self: self.held)
    @rule(pick=picks)
    def cancel(self, pick: int) -> None:
        """The order was cancelled before acceptance: the whole payment goes back."""
        OPERATIONS["cancel"] += 1
        held = self.held.pop(pick % len(self.held))
        amount = held.supplier_amount + held.markup
        refund = self.next_id("rf")
        self.run(
            self._in_uow(
                lambda uow: service.record_refund(
                    uow,
                    refund_id=refund,
                    supplier_order_id=None,
                    amount=amount,
                    currency=held.currency,
                    earned=False,
                    earned_before=0,
                )
            )
        )
        self.refunded[held.currency] += amount

    @precondition(lambda self: any(s.refunded < s.amount for s in self.sales))
    @rule(pick=picks, share=st.integers(1, 100))
    def refund(self, pick: int, share: int) -> None:
        OPERATIONS["refund"] += 1
        open_sales = [s for s in self.sales if s.refunded < s.amount]
        sale = open_sales[pick % len(open_sales)]
        amount = max(1, (sale.amount - sale.refunded) * share // 100)
        refund = self.next_id("rf")
        self.run(
            self._in_uow(
                lambda uow: service.record_refund(
                    uow,
                    refund_id=refund,
                    supplier_order_id=sale.part,
                    amount=amount,
                    currency=sale.currency,
                    earned=True,
                    earned_before=sale.refunded,
                )
            )
        )
        before = allocate(sale.refunded, sale.weights)[0]
        sale.refunded += amount
        self.earned[(sale.supplier, sale.currency)] -= (
            allocate(sale.refunded, sale.weights)[0] - before
        )
        self.refunded[sale.currency] += amount

    @precondition(lambda self: any(not s.released for s in self.sales))
    @rule(pick=picks)
    def release(self, pick: int) -> None:
        OPERATIONS["release"] += 1
        waiting = [s for s in self.sales if not s.released]
        sale = waiting[pick % len(waiting)]
        self.run(
            self._in_uow(
                lambda uow: service.record_release(
                    uow,
                    supplier_order_id=sale.part,
                    currency=sale.currency,
                    earned_refunded=sale.refunded,
                )
            )
        )
        sale.released = True

    # --- fees -----------------------------------------------------------------------------

    @rule(supplier=st.sampled_from(SUPPLIERS), months_ago=st.integers(0, 3))
    def subscribe(self, supplier: str, months_ago: int) -> None:
        """Subscribed from `months_ago` months and a day ago: that many months and one more
        are billed at once; a second subscription is refused."""
        OPERATIONS["subscribe"] += 1
        start = add_months(utcnow() - timedelta(days=1), -months_ago)

        async def subscribe(uow: Any) -> Any:
            return await billing.subscribe(
                uow, supplier_id=supplier, plan_id=self.plan.id, start=start
            )

        if supplier in self.subscribed:
            with pytest.raises(Conflict):
                self.run(self._in_uow(subscribe))
            return
        found = self.run(self._in_uow(subscribe))
        self.subscribed[supplier] = found.id
        self.earned[(supplier, "EUR")] -= (months_ago + 1) * PLAN_PRICE

    @precondition(lambda self: self.subscribed)
    @rule(pick=picks)
    def unsubscribe(self, pick: int) -> None:
        OPERATIONS["unsubscribe"] += 1
        supplier = sorted(self.subscribed)[pick % len(self.subscribed)]
        subscription = self.subscribed.pop(supplier)
        self.run(
            self._in_uow(
                lambda uow: billing.end_subscription(
                    uow, subscription_id=subscription, supplier_id=supplier, at=None
                )
            )
        )

    @rule(
        supplier=st.sampled_from(SUPPLIERS),
        client=st.sampled_from(CLIENTS),
        currency=st.sampled_from(CURRENCIES),
        sponsored=st.booleans(),
    )
    def click(self, supplier: str, client: str, currency: str, sponsored: bool) -> None:
        OPERATIONS["click"] += 1
        offer = billing.Clicked(self.next_id("off"), supplier, CATEGORY, currency)
        placement = Placement.SPONSORED if sponsored else Placement.ORGANIC
        self.run(
            self._in_uow(
                lambda uow: billing.record_click(
                    uow, client_id=client, offer=offer, placement=placement
                )
            )
        )
        if sponsored:
            self.earned[(supplier, currency)] -= CLICK_BIDS[currency]

    # --- payouts --------------------------------------------------------------------------

    @rule(
        supplier=st.sampled_from(SUPPLIERS),
        currency=st.sampled_from(CURRENCIES),
        destination=st.sampled_from(DESTINATIONS),
    )
    def pay_out(self, supplier: str, currency: str, destination: str) -> None:
        OPERATIONS["pay_out"] += 1
        platform = self.platform

        async def open_one(uow: Any) -> Payout:
            await payouts.configure(
                uow,
                platform.payouts,
                supplier_id=supplier,
                destination=destination,
                schedule=Schedule.MANUAL,
                minimum=1,
            )
            return await payouts.open_payout(
                uow, supplier_id=supplier, currency=currency, trigger=PayoutTrigger.SUPPLIER
            )

        refused: Conflict | None = None
        try:
            opened = self.run(self._in_uow(open_one))
        except Conflict as error:
            refused = error
        if refused is not None:  # nothing (beyond what it owes) to pay out
            extra = refused.extra
            assert refused.code == "below_minimum", refused
            assert extra["available"] - min(extra["owed"], extra["available"]) < 1
            return
        sent = self.run(payouts.send(platform.uow, platform.payouts, opened))
        expected = {
            "acct_test_ok": PayoutStatus.PAID,
            "acct_test_fails": PayoutStatus.FAILED,
            "acct_test_pending": PayoutStatus.IN_TRANSIT,
        }[destination]
        assert sent.status is expected
        self.payouts[sent.id] = sent

    @precondition(
        lambda self: any(p.status is PayoutStatus.IN_TRANSIT for p in self.payouts.values())
    )
    @rule(pick=picks, paid=st.booleans())
    def provider_answers(self, pick: int, paid: bool) -> None:
        OPERATIONS["provider_answers"] += 1
        waiting = sorted(p for p, v in self.payouts.items() if v.status is PayoutStatus.IN_TRANSIT)
        payout_id = waiting[pick % len(waiting)]
        outcome = PayoutOutcome.PAID if paid else PayoutOutcome.FAILED
        settled = self.run(
            self._in_uow(
                lambda uow: payouts.settle(
                    uow,
                    payout_id,
                    outcome=outcome,
                    reference=None,
                    failure_code=None if paid else "account_closed",
                )
            )
        )
        assert settled is not None
        self.payouts[payout_id] = settled

    # --- the laws -------------------------------------------------------------------------

    @invariant()
    def the_books_hold(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        """Reads the postings made since the last check (the ledger only grows, a transaction
        at a time), so a check costs what the step wrote, not the whole ledger."""
        postings, accounts = tables.ledger_postings, tables.ledger_accounts
        async with self.platform.uow(write=False) as uow:
            conn = await uow.connection()
            new = (
                await conn.execute(
                    sa.select(
                        postings.c.pk,
                        postings.c.transaction_pk,
                        postings.c.amount,
                        accounts.c.purpose,
                        accounts.c.owner,
                        accounts.c.currency,
                    )
                    .join(accounts, accounts.c.pk == postings.c.account_pk)
                    .where(postings.c.pk > self.seen)
                    .order_by(postings.c.pk)
                )
            ).all()
            running = {
                (r.owner, r.currency): int(r.balance)
                for r in await conn.execute(
                    sa.select(accounts).where(accounts.c.purpose == str(Purpose.SUPPLIER_PAYABLE))
                )
            }
        per_transaction: Counter[int] = Counter()
        for row in new:
            key = AccountKey(Purpose(row.purpose), row.owner, row.currency)
            self.books[key] += row.amount
            per_transaction[row.transaction_pk] += row.amount
            self.seen = row.pk
        assert set(per_transaction.values()) <= {0}, per_transaction
        books = self.books
        for currency in CURRENCIES:
            mine = {k: v for k, v in books.items() if k.currency == currency}
            assert sum(mine.values()) == 0, currency
            open_payouts = [p for p in self.payouts.values() if p.currency == currency]
            in_transit = sum(
                p.amount
                for p in open_payouts
                if p.status in (PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT)
            )
            paid = sum(p.amount for p in open_payouts if p.status is PayoutStatus.PAID)
            platform_account = AccountKey(Purpose.PAYOUTS_IN_TRANSIT, PLATFORM, currency)
            assert -mine.get(platform_account, 0) == in_transit
            cash = mine.get(AccountKey(Purpose.CASH, PLATFORM, currency), 0)
            assert cash == self.captured[currency] - self.refunded[currency] - paid
        for key, raw in books.items():
            if key.purpose is Purpose.SUPPLIER_PAYABLE:
                assert raw <= 0 and running[(key.owner, key.currency)] == raw, key
            if key.purpose is Purpose.SUPPLIER_PENDING:
                assert raw <= 0, key
            if key.purpose is Purpose.SUPPLIER_RECEIVABLE:
                assert raw >= 0, key
        for supplier, currency in itertools.product(SUPPLIERS, CURRENCIES):
            balance = -sum(
                books.get(AccountKey(purpose, supplier, currency), 0)
                for purpose in (
                    Purpose.SUPPLIER_PENDING,
                    Purpose.SUPPLIER_PAYABLE,
                    Purpose.SUPPLIER_RECEIVABLE,
                )
            )
            taken = sum(
                p.amount
                for p in self.payouts.values()
                if p.supplier_id == supplier
                and p.currency == currency
                and p.status is not PayoutStatus.FAILED
            )
            assert balance + taken == self.earned[(supplier, currency)], (supplier, currency)


def drive(url: str, workdir: Path, *, operations: int, examples: int, steps: int) -> None:
    """Runs the machine until it has made at least `operations` operations."""
    OPERATIONS.clear()
    with asyncio.Runner() as runner:
        backend = FreshDatabases(url, workdir, seed_terms)
        runner.run(backend.start())

        class Bound(Books):
            def __init__(self) -> None:
                super().__init__(runner, backend)

        try:
            while sum(OPERATIONS.values()) < operations:
                run_state_machine_as_test(
                    Bound,
                    settings=settings(
                        max_examples=examples,
                        stateful_step_count=steps,
                        deadline=None,
                        suppress_health_check=list(HealthCheck),
                        database=None,
                    ),
                )
        finally:
            runner.run(backend.stop())
    assert sum(OPERATIONS.values()) >= operations
    assert operations < 5000 or set(OPERATIONS) == {
        "capture",
        "accept",
        "cancel",
        "refund",
        "release",
        "subscribe",
        "unsubscribe",
        "click",
        "pay_out",
        "provider_answers",
    }, OPERATIONS


def test_ten_thousand_operations_keep_the_books_exact_on_sqlite(
    sqlite_url: str, tmp_path: Path
) -> None:
    drive(
        sqlite_url,
        tmp_path,
        operations=10_000,
        examples=10,
        steps=500,
    )


@pytest.mark.postgres
def test_the_books_stay_exact_on_postgres(pg_url: str, tmp_path: Path) -> None:
    drive(pg_url, tmp_path, operations=600, examples=3, steps=200)
