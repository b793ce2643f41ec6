"""Order tables and their SQL. Status changes are conditional updates (`WHERE status = :from`):
of two processes moving one order at once, exactly one moves it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplane.db import upsert
from marketplane.db.metadata import metadata
from marketplane.db.types import BigPk, Json, UtcDateTime
from marketplane.orders.model import (
    LineStatus,
    Order,
    OrderKind,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    SupplierOrder,
    SupplierOrderStatus,
)

Id = sa.String(40)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("client_id", Id, nullable=False),
    sa.Column("customer_ref", sa.String(200), nullable=False),
    sa.Column("shipping", Json, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("refunded_amount", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
supplier_orders = sa.Table(
    "supplier_orders",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("client_id", Id, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("accepted_amount", sa.BigInteger, nullable=False),
    sa.Column("refunded_amount", sa.BigInteger, nullable=False),
    sa.Column("accept_by", UtcDateTime, nullable=True),
    sa.Column("tracking", Json, nullable=True),
    sa.Column("fulfilled_at", UtcDateTime, nullable=True),
    sa.Column("released_at", UtcDateTime, nullable=True),  # its money moved from pending
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("supplier_order_id", Id, sa.ForeignKey("supplier_orders.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("offer_id", Id, nullable=False),
    sa.Column("category_id", Id, nullable=False),
    sa.Column("sku", sa.String(200), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", sa.BigInteger, nullable=False),
    sa.Column("supplier_unit_price", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
)
order_history = sa.Table(
    "order_history",
    metadata,
    sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("object_id", Id, nullable=False),
    sa.Column("from_status", sa.String(20), nullable=True),
    sa.Column("to_status", sa.String(20), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(60), nullable=False),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("at", UtcDateTime, nullable=False),
)
payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reference", sa.String(200), nullable=True),
    sa.Column("failure_code", sa.String(60), nullable=True),
    sa.Column("fee", sa.BigInteger, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
    # None: a whole payment returned (taken twice), not any supplier order's money
    sa.Column("supplier_order_id", Id, sa.ForeignKey("supplier_orders.id"), nullable=True),
    sa.Column("payment_id", Id, sa.ForeignKey("payments.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("earned", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reference", sa.String(200), nullable=True),
    sa.Column("failure_code", sa.String(60), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
payment_callbacks = sa.Table(
    "payment_callbacks",
    metadata,
    sa.Column("provider", sa.String(40), primary_key=True),
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
)

TABLES = {OrderKind.ORDER: orders, OrderKind.SUPPLIER_ORDER: supplier_orders}


def _order(row: Any) -> Order:
    return Order(
        id=row.id,
        client_id=row.client_id,
        customer_ref=row.customer_ref,
        shipping=row.shipping,
        status=OrderStatus(row.status),
        currency=row.currency,
        amount=row.amount,
        refunded_amount=row.refunded_amount,
        expires_at=row.expires_at,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _supplier_order(row: Any) -> SupplierOrder:
    return SupplierOrder(
        id=row.id,
        order_id=row.order_id,
        supplier_id=row.supplier_id,
        client_id=row.client_id,
        status=SupplierOrderStatus(row.status),
        currency=row.currency,
        amount=row.amount,
        accepted_amount=row.accepted_amount,
        refunded_amount=row.refunded_amount,
        accept_by=row.accept_by,
        tracking=row.tracking,
        fulfilled_at=row.fulfilled_at,
        released_at=row.released_at,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _line(row: Any) -> OrderLine:
    return OrderLine(
        id=row.id,
        order_id=row.order_id,
        supplier_order_id=row.supplier_order_id,
        offer_id=row.offer_id,
        category_id=row.category_id,
        sku=row.sku,
        title=row.title,
        quantity=row.quantity,
        unit_price=row.unit_price,
        supplier_unit_price=row.supplier_unit_price,
        currency=row.currency,
        status=LineStatus(row.status),
    )


def _payment(row: Any) -> Payment:
    return Payment(
        id=row.id,
        order_id=row.order_id,
        provider=row.provider,
        status=PaymentStatus(row.status),
        amount=row.amount,
        currency=row.currency,
        reference=row.reference,
        failure_code=row.failure_code,
        fee=row.fee,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _refund(row: Any) -> Refund:
    return Refund(
        id=row.id,
        order_id=row.order_id,
        supplier_order_id=row.supplier_order_id,
        payment_id=row.payment_id,
        amount=row.amount,
        currency=row.currency,
        reason=row.reason,
        earned=row.earned,
        status=RefundStatus(row.status),
        reference=row.reference,
        failure_code=row.failure_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# --- writing --------------------------------------------------------------------------------


async def insert_order(
    conn: AsyncConnection,
    order: dict[str, Any],
    parts: list[dict[str, Any]],
    lines: list[dict[str, Any]],
) -> None:
    await conn.execute(orders.insert(), [order])
    await conn.execute(supplier_orders.insert(), parts)
    await conn.execute(order_lines.insert(), lines)


async def move(
    conn: AsyncConnection,
    kind: OrderKind,
    object_id: str,
    *,
    current: str,
    target: str,
    at: datetime,
    **values: Any,
) -> Any:
    """Moves one order from `current` to `target` if it is still in `current`; returns the
    row after, or None when another change got there first."""
    table = TABLES[kind]
    return (
        await conn.execute(
            table.update()
            .where(table.c.id == object_id, table.c.status == current)
            .values(status=target, version=table.c.version + 1, updated_at=at, **values)
            .returning(*table.c)
        )
    ).first()


async def touch(conn: AsyncConnection, order_id: str, at: datetime) -> None:
    """A part of the order changed: the order's version moves too."""
    await conn.execute(
        orders.update()
        .where(orders.c.id == order_id)
        .values(version=orders.c.version + 1, updated_at=at)
    )


