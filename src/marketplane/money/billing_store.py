"""Billing tables and their SQL: subscription plans and subscriptions, sponsored-placement bids
and the clicks on them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplane.db.metadata import metadata
from marketplane.db.types import UtcDateTime
from marketplane.money.model import Bid, BidBasis, Plan, Subscription

Id = sa.String(40)

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("plan_id", Id, sa.ForeignKey("plans.id"), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Column("billed_until", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
ad_bids = sa.Table(
    "ad_bids",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("category_id", Id, nullable=False),
    sa.Column("basis", sa.String(10), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("effective_from", UtcDateTime, nullable=False),
    sa.Column("effective_to", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
ad_clicks = sa.Table(
    "ad_clicks",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("client_id", Id, nullable=False),
    sa.Column("offer_id", Id, nullable=False),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("category_id", Id, nullable=False),
    sa.Column("placement", sa.String(20), nullable=False),
    sa.Column("bid_id", Id, nullable=True),
    sa.Column("amount", sa.BigInteger, nullable=False),  # charged: 0 when nothing was
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)


def _plan(row: Any) -> Plan:
    return Plan(row.id, row.name, row.amount, row.currency, row.created_at)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        row.id, row.supplier_id, row.plan_id, row.started_at, row.ended_at, row.billed_until
    )


def _bid(row: Any) -> Bid:
    return Bid(
        id=row.id,
        supplier_id=row.supplier_id,
        category_id=row.category_id,
        basis=BidBasis(row.basis),
        amount=row.amount,
        currency=row.currency,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
    )


async def insert_plan(conn: AsyncConnection, plan: Plan) -> None:
    await conn.execute(
        plans.insert().values(
            id=plan.id, name=plan.name, amount=plan.amount, currency=plan.currency,
            created_at=plan.created_at,
        )
    )  # fmt: skip


async def plan_by_id(conn: AsyncConnection, plan_id: str) -> Plan | None:
    row = (await conn.execute(plans.select().where(plans.c.id == plan_id))).first()
    return _plan(row) if row else None


async def all_plans(conn: AsyncConnection) -> list[Plan]:
    return [_plan(r) for r in await conn.execute(plans.select().order_by(plans.c.id))]


async def insert_subscription(conn: AsyncConnection, found: Subscription, at: datetime) -> bool:
    """False when the supplier has an open subscription (one at a time, by a unique index)."""
    try:
        await conn.execute(
            subscriptions.insert().values(
                id=found.id, supplier_id=found.supplier_id, plan_id=found.plan_id,
                started_at=found.started_at, ended_at=found.ended_at,
                billed_until=found.billed_until, created_at=at,
            )
        )  # fmt: skip
    except IntegrityError:
        return False
    return True


async def subscriptions_of(conn: AsyncConnection, supplier_id: str | None) -> list[Subscription]:
    query = subscriptions.select().order_by(subscriptions.c.id)
    if supplier_id is not None:
        query = query.where(subscriptions.c.supplier_id == supplier_id)
    return [_subscription(r) for r in await conn.execute(query)]


async def subscription_by_id(
    conn: AsyncConnection, subscription_id: str, *, lock: bool = False
) -> Subscription | None:
    query = subscriptions.select().where(subscriptions.c.id == subscription_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _subscription(row) if row else None


async def end_subscription(conn: AsyncConnection, subscription_id: str, at: datetime) -> bool:
    result = await conn.execute(
        subscriptions.update()
        .where(subscriptions.c.id == subscription_id, subscriptions.c.ended_at.is_(None))
        .values(ended_at=at)
    )
    return bool(result.rowcount)


async def due_subscriptions(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Subscriptions with a month to bill: it has begun, and began before the end."""
    rows = await conn.execute(
        sa.select(subscriptions.c.id)
        .where(
            subscriptions.c.billed_until <= now,
            sa.or_(
                subscriptions.c.ended_at.is_(None),
                subscriptions.c.billed_until < subscriptions.c.ended_at,
            ),
        )
        .order_by(subscriptions.c.billed_until)
        .limit(limit)
    )
    return [r.id for r in rows]


async def advance_billing(
    conn: AsyncConnection, subscription_id: str, *, seen: datetime, to: datetime
) -> bool:
    """Marks a month billed, only from the month this process saw."""
    result = await conn.execute(
        subscriptions.update()
        .where(subscriptions.c.id == subscription_id, subscriptions.c.billed_until == seen)
        .values(billed_until=to)
    )
    return bool(result.rowcount)


async def insert_bid(conn: AsyncConnection, bid: Bid, at: datetime) -> None:
    await conn.execute(
        ad_bids.insert().values(
            id=bid.id, supplier_id=bid.supplier_id, category_id=bid.category_id,
            basis=str(bid.basis), amount=bid.amount, currency=bid.currency,
            effective_from=bid.effective_from, effective_to=bid.effective_to, created_at=at,
        )
    )  # fmt: skip


async def end_bids(
    conn: AsyncConnection, *, supplier_id: str, category_id: str, basis: BidBasis | None,
    at: datetime, bid_id: str | None = None, currency: str | None = None,
) -> int:  # fmt: skip
    """Ends a supplier's bids in force on a category (of one basis and currency), or one bid,
    at `at`."""
    conditions = [
        ad_bids.c.supplier_id == supplier_id,
        sa.or_(ad_bids.c.effective_to.is_(None), ad_bids.c.effective_to > at),
    ]
    if bid_id is not None:
        conditions.append(ad_bids.c.id == bid_id)
    else:
        conditions.append(ad_bids.c.category_id == category_id)
    if basis is not None:
        conditions.append(ad_bids.c.basis == str(basis))
    if currency is not None:
        conditions.append(ad_bids.c.currency == currency)
    result = await conn.execute(ad_bids.update().where(*conditions).values(effective_to=at))
    return int(result.rowcount)


async def bids(
    conn: AsyncConnection,
    *,
    supplier_id: str | None = None,
    category_ids: Sequence[str] | None = None,
    basis: BidBasis | None = None,
    at: datetime | None = None,
) -> list[Bid]:
    """Bids, those in force at `at` when given, highest first."""
    query = sa.select(ad_bids).order_by(ad_bids.c.amount.desc(), ad_bids.c.id)
    if supplier_id is not None:
        query = query.where(ad_bids.c.supplier_id == supplier_id)
    if category_ids is not None:
        query = query.where(ad_bids.c.category_id.in_(list(category_ids)))
    if basis is not None:
        query = query.where(ad_bids.c.basis == str(basis))
    if at is not None:
        query = query.where(
            ad_bids.c.effective_from <= at,
            sa.or_(ad_bids.c.effective_to.is_(None), ad_bids.c.effective_to > at),
        )
    return [_bid(r) for r in await conn.execute(query)]


async def insert_click(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(ad_clicks.insert().values(**values))


async def sponsored_click(
    conn: AsyncConnection, *, client_id: str, offer_ids: Sequence[str], since: datetime,
    until: datetime,
) -> bool:  # fmt: skip
    """Whether the client's customers clicked a sponsored placement of one of these offers in
    the window."""
    row = (
        await conn.execute(
            sa.select(ad_clicks.c.id)
            .where(
                ad_clicks.c.client_id == client_id,
                ad_clicks.c.offer_id.in_(list(offer_ids)),
                ad_clicks.c.placement == "sponsored",
                ad_clicks.c.at >= since,
                ad_clicks.c.at <= until,
            )
            .limit(1)
        )
    ).first()
    return row is not None
