"""The one way an order changes status: `transition` validates the move against its table,
makes it only if the order is still where it was read (so of two concurrent moves one wins and
the other is a 409 with the current status), records who, when and why, and queues the event.
`publish` writes the queued events in the same transaction, each with the order as it stands
after everything the use case changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplane.db.uow import UnitOfWork
from marketplane.events import service as events
from marketplane.events.model import EventType, NewEvent
from marketplane.kernel.clock import rfc3339, utcnow
from marketplane.kernel.errors import InvalidTransition
from marketplane.orders import store
from marketplane.orders.model import (
    Action,
    Order,
    OrderKind,
    OrderLine,
    Payment,
    Refund,
    SupplierOrder,
    next_status,
)

_QUEUED = "orders.queued_events"
_MOVED = "orders.moved"  # orders whose own row changed (its version moved already)

# What a client and the supplier are told when a supplier order reaches a status.
PART_EVENTS: dict[str, tuple[EventType | None, EventType | None]] = {
    "awaiting_acceptance": (None, EventType.SUPPLIER_ORDER_CREATED),
    "accepted": (EventType.ORDER_ACCEPTED, EventType.SUPPLIER_ORDER_ACCEPTED),
    "rejected": (EventType.ORDER_REJECTED, EventType.SUPPLIER_ORDER_REJECTED),
    "fulfilled": (EventType.ORDER_FULFILLED, EventType.SUPPLIER_ORDER_FULFILLED),
    "completed": (EventType.ORDER_COMPLETED, EventType.SUPPLIER_ORDER_COMPLETED),
    "cancelled": (None, EventType.SUPPLIER_ORDER_CANCELLED),
    "expired": (None, None),
}
ORDER_EVENTS: dict[str, EventType] = {
    "placed": EventType.ORDER_PLACED,
    "paid": EventType.ORDER_PAID,
    "expired": EventType.ORDER_EXPIRED,
    "cancelled": EventType.ORDER_CANCELLED,
    "closed": EventType.ORDER_CLOSED,
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a client, a supplier, an operator, the platform's jobs, a provider."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


SYSTEM = Actor("system", "marketplane")


async def transition(
    uow: UnitOfWork,
    kind: OrderKind,
    object_id: str,
    current: str,
    action: Action,
    *,
    actor: Actor,
    reason: str | None = None,
    **values: Any,
) -> Any:
    """Moves one order (of `kind`) from `current` by `action`; returns its row after."""
    target = next_status(kind, current, action)
    conn = await uow.connection()
    now = utcnow()
    row = await store.move(conn, kind, object_id, current=current, target=target, at=now, **values)
    if row is None:
        table = store.TABLES[kind]
        found = (
            await conn.execute(
                table.select().with_only_columns(table.c.status).where(table.c.id == object_id)
            )
        ).scalar()
        raise InvalidTransition(
            f"cannot {action} this {kind.replace('_', ' ')}: it is {found} now",
            extra={"current_status": found},
        )
    await store.record_history(
        conn,
        [
            {
                "kind": str(kind),
                "object_id": object_id,
                "from_status": current,
                "to_status": target,
                "action": str(action),
                "actor": str(actor),
                "reason": reason,
                "at": now,
            }
        ],
    )
    order_id = row.id if kind is OrderKind.ORDER else row.order_id
    if kind is OrderKind.ORDER:
        moved(uow, order_id)
        queue(uow, order_id, client=ORDER_EVENTS.get(target))
    else:
        client_type, supplier_type = PART_EVENTS[target]
        queue(uow, order_id, client=client_type, supplier=supplier_type, part=object_id)
    return row


def queue(
    uow: UnitOfWork,
    order_id: str,
    *,
    client: EventType | None = None,
    supplier: EventType | None = None,
    part: str | None = None,
) -> None:
    """Queues events about an order: `client` to its client, `supplier` to the supplier of
    `part`. Written by `publish`."""
    queued: list[tuple[str, EventType | None, EventType | None, str | None]] = uow.state.setdefault(
        _QUEUED, []
    )
    queued.append((order_id, client, supplier, part))


def moved(uow: UnitOfWork, order_id: str) -> None:
    """Notes that the order's own row changed in this transaction (and its version with it)."""
    uow.state.setdefault(_MOVED, set()).add(order_id)


@dataclass(frozen=True, slots=True)
class Detail:
    order: Order
    parts: list[SupplierOrder]
    lines: list[OrderLine]
    payments: list[Payment]
    refunds: list[Refund]


async def detail(uow: UnitOfWork, order: Order) -> Detail:
    conn = await uow.connection()
    return Detail(
        order=order,
        parts=await store.parts_of(conn, [order.id]),
        lines=await store.lines_of(conn, order_ids=[order.id]),
        payments=await store.payments_of(conn, order.id),
        refunds=await store.refunds_of(conn, order.id),
    )


