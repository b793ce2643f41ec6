"""What ends or moves an order after it is placed: the customer cancelling, its hold expiring,
the supplier accepting (whole or per line), rejecting, fulfilling, completing; refunds of an
accepted sale. Each takes the order's lock first (see store.order_by_id), moves statuses only
through `transitions.transition`, and ends reservations in one stock pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from marketplane.access import service as access
from marketplane.access.model import Milestone
from marketplane.catalog import stock
from marketplane.db.uow import UnitOfWork
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed
from marketplane.money import billing
from marketplane.money import service as money
from marketplane.orders import refunds, service, store
from marketplane.orders.model import (
    SUPPLIER_ORDER_ENDS,
    Action,
    LineStatus,
    OrderKind,
    OrderLine,
    OrderStatus,
    Refund,
    SupplierOrder,
    SupplierOrderStatus,
    quantities_by_offer,
)
from marketplane.orders.transitions import SYSTEM, Actor, Detail, publish, transition


async def _end_lines(
    uow: UnitOfWork, *, sold: Sequence[OrderLine] = (), released: Sequence[OrderLine] = ()
) -> None:
    """Ends lines' reservations, `sold` sold and `released` back on sale, in one stock pass."""
    conn = await uow.connection()
    for lines, target in ((sold, LineStatus.SOLD), (released, LineStatus.RELEASED)):
        ids = [line.id for line in lines]
        if await store.set_line_status(
            conn, ids, current=LineStatus.RESERVED, target=target
        ) != len(ids):
            raise Conflict("the order changed meanwhile; try again", code="concurrent_change")
    await stock.settle(uow, sell=quantities_by_offer(sold), release=quantities_by_offer(released))


def _held(lines: Sequence[OrderLine], part_ids: set[str]) -> list[OrderLine]:
    """The lines of these parts that still hold stock."""
    return [
        line
        for line in lines
        if line.supplier_order_id in part_ids and line.status is LineStatus.RESERVED
    ]


async def cancel_order(
    uow: UnitOfWork, *, client_id: str, order_id: str, reason: str | None
) -> Detail:
    """The customer withdraws before any supplier accepted: every part is cancelled, its stock
    released and, if paid, refunded. Once a supplier has accepted, a refund is the way."""
    found = await service.client_order(uow, client_id=client_id, order_id=order_id, lock=True)
    actor = Actor("client", client_id)
    await transition(
        uow, OrderKind.ORDER, order_id, found.order.status, Action.CANCEL,
        actor=actor, reason=reason,
    )  # fmt: skip
    open_parts = [p for p in found.parts if p.status not in SUPPLIER_ORDER_ENDS]
    for part in open_parts:
        await transition(
            uow, OrderKind.SUPPLIER_ORDER, part.id, part.status, Action.CANCEL,
            actor=actor, reason=reason,
        )  # fmt: skip
    await _end_lines(uow, released=_held(found.lines, {p.id for p in open_parts}))
    paid = refunds.captured(found)
    if paid is not None:
        for part in open_parts:
            left = part.amount - part.refunded_amount
            await refunds.owe(uow, part, paid.id, left, "cancelled by the customer")
    await publish(uow)
    return await service.client_order(uow, client_id=client_id, order_id=order_id)


async def expire_order(uow: UnitOfWork, *, order_id: str) -> None:
    """An unpaid order whose hold has passed: its stock goes back on sale."""
    found = await service.any_order(uow, order_id=order_id, lock=True)
    if found.order.expires_at > utcnow():
        raise Conflict("the order's hold has not expired", code="not_expired")
    await transition(
        uow, OrderKind.ORDER, order_id, found.order.status, Action.EXPIRE, actor=SYSTEM
    )
    for part in found.parts:
        await transition(
            uow, OrderKind.SUPPLIER_ORDER, part.id, part.status, Action.EXPIRE, actor=SYSTEM
        )
    await _end_lines(uow, released=_held(found.lines, {p.id for p in found.parts}))
    await publish(uow)


async def _close_if_done(uow: UnitOfWork, order_id: str) -> None:
    """A paid order closes when its last part ends."""
    conn = await uow.connection()
    order = await store.order_by_id(conn, order_id)
    assert order is not None
    parts = await store.parts_of(conn, [order_id])
    if order.status is OrderStatus.PAID and all(p.status in SUPPLIER_ORDER_ENDS for p in parts):
        await transition(uow, OrderKind.ORDER, order_id, order.status, Action.CLOSE, actor=SYSTEM)


# --- the supplier's decisions ---------------------------------------------------------------