async def record_history(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(order_history.insert(), rows)


async def set_line_status(
    conn: AsyncConnection, line_ids: Sequence[str], *, current: LineStatus, target: LineStatus
) -> int:
    if not line_ids:
        return 0
    result = await conn.execute(
        order_lines.update()
        .where(order_lines.c.id.in_(list(line_ids)), order_lines.c.status == str(current))
        .values(status=str(target))
    )
    return int(result.rowcount)


async def add_to(conn: AsyncConnection, table: sa.Table, object_id: str, **amounts: int) -> None:
    """Adds to amount columns (refunded, accepted) in place: never read-then-write."""
    await conn.execute(
        table.update()
        .where(table.c.id == object_id)
        .values({name: table.c[name] + value for name, value in amounts.items()})
    )


async def refund_within(
    conn: AsyncConnection, supplier_order_id: str, amount: int, at: datetime
) -> bool:
    """Counts `amount` as refunded if the supplier order still has that much to refund (what
    was paid for it less what went back already): checked and counted in one statement."""
    result = await conn.execute(
        supplier_orders.update()
        .where(
            supplier_orders.c.id == supplier_order_id,
            supplier_orders.c.refunded_amount + amount <= supplier_orders.c.amount,
        )
        .values(refunded_amount=supplier_orders.c.refunded_amount + amount, updated_at=at)
    )
    return bool(result.rowcount)


async def insert_payment(conn: AsyncConnection, payment: Payment) -> None:
    await conn.execute(
        payments.insert().values(
            id=payment.id,
            order_id=payment.order_id,
            provider=payment.provider,
            status=str(payment.status),
            amount=payment.amount,
            currency=payment.currency,
            reference=payment.reference,
            failure_code=payment.failure_code,
            fee=payment.fee,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
        )
    )


async def settle_payment(
    conn: AsyncConnection,
    payment_id: str,
    *,
    current: Sequence[PaymentStatus],
    status: PaymentStatus,
    reference: str | None,
    failure_code: str | None,
    at: datetime,
    fee: int | None = None,
) -> bool:
    result = await conn.execute(
        payments.update()
        .where(payments.c.id == payment_id, payments.c.status.in_([str(s) for s in current]))
        .values(
            status=str(status),
            reference=reference,
            failure_code=failure_code,
            fee=fee,
            updated_at=at,
        )
    )
    return bool(result.rowcount)


async def insert_refund(conn: AsyncConnection, refund: Refund) -> None:
    await conn.execute(
        refunds.insert().values(
            id=refund.id,
            order_id=refund.order_id,
            supplier_order_id=refund.supplier_order_id,
            payment_id=refund.payment_id,
            amount=refund.amount,
            currency=refund.currency,
            reason=refund.reason,
            earned=refund.earned,
            status=str(refund.status),
            reference=None,
            failure_code=None,
            created_at=refund.created_at,
            updated_at=refund.updated_at,
        )
    )


async def settle_refund(
    conn: AsyncConnection,
    refund_id: str,
    *,
    status: RefundStatus,
    reference: str | None,
    failure_code: str | None,
    at: datetime,
) -> bool:
    result = await conn.execute(
        refunds.update()
        .where(refunds.c.id == refund_id, refunds.c.status == str(RefundStatus.PENDING))
        .values(status=str(status), reference=reference, failure_code=failure_code, updated_at=at)
    )
    return bool(result.rowcount)


async def note_callback(conn: AsyncConnection, provider: str, event_id: str, at: datetime) -> bool:
    """Records a provider callback; False when it was handled before (providers resend)."""
    result = await conn.execute(
        upsert.insert(conn, payment_callbacks)
        .values(provider=provider, event_id=event_id, received_at=at)
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount)


# --- reading --------------------------------------------------------------------------------


async def order_by_id(conn: AsyncConnection, order_id: str, *, lock: bool = False) -> Order | None:
    """`lock`: hold the order's row to the end of the transaction (PostgreSQL; SQLite's single
    writer holds everything). Every use case that changes an order takes it first, before any
    of its supplier orders or offers, so no two of them wait for each other in a circle."""
    query = orders.select().where(orders.c.id == order_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _order(row) if row else None


async def orders_by_ids(conn: AsyncConnection, order_ids: Sequence[str]) -> list[Order]:
    if not order_ids:
        return []
    rows = await conn.execute(orders.select().where(orders.c.id.in_(sorted(set(order_ids)))))
    return [_order(r) for r in rows]


async def supplier_order_by_id(
    conn: AsyncConnection, supplier_order_id: str
) -> SupplierOrder | None:
    row = (
        await conn.execute(
            supplier_orders.select().where(supplier_orders.c.id == supplier_order_id)
        )
    ).first()
    return _supplier_order(row) if row else None


async def parts_of(conn: AsyncConnection, order_ids: Sequence[str]) -> list[SupplierOrder]:
    if not order_ids:
        return []
    rows = await conn.execute(
        supplier_orders.select()
        .where(supplier_orders.c.order_id.in_(list(order_ids)))
        .order_by(supplier_orders.c.id)
    )
    return [_supplier_order(r) for r in rows]


async def lines_of(
    conn: AsyncConnection, *, order_ids: Sequence[str] = (), part_ids: Sequence[str] = ()
) -> list[OrderLine]:
    if not order_ids and not part_ids:
        return []
    where = (
        order_lines.c.order_id.in_(list(order_ids))
        if order_ids
        else order_lines.c.supplier_order_id.in_(list(part_ids))
    )
    rows = await conn.execute(
        order_lines.select().where(where).order_by(order_lines.c.order_id, order_lines.c.position)
    )
    return [_line(r) for r in rows]


async def payments_of(conn: AsyncConnection, order_id: str) -> list[Payment]:
    rows = await conn.execute(
        payments.select().where(payments.c.order_id == order_id).order_by(payments.c.id)
    )
    return [_payment(r) for r in rows]


async def payment_by_id(conn: AsyncConnection, payment_id: str) -> Payment | None:
    row = (await conn.execute(payments.select().where(payments.c.id == payment_id))).first()
    return _payment(row) if row else None


async def refunds_of(conn: AsyncConnection, order_id: str) -> list[Refund]:
    rows = await conn.execute(
        refunds.select().where(refunds.c.order_id == order_id).order_by(refunds.c.id)
    )
    return [_refund(r) for r in rows]


async def earned_refunded(conn: AsyncConnection, supplier_order_id: str) -> int:
    """What refunds of an accepted sale have given back so far."""
    total = await conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0)).where(
            refunds.c.supplier_order_id == supplier_order_id,
            refunds.c.earned.is_(True),
            refunds.c.status == str(RefundStatus.SUCCEEDED),
        )
    )
    return int(total.scalar_one())