async def publish(uow: UnitOfWork) -> dict[str, Detail]:
    """Writes the queued events; returns the orders they are about, as they now stand. A
    client's event carries its whole order as the client sees it; the order's version moves
    with every change to any of its parts, so a client can order what it receives."""
    queued = uow.state.pop(_QUEUED, [])
    done: set[str] = uow.state.pop(_MOVED, set())
    if not queued:
        return {}
    conn = await uow.connection()
    now = utcnow()
    details: dict[str, Detail] = {}
    written: list[NewEvent] = []
    seen: set[tuple[str, str]] = set()
    for order_id, client_type, supplier_type, part_id in queued:
        if order_id not in details:
            if order_id not in done:
                await store.touch(conn, order_id, now)
            order = await store.order_by_id(conn, order_id)
            assert order is not None
            details[order_id] = await detail(uow, order)
        found = details[order_id]
        if client_type is not None and (order_id, client_type) not in seen:
            seen.add((order_id, client_type))
            written.append(
                NewEvent(
                    type=client_type,
                    object_id=order_id,
                    version=found.order.version,
                    payload=present_order(found),
                    store_type=client_type,
                    client_id=found.order.client_id,
                )
            )
        if supplier_type is not None and part_id is not None:
            part = next(p for p in found.parts if p.id == part_id)
            written.append(
                NewEvent(
                    type=supplier_type,
                    object_id=part.id,
                    version=part.version,
                    payload=present_part(found, part),
                    supplier_id=part.supplier_id,
                )
            )
    await events.emit(uow, *written)
    return details  # each order as the events show it: what the use case answers with


# --- presentation ---------------------------------------------------------------------------


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def _when(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def _line(line: OrderLine, *, supplier_side: bool) -> dict[str, Any]:
    unit = line.supplier_unit_price if supplier_side else line.unit_price
    shown: dict[str, Any] = {
        "id": line.id,
        "offer": line.offer_id,
        "title": line.title,
        "quantity": line.quantity,
        "unit_price": _money(unit, line.currency),
        "amount": _money(unit * line.quantity, line.currency),
        "status": str(line.status),
    }
    if supplier_side:
        shown["sku"] = line.sku
    return shown


def present_order(found: Detail) -> dict[str, Any]:
    """A customer order as its client sees it: its customer's prices, never supplier-private
    data (the suppliers' own prices, other clients)."""
    order = found.order
    return {
        "id": order.id,
        "customer_ref": order.customer_ref,
        "shipping": order.shipping,
        "status": str(order.status),
        "total": _money(order.amount, order.currency),
        "refunded": _money(order.refunded_amount, order.currency),
        "expires_at": rfc3339(order.expires_at),
        "supplier_orders": [
            {
                "id": part.id,
                "supplier": part.supplier_id,
                "status": str(part.status),
                "total": _money(part.amount, part.currency),
                "refunded": _money(part.refunded_amount, part.currency),
                "accept_by": _when(part.accept_by),
                "tracking": part.tracking,
                "lines": [
                    _line(line, supplier_side=False)
                    for line in found.lines
                    if line.supplier_order_id == part.id
                ],
            }
            for part in found.parts
        ],
        "payment": _payment(found.payments[-1]) if found.payments else None,
        "refunds": [_refund(r) for r in found.refunds],
        "version": order.version,
        "created_at": rfc3339(order.created_at),
        "updated_at": rfc3339(order.updated_at),
    }


def present_part(found: Detail, part: SupplierOrder) -> dict[str, Any]:
    """A supplier order as its supplier sees it: its own prices, what to ship and where; not
    the client's markup."""
    lines = [line for line in found.lines if line.supplier_order_id == part.id]
    total = sum(line.supplier_amount for line in lines)
    accepted = sum(line.supplier_amount for line in lines if line.status == "sold")
    return {
        "id": part.id,
        "order": part.order_id,
        "customer_ref": found.order.customer_ref,
        "shipping": found.order.shipping,
        "status": str(part.status),
        "total": _money(total, part.currency),
        "accepted_total": _money(accepted, part.currency),
        "accept_by": _when(part.accept_by),
        "tracking": part.tracking,
        "fulfilled_at": _when(part.fulfilled_at),
        "released_at": _when(part.released_at),
        "lines": [_line(line, supplier_side=True) for line in lines],
        "version": part.version,
        "created_at": rfc3339(part.created_at),
        "updated_at": rfc3339(part.updated_at),
    }


def _payment(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "provider": payment.provider,
        "status": str(payment.status),
        "amount": _money(payment.amount, payment.currency),
        "failure_code": payment.failure_code,
        "created_at": rfc3339(payment.created_at),
    }


def _refund(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "supplier_order": refund.supplier_order_id,
        "payment": refund.payment_id,
        "amount": _money(refund.amount, refund.currency),
        "reason": refund.reason,
        "status": str(refund.status),
        "failure_code": refund.failure_code,
        "created_at": rfc3339(refund.created_at),
    }