async def accept(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    supplier_order_id: str,
    decisions: Mapping[str, bool] | None,
    actor: Actor,
) -> tuple[Detail, SupplierOrder]:
    """Accepts a supplier order whole, or line by line (`decisions`: line id → accepted; lines
    not named are accepted). Accepted lines are sold; the others go back on sale and their
    amount back to the customer. Accepting no line is rejecting."""
    found, part = await service.supplier_order(
        uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id, lock=True
    )
    lines = [line for line in found.lines if line.supplier_order_id == part.id]
    decisions = dict(decisions or {})
    unknown = sorted(set(decisions) - {line.id for line in lines})
    if unknown:
        raise ValidationFailed(
            "some lines are not in this order",
            errors=[
                FieldError("lines", "unknown_line", f"no line {u} in this order") for u in unknown
            ],
        )
    taken = [line for line in lines if decisions.get(line.id, True)]
    if not taken:
        return await reject(
            uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id,
            reason="every line rejected", actor=actor,
        )  # fmt: skip
    refused = [line for line in lines if not decisions.get(line.id, True)]
    await transition(
        uow, OrderKind.SUPPLIER_ORDER, part.id, part.status, Action.ACCEPT,
        actor=actor, accepted_amount=sum(line.amount for line in taken),
    )  # fmt: skip
    await _end_lines(uow, sold=taken, released=refused)
    sold = [
        money.SoldLine(
            line.offer_id, line.category_id, line.quantity, line.amount, line.supplier_amount
        )
        for line in taken
    ]
    await money.record_acceptance(
        uow, supplier_order_id=part.id, supplier_id=part.supplier_id, client_id=part.client_id,
        currency=part.currency, lines=sold,
    )  # fmt: skip
    await billing.charge_for_order(
        uow, supplier_order_id=part.id, supplier_id=part.supplier_id, client_id=part.client_id,
        currency=part.currency, placed_at=found.order.created_at, lines=sold,
    )  # fmt: skip
    paid = refunds.captured(found)
    if refused and paid is not None:
        gone = sum(line.amount for line in refused)
        await refunds.owe(uow, part, paid.id, gone, "lines rejected by the supplier")
    await access.mark_milestone(
        uow, supplier_id=part.supplier_id, milestone=Milestone.FIRST_ORDER_ACCEPTED
    )
    await publish(uow)
    return await service.supplier_order(
        uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id
    )


async def reject(
    uow: UnitOfWork,
    *,
    supplier_id: str | None,
    supplier_order_id: str,
    reason: str | None,
    actor: Actor,
) -> tuple[Detail, SupplierOrder]:
    """Rejects a whole supplier order (its supplier, or its deadline): stock back on sale,
    the customer refunded."""
    found, part = await service.supplier_order(
        uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id, lock=True
    )
    await transition(
        uow, OrderKind.SUPPLIER_ORDER, part.id, part.status, Action.REJECT,
        actor=actor, reason=reason,
    )  # fmt: skip
    await _end_lines(uow, released=_held(found.lines, {part.id}))
    paid = refunds.captured(found)
    if paid is not None:
        left = part.amount - part.refunded_amount
        await refunds.owe(uow, part, paid.id, left, reason or "rejected by the supplier")
    await _close_if_done(uow, part.order_id)
    await publish(uow)
    return await service.supplier_order(
        uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id
    )


async def fulfil(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    supplier_order_id: str,
    tracking: Mapping[str, Any] | None,
    actor: Actor,
) -> tuple[Detail, SupplierOrder]:
    _, part = await service.supplier_order(
        uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id, lock=True
    )
    await transition(
        uow, OrderKind.SUPPLIER_ORDER, part.id, part.status, Action.FULFIL,
        actor=actor, tracking=dict(tracking) if tracking else None, fulfilled_at=utcnow(),
    )  # fmt: skip
    await publish(uow)
    return await service.supplier_order(
        uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id
    )


async def complete(
    uow: UnitOfWork, *, supplier_id: str, supplier_order_id: str, actor: Actor
) -> tuple[Detail, SupplierOrder]:
    _, part = await service.supplier_order(
        uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id, lock=True
    )
    await transition(
        uow, OrderKind.SUPPLIER_ORDER, part.id, part.status, Action.COMPLETE, actor=actor
    )
    await _close_if_done(uow, part.order_id)
    await publish(uow)
    return await service.supplier_order(
        uow, supplier_id=supplier_id, supplier_order_id=supplier_order_id
    )


# --- refunds --------------------------------------------------------------------------------

REFUNDABLE = frozenset(
    {SupplierOrderStatus.ACCEPTED, SupplierOrderStatus.FULFILLED, SupplierOrderStatus.COMPLETED}
)


async def refund(
    uow: UnitOfWork,
    *,
    found: Detail,
    supplier_order_id: str,
    amount: int | None,
    reason: str,
) -> Refund:
    """Gives back all or part of what was paid for an accepted supplier order (`found` read
    with `lock`). The stock stays sold (the goods left the supplier)."""
    part = next((p for p in found.parts if p.id == supplier_order_id), None)
    if part is None:
        raise NotFound(
            f"no supplier order {supplier_order_id} in this order", code="order_not_found"
        )
    if part.status not in REFUNDABLE:
        raise Conflict(
            f"a {part.status} supplier order is not refunded: only an accepted one is",
            code="invalid_transition",
            extra={"current_status": str(part.status)},
        )
    wanted = part.refundable if amount is None else amount
    if wanted <= 0:
        raise ValidationFailed("nothing is left to refund", code="nothing_to_refund")
    paid = refunds.captured(found)
    assert paid is not None  # an accepted supplier order was paid
    made = await refunds.owe(uow, part, paid.id, wanted, reason, earned=True)
    assert made is not None
    await publish(uow)
    return made