async def refunds_owed(conn: AsyncConnection, supplier_order_id: str) -> bool:
    """Whether refunds of a supplier order are owed but not yet sent."""
    row = (
        await conn.execute(
            sa.select(refunds.c.id)
            .where(
                refunds.c.supplier_order_id == supplier_order_id,
                refunds.c.status == str(RefundStatus.PENDING),
            )
            .limit(1)
        )
    ).first()
    return row is not None


async def pending_refunds(conn: AsyncConnection, limit: int) -> list[Refund]:
    rows = await conn.execute(
        refunds.select()
        .where(refunds.c.status == str(RefundStatus.PENDING))
        .order_by(refunds.c.created_at)
        .limit(limit)
    )
    return [_refund(r) for r in rows]


async def history_of(conn: AsyncConnection, object_ids: Sequence[str]) -> list[Any]:
    rows = await conn.execute(
        order_history.select()
        .where(order_history.c.object_id.in_(list(object_ids)))
        .order_by(order_history.c.pk)
    )
    return list(rows)


async def list_orders(
    conn: AsyncConnection,
    *,
    client_id: str | None,
    status: str | None,
    before: str | None,
    limit: int,
) -> list[Order]:
    query = orders.select().order_by(orders.c.id.desc()).limit(limit)
    if client_id is not None:
        query = query.where(orders.c.client_id == client_id)
    if status is not None:
        query = query.where(orders.c.status == status)
    if before is not None:
        query = query.where(orders.c.id < before)
    return [_order(r) for r in await conn.execute(query)]


