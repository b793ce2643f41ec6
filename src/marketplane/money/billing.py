"""What the platform bills its suppliers: subscription plans, and sponsored placement.

**Subscriptions** are billed a month in advance, from the day they start, by the worker's
billing job (and at once for a month already begun). Months count from the start (a plan begun
on the 31st renews on each month's last day when it is shorter); an ended subscription bills
no month that begins after its end, and none is prorated.

**Sponsored placement**: a supplier bids on a category, per click or per order. Store search
shows the highest bidders' matching offers first, flagged `sponsored`. A click on a sponsored
placement, recorded by the front end, is charged at the click bid in force; an accepted supplier
order is charged at the order bid in force when the same client's customers clicked a
sponsored placement of one of its offers in the `ATTRIBUTION` window before ordering.

Every charge is taken from the supplier's payable as far as it goes, the rest owed by it (see
`service.supplier_charge`), and posted under a business key, so a retried job bills nothing
twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marketplane.db.uow import UnitOfWork
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import Conflict, NotFound, field_error
from marketplane.kernel.ids import has_prefix, new_id
from marketplane.money import billing_store, ledger, service
from marketplane.money.model import (
    PLATFORM,
    AccountKey,
    Bid,
    BidBasis,
    Placement,
    Plan,
    Purpose,
    Subscription,
    add_months,
    credit,
    entry,
)

NewUnitOfWork = Callable[[], UnitOfWork]
ATTRIBUTION = timedelta(hours=24)
BATCH = 100


async def _charge(
    uow: UnitOfWork, *, key: str, kind: str, supplier_id: str, currency: str, amount: int,
    revenue: Purpose, **memo: str,
) -> str:  # fmt: skip
    taken, floors = await service.supplier_charge(uow, supplier_id, currency, amount)
    earned = credit(AccountKey(revenue, PLATFORM, currency), amount)
    return await ledger.post(
        uow, entry(key, kind, [*taken, earned], supplier=supplier_id, **memo), floors=floors
    )


# --- subscriptions ----------------------------------------------------------------------------


async def create_plan(uow: UnitOfWork, *, name: str, amount: int, currency: str) -> Plan:
    plan = Plan(new_id("plan"), name, amount, currency, utcnow())
    await billing_store.insert_plan(await uow.connection(), plan)
    return plan


async def plans(uow: UnitOfWork) -> list[Plan]:
    return await billing_store.all_plans(await uow.connection())


async def subscribe(
    uow: UnitOfWork, *, supplier_id: str, plan_id: str, start: datetime | None
) -> Subscription:
    """Subscribes a supplier to a plan from `start` (default now); a month already begun is
    billed at once. A supplier has one subscription at a time: end it to change plans."""
    if not has_prefix(supplier_id, "sup"):
        raise field_error("supplier", "invalid_id", f"{supplier_id!r} is not a sup_ id")
    conn = await uow.connection()
    if await billing_store.plan_by_id(conn, plan_id) is None:
        raise field_error("plan", "unknown_plan", f"no plan {plan_id}")
    now = utcnow()
    active = Conflict(
        "the supplier is subscribed already: end its subscription first",
        code="subscription_active",
    )
    for current in await billing_store.subscriptions_of(conn, supplier_id):
        if current.ended_at is None or current.ended_at > now:
            raise active
    begins = start or now
    found = Subscription(new_id("sub"), supplier_id, plan_id, begins, None, begins)
    if not await billing_store.insert_subscription(conn, found, now):
        raise active  # another request subscribed it meanwhile
    await bill(uow, found.id, now)
    return found


async def end_subscription(
    uow: UnitOfWork, *, subscription_id: str, supplier_id: str | None, at: datetime | None
) -> Subscription:
    """Ends a subscription at `at` (default now): no month beginning after it is billed."""
    conn = await uow.connection()
    found = await billing_store.subscription_by_id(conn, subscription_id, lock=True)
    if found is None or (supplier_id is not None and found.supplier_id != supplier_id):
        raise NotFound(f"no subscription {subscription_id}")
    when = max(at or utcnow(), found.started_at)
    if not await billing_store.end_subscription(conn, subscription_id, when):
        raise Conflict("this subscription has ended already", code="subscription_ended")
    ended = await billing_store.subscription_by_id(conn, subscription_id)
    assert ended is not None
    return ended


async def subscriptions(uow: UnitOfWork, *, supplier_id: str | None) -> list[Subscription]:
    return await billing_store.subscriptions_of(await uow.connection(), supplier_id)


def _months(start: datetime, until: datetime) -> int:
    return (until.year - start.year) * 12 + until.month - start.month


async def bill(uow: UnitOfWork, subscription_id: str, now: datetime) -> int:
    """Bills every month of a subscription that has begun by `now`; returns how many."""
    conn = await uow.connection()
    found = await billing_store.subscription_by_id(conn, subscription_id, lock=True)
    if found is None:
        return 0
    plan = await billing_store.plan_by_id(conn, found.plan_id)
    assert plan is not None
    billed, until = 0, found.billed_until
    while until <= now and (found.ended_at is None or until < found.ended_at):
        following = add_months(found.started_at, _months(found.started_at, until) + 1)
        await _charge(
            uow, key=f"subscription:{found.id}:{until.date().isoformat()}",
            kind="subscription_fee", supplier_id=found.supplier_id, currency=plan.currency,
            amount=plan.amount, revenue=Purpose.SUBSCRIPTIONS, subscription=found.id,
            plan=plan.id, period_start=until.isoformat(), period_end=following.isoformat(),
        )  # fmt: skip
        if not await billing_store.advance_billing(conn, found.id, seen=until, to=following):
            break  # another process billed it meanwhile (the ledger key kept it once)
        until, billed = following, billed + 1
    return billed


async def bill_due(new_uow: NewUnitOfWork) -> int:
    """The billing job: every month due of every subscription; returns how many."""
    now = utcnow()
    async with new_uow() as uow:
        due = await billing_store.due_subscriptions(await uow.connection(), now, BATCH)
    billed = 0
    for subscription_id in due:
        async with new_uow() as uow:
            billed += await bill(uow, subscription_id, now)
            await uow.commit()
    return billed


# --- sponsored placement ----------------------------------------------------------------------


async def place_bid(
    uow: UnitOfWork, *, supplier_id: str, category_id: str, basis: BidBasis, amount: int,
    currency: str,
) -> Bid:  # fmt: skip
    """A bid from now on; it replaces the supplier's bid of that basis and currency on the
    category."""
    now = utcnow()
    conn = await uow.connection()
    await billing_store.end_bids(
        conn, supplier_id=supplier_id, category_id=category_id, basis=basis, at=now,
        currency=currency,
    )  # fmt: skip
    bid = Bid(new_id("bid"), supplier_id, category_id, basis, amount, currency, now, None)
    await billing_store.insert_bid(conn, bid, now)
    return bid


async def withdraw_bid(uow: UnitOfWork, *, supplier_id: str, bid_id: str) -> None:
    ended = await billing_store.end_bids(
        await uow.connection(), supplier_id=supplier_id, category_id="", basis=None,
        at=utcnow(), bid_id=bid_id,
    )  # fmt: skip
    if not ended:
        raise NotFound(f"no bid {bid_id} in force")


async def bids(uow: UnitOfWork, *, supplier_id: str | None, live: bool) -> list[Bid]:
    return await billing_store.bids(
        await uow.connection(), supplier_id=supplier_id, at=utcnow() if live else None
    )


async def sponsors(uow: UnitOfWork, category_ids: Sequence[str] | None) -> list[Bid]:
    """The bids in force (on these categories, or any), highest first: who store search
    places first."""
    return await billing_store.bids(await uow.connection(), category_ids=category_ids, at=utcnow())


@dataclass(frozen=True, slots=True)
class Clicked:
    offer_id: str
    supplier_id: str
    category_id: str
    currency: str


async def record_click(
    uow: UnitOfWork, *, client_id: str, offer: Clicked, placement: Placement
) -> dict[str, Any]:
    """A customer clicked an offer in a client's front end; a sponsored placement with a click
    bid in force is charged to the supplier."""
    conn = await uow.connection()
    now = utcnow()
    bid = None
    if placement is Placement.SPONSORED:
        found = await billing_store.bids(
            conn, supplier_id=offer.supplier_id, category_ids=[offer.category_id],
            basis=BidBasis.CLICK, at=now,
        )  # fmt: skip
        bid = next((b for b in found if b.currency == offer.currency), None)
    click_id = new_id("clk")
    amount = bid.amount if bid else 0
    await billing_store.insert_click(
        conn, id=click_id, client_id=client_id, offer_id=offer.offer_id,
        supplier_id=offer.supplier_id, category_id=offer.category_id, placement=str(placement),
        bid_id=bid.id if bid else None, amount=amount, currency=offer.currency, at=now,
    )  # fmt: skip
    if bid is not None:
        await _charge(
            uow, key=f"ad_click:{click_id}", kind="advertising_click",
            supplier_id=offer.supplier_id, currency=offer.currency, amount=amount,
            revenue=Purpose.ADVERTISING, click=click_id, bid=bid.id,
        )  # fmt: skip
    return {
        "id": click_id,
        "offer": offer.offer_id,
        "placement": str(placement),
        "charged": bid is not None,
        "at": now,
    }


async def charge_for_order(
    uow: UnitOfWork, *, supplier_order_id: str, supplier_id: str, client_id: str,
    currency: str, placed_at: datetime, lines: Sequence[service.SoldLine],
) -> str | None:  # fmt: skip
    """Charges the supplier's order bid for an accepted supplier order that followed a click on
    a sponsored placement of one of its offers; None when none applies."""
    conn = await uow.connection()
    found = await billing_store.bids(
        conn, supplier_id=supplier_id, category_ids=sorted({li.category_id for li in lines}),
        basis=BidBasis.ORDER, at=utcnow(),
    )  # fmt: skip
    found = [b for b in found if b.currency == currency]
    if not found:
        return None
    bid_categories = {b.category_id for b in found}
    offers = sorted({li.offer_id for li in lines if li.category_id in bid_categories})
    if not await billing_store.sponsored_click(
        conn, client_id=client_id, offer_ids=offers, since=placed_at - ATTRIBUTION,
        until=placed_at,
    ):  # fmt: skip
        return None
    bid = found[0]  # the highest
    return await _charge(
        uow, key=f"supplier_order:{supplier_order_id}:ad_order", kind="advertising_order",
        supplier_id=supplier_id, currency=currency, amount=bid.amount,
        revenue=Purpose.ADVERTISING, supplier_order=supplier_order_id, bid=bid.id,
    )  # fmt: skip