async def list_supplier_orders(
    conn: AsyncConnection,
    *,
    supplier_id: str | None,
    statuses: Sequence[str],
    before: str | None,
    limit: int,
) -> list[SupplierOrder]:
    query = (
        supplier_orders.select()
        .where(supplier_orders.c.status.in_(list(statuses)))
        .order_by(supplier_orders.c.id.desc())
        .limit(limit)
    )
    if supplier_id is not None:
        query = query.where(supplier_orders.c.supplier_id == supplier_id)
    if before is not None:
        query = query.where(supplier_orders.c.id < before)
    return [_supplier_order(r) for r in await conn.execute(query)]


async def due(
    conn: AsyncConnection, kind: OrderKind, *, status: str, column: str, now: datetime, limit: int
) -> list[str]:
    """Ids of orders of `kind` in `status` whose `column` deadline has passed."""
    table = TABLES[kind]
    rows = await conn.execute(
        sa.select(table.c.id)
        .where(table.c.status == status, table.c[column] <= now)
        .order_by(table.c[column])
        .limit(limit)
    )
    return [r.id for r in rows]


async def releasable(conn: AsyncConnection, *, fulfilled_before: datetime, limit: int) -> list[Any]:
    """Supplier orders fulfilled before the time given whose money is still held."""
    rows = await conn.execute(
        sa.select(supplier_orders.c.id, supplier_orders.c.order_id, supplier_orders.c.currency)
        .where(
            supplier_orders.c.released_at.is_(None),
            supplier_orders.c.fulfilled_at.is_not(None),
            supplier_orders.c.fulfilled_at <= fulfilled_before,
        )
        .order_by(supplier_orders.c.fulfilled_at)
        .limit(limit)
    )
    return list(rows)


async def mark_released(conn: AsyncConnection, supplier_order_id: str, at: datetime) -> bool:
    result = await conn.execute(
        supplier_orders.update()
        .where(supplier_orders.c.id == supplier_order_id, supplier_orders.c.released_at.is_(None))
        .values(released_at=at)
    )
    return bool(result.rowcount)
