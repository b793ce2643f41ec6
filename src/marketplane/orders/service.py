"""Order use cases: reading, placing, paying, and the answers of payment providers (what
follows them is in `decisions`).

Every status change goes through `transitions.transition`; every stock move through
`catalog.stock`, in the same transaction. Refunds are recorded with the change that owes them
and sent to the provider after it commits (`jobs.send_refunds`), so a provider that is down
never undoes a decision."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from marketplane.access import service as access
from marketplane.access.model import ClientView
from marketplane.catalog import stock
from marketplane.db.uow import UnitOfWork
from marketplane.events.model import EventType
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import (
    Conflict,
    FieldError,
    InvalidTransition,
    MarketplaneError,
    NotFound,
    ValidationFailed,
)
from marketplane.kernel.ids import new_id
from marketplane.kernel.money import apply_markup
from marketplane.money import service as money
from marketplane.orders import refunds, store
from marketplane.orders.model import (
    SUPPLIER_SEES,
    Action,
    LineRequest,
    LineStatus,
    OrderKind,
    OrderStatus,
    Payment,
    PaymentStatus,
    SupplierOrder,
    SupplierOrderStatus,
    quantities_by_offer,
)
from marketplane.orders.payments import Answer, Outcome, PaymentProvider
from marketplane.orders.transitions import (
    SYSTEM,
    Detail,
    detail,
    moved,
    publish,
    queue,
    transition,
)

NewUnitOfWork = Callable[[], UnitOfWork]
MAX_LINES = 100


class PaymentFailed(MarketplaneError):
    status = 402
    title = "Payment failed"


# --- reading --------------------------------------------------------------------------------


async def client_order(
    uow: UnitOfWork, *, client_id: str, order_id: str, lock: bool = False
) -> Detail:
    """One of the client's own orders; any other is not found (never "forbidden": that would
    tell the order exists). `lock`: for changing it (see store.order_by_id)."""
    order = await store.order_by_id(await uow.connection(), order_id, lock=lock)
    if order is None or order.client_id != client_id:
        raise NotFound(f"no order {order_id}", code="order_not_found")
    return await detail(uow, order)


async def any_order(uow: UnitOfWork, *, order_id: str, lock: bool = False) -> Detail:
    order = await store.order_by_id(await uow.connection(), order_id, lock=lock)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order_not_found")
    return await detail(uow, order)


async def supplier_order(
    uow: UnitOfWork, *, supplier_id: str | None, supplier_order_id: str, lock: bool = False
) -> tuple[Detail, SupplierOrder]:
    """A supplier order with its customer order; `supplier_id` None: an operator's look.
    `lock`: for changing it; the customer order's row is taken first, then the supplier
    order is read again under it."""
    conn = await uow.connection()
    part = await store.supplier_order_by_id(conn, supplier_order_id)
    if part is None or (supplier_id is not None and part.supplier_id != supplier_id):
        raise NotFound(f"no supplier order {supplier_order_id}", code="order_not_found")
    if supplier_id is not None and part.status not in SUPPLIER_SEES:
        raise NotFound(f"no supplier order {supplier_order_id}", code="order_not_found")
    order = await store.order_by_id(conn, part.order_id, lock=lock)
    assert order is not None
    found = await detail(uow, order)
    return found, next(p for p in found.parts if p.id == part.id)


async def history(uow: UnitOfWork, *, found: Detail) -> list[dict[str, Any]]:
    rows = await store.history_of(
        await uow.connection(), [found.order.id, *(p.id for p in found.parts)]
    )
    return [
        {
            "object": r.object_id,
            "kind": r.kind,
            "from": r.from_status,
            "to": r.to_status,
            "action": r.action,
            "actor": r.actor,
            "reason": r.reason,
            "at": r.at,
        }
        for r in rows
    ]


# --- placing --------------------------------------------------------------------------------


async def place_order(
    uow: UnitOfWork,
    *,
    view: ClientView,
    customer_ref: str,
    shipping: Mapping[str, Any] | None,
    lines: Sequence[LineRequest],
    default_hold_seconds: int,
) -> Detail:
    """Reserves every line's stock and records the order, split per supplier; or reserves
    nothing. A price that moved since the customer saw it is a 409 with today's prices."""
    if not 1 <= len(lines) <= MAX_LINES:
        raise ValidationFailed(f"an order has 1–{MAX_LINES} lines", code="invalid_lines")
    wanted = quantities_by_offer(lines)
    found = await stock.orderable(uow, view=view, offer_ids=list(wanted))
    missing = [
        FieldError(f"lines[{i}].offer", "offer_not_orderable", f"no offer {line.offer_id} to order")
        for i, line in enumerate(lines)
        if line.offer_id not in found
    ]
    if missing:
        raise ValidationFailed("some lines name no offer this client may order", errors=missing)
    currencies = {offer.currency for offer in found.values()}
    if len(currencies) > 1:
        raise ValidationFailed(
            "an order is paid in one currency; these offers are in "
            + ", ".join(sorted(currencies)),
            code="mixed_currencies",
        )
    shown = {o.id: apply_markup(o.price_amount, view.markup_bps) for o in found.values()}
    if any(
        line.unit_price != shown[line.offer_id] or line.currency != found[line.offer_id].currency
        for line in lines
    ):
        raise _price_changed(found, shown)
    reserved, short = await stock.reserve(
        uow,
        wanted={o: (found[o].pk, n, found[o].price_amount) for o, n in wanted.items()},
    )
    if short:
        raise Conflict(
            "not enough stock for every line; nothing was reserved",
            code="insufficient_stock",
            extra={
                "lines": [
                    {"offer": s.offer_id, "wanted": s.wanted, "available": s.available}
                    for s in short
                ]
            },
        )
    client = await access.get_client(uow, client_id=view.client_id)
    now = utcnow()
    hold = client.order_hold_seconds or default_hold_seconds
    order_id = new_id("ord")
    currency = currencies.pop()
    part_ids: dict[str, str] = {}
    line_rows: list[dict[str, Any]] = []
    for position, line in enumerate(lines):
        offer = reserved[line.offer_id]
        part_id = part_ids.setdefault(offer.supplier_id, new_id("so"))
        line_rows.append(
            {
                "id": new_id("oln"),
                "order_id": order_id,
                "supplier_order_id": part_id,
                "position": position,
                "offer_id": offer.id,
                "category_id": offer.category_id,
                "sku": offer.sku,
                "title": offer.title,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "supplier_unit_price": offer.price_amount,
                "currency": currency,
                "status": str(LineStatus.RESERVED),
            }
        )
    totals: dict[str, int] = {}
    for row in line_rows:
        totals[row["supplier_order_id"]] = (
            totals.get(row["supplier_order_id"], 0) + row["unit_price"] * row["quantity"]
        )
    common = {"version": 1, "created_at": now, "updated_at": now}
    await store.insert_order(
        await uow.connection(),
        {
            "id": order_id,
            "client_id": view.client_id,
            "customer_ref": customer_ref,
            "shipping": dict(shipping) if shipping is not None else None,
            "status": str(OrderStatus.PLACED),
            "currency": currency,
            "amount": sum(totals.values()),
            "refunded_amount": 0,
            "expires_at": now + timedelta(seconds=hold),
            **common,
        },
        [
            {
                "id": part_id,
                "order_id": order_id,
                "supplier_id": supplier_id,
                "client_id": view.client_id,
                "status": str(SupplierOrderStatus.PENDING_PAYMENT),
                "currency": currency,
                "amount": totals[part_id],
                "accepted_amount": 0,
                "refunded_amount": 0,
                "accept_by": None,
                "tracking": None,
                **common,
            }
            for supplier_id, part_id in sorted(part_ids.items())
        ],
        line_rows,
    )
    await store.record_history(
        await uow.connection(),
        [
            {
                "kind": str(kind),
                "object_id": object_id,
                "from_status": None,
                "to_status": status,
                "action": "place",
                "actor": f"client:{view.client_id}",
                "reason": None,
                "at": now,
            }
            for kind, object_id, status in [
                (OrderKind.ORDER, order_id, OrderStatus.PLACED),
                *(
                    (OrderKind.SUPPLIER_ORDER, p, SupplierOrderStatus.PENDING_PAYMENT)
                    for p in part_ids.values()
                ),
            ]
        ],
    )
    moved(uow, order_id)
    queue(uow, order_id, client=EventType.ORDER_PLACED)
    return (await publish(uow))[order_id]


def _price_changed(found: Mapping[str, Any], shown: Mapping[str, int]) -> Conflict:
    return Conflict(
        "a price changed since the customer saw it; nothing was reserved",
        code="price_changed",
        extra={
            "prices": [
                {"offer": o, "price": {"amount": shown[o], "currency": found[o].currency}}
                for o in sorted(found)
            ]
        },
    )


# --- paying ---------------------------------------------------------------------------------


async def pay_order(
    new_uow: NewUnitOfWork,
    provider: PaymentProvider,
    *,
    client_id: str,
    order_id: str,
    token: str,
    accept_seconds: float,
) -> Detail:
    """Authorizes and captures the order's total. The attempt is recorded before the provider
    is asked (outside any transaction: a slow provider holds no lock), and its answer after."""
    now = utcnow()
    async with new_uow() as uow:
        # locked: of two payments started at once, the second sees the first under way
        found = await client_order(uow, client_id=client_id, order_id=order_id, lock=True)
        order = found.order
        if order.status is not OrderStatus.PLACED:
            raise Conflict(
                f"the order is {order.status}; only a placed order is paid",
                code="invalid_transition",
                extra={"current_status": str(order.status)},
            )
        if order.expires_at <= now:
            raise Conflict("the order's hold has expired", code="order_expired")
        if any(
            p.status in (PaymentStatus.PROCESSING, PaymentStatus.PENDING) for p in found.payments
        ):
            raise Conflict("a payment for this order is under way", code="payment_in_progress")
        payment = Payment(
            id=new_id("pay"),
            order_id=order.id,
            provider=provider.name,
            status=PaymentStatus.PROCESSING,
            amount=order.amount,
            currency=order.currency,
            reference=None,
            failure_code=None,
            fee=None,
            created_at=now,
            updated_at=now,
        )
        await store.insert_payment(await uow.connection(), payment)
        await uow.commit()
    answer = await provider.authorize(
        payment_id=payment.id, amount=order.amount, currency=order.currency, token=token
    )
    if answer.outcome is Outcome.SUCCEEDED and answer.reference is not None:
        captured = await provider.capture(
            reference=answer.reference, amount=order.amount, currency=order.currency
        )
        answer = Answer(captured.outcome, answer.reference, captured.failure_code, fee=captured.fee)
    async with new_uow() as uow:
        await settle_payment(
            uow, payment_id=payment.id, answer=answer, accept_seconds=accept_seconds
        )
        result = await client_order(uow, client_id=client_id, order_id=order_id)
        await uow.commit()
    if answer.outcome is Outcome.FAILED:
        raise PaymentFailed(
            f"the payment was not taken ({answer.failure_code}); the order waits for another",
            code="payment_failed",
            extra={"failure_code": answer.failure_code},
        )
    return result


async def settle_payment(
    uow: UnitOfWork, *, payment_id: str, answer: Answer, accept_seconds: float
) -> None:
    """Records a provider's answer once (a second answer about the same payment changes
    nothing). Money taken for an order that expired or was cancelled meanwhile goes back."""
    conn = await uow.connection()
    now = utcnow()
    payment = await store.payment_by_id(conn, payment_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}", code="payment_not_found")
    await store.order_by_id(conn, payment.order_id, lock=True)
    open_states = [PaymentStatus.PROCESSING, PaymentStatus.PENDING]
    if answer.outcome is Outcome.PENDING:
        await store.settle_payment(
            conn, payment_id, current=[PaymentStatus.PROCESSING], status=PaymentStatus.PENDING,
            reference=answer.reference, failure_code=None, at=now,
        )  # fmt: skip
        return
    status = PaymentStatus.CAPTURED if answer.outcome is Outcome.SUCCEEDED else PaymentStatus.FAILED
    fee = answer.fee if status is PaymentStatus.CAPTURED else None
    if not await store.settle_payment(
        conn, payment_id, current=open_states, status=status,
        reference=answer.reference, failure_code=answer.failure_code, at=now, fee=fee,
    ):  # fmt: skip
        return
    if status is PaymentStatus.CAPTURED:  # whatever becomes of the order, the money came in
        await money.record_capture(
            uow, payment_id=payment.id, amount=payment.amount, fee=answer.fee,
            currency=payment.currency,
        )  # fmt: skip
    if status is PaymentStatus.FAILED:
        queue(uow, payment.order_id, client=EventType.ORDER_PAYMENT_FAILED)
        await publish(uow)
        return
    try:
        # conditional: an expiry or a cancellation that got there first wins, and then
        await transition(
            uow, OrderKind.ORDER, payment.order_id, OrderStatus.PLACED, Action.PAY, actor=SYSTEM
        )
    except InvalidTransition as moved_first:
        # ... and what the provider took goes back: all of it for an order no longer open
        if moved_first.extra["current_status"] in (OrderStatus.EXPIRED, OrderStatus.CANCELLED):
            for part in await store.parts_of(conn, [payment.order_id]):
                left = part.amount - part.refunded_amount
                await refunds.owe(uow, part, payment.id, left, "order no longer open")
        else:  # paid already by another payment: this one, whole, and no part's money
            await refunds.return_payment(uow, payment)
        await publish(uow)
        return
    order_id = payment.order_id
    accept_by = now + timedelta(seconds=accept_seconds)
    for part in await store.parts_of(conn, [order_id]):
        await transition(
            uow, OrderKind.SUPPLIER_ORDER, part.id, part.status, Action.PAY,
            actor=SYSTEM, accept_by=accept_by,
        )  # fmt: skip
    await publish(uow)


async def handle_callback(
    new_uow: NewUnitOfWork,
    provider: PaymentProvider,
    *,
    headers: dict[str, str],
    body: bytes,
    accept_seconds: float,
) -> bool:
    """A provider's callback, verified, applied once; False when it was handled before."""
    callback = provider.callback(headers=headers, body=body)
    async with new_uow() as uow:
        conn = await uow.connection()
        if not await store.note_callback(conn, provider.name, callback.event_id, utcnow()):
            return False
        await settle_payment(
            uow,
            payment_id=callback.payment_id,
            answer=Answer(
                callback.outcome, callback.reference, callback.failure_code, fee=callback.fee
            ),
            accept_seconds=accept_seconds,
        )
        await uow.commit()
    return True


async def list_orders(
    uow: UnitOfWork, *, client_id: str | None, status: str | None, before: str | None, limit: int
) -> list[Detail]:
    conn = await uow.connection()
    found = await store.list_orders(
        conn, client_id=client_id, status=status, before=before, limit=limit
    )
    ids = [o.id for o in found]
    parts = await store.parts_of(conn, ids)
    lines = await store.lines_of(conn, order_ids=ids)
    return [
        Detail(
            order=o,
            parts=[p for p in parts if p.order_id == o.id],
            lines=[line for line in lines if line.order_id == o.id],
            payments=[],
            refunds=[],
        )
        for o in found
    ]


async def list_supplier_orders(
    uow: UnitOfWork, *, supplier_id: str, status: str | None, before: str | None, limit: int
) -> list[tuple[Detail, SupplierOrder]]:
    conn = await uow.connection()
    statuses = [status] if status else [str(s) for s in SUPPLIER_SEES]
    if status and SupplierOrderStatus(status) not in SUPPLIER_SEES:
        return []
    parts = await store.list_supplier_orders(
        conn, supplier_id=supplier_id, statuses=statuses, before=before, limit=limit
    )
    orders = {o.id: o for o in await store.orders_by_ids(conn, [p.order_id for p in parts])}
    lines = await store.lines_of(conn, part_ids=[p.id for p in parts])
    return [
        (
            Detail(
                order=orders[p.order_id],
                parts=[p],
                lines=[line for line in lines if line.supplier_order_id == p.id],
                payments=[],
                refunds=[],
            ),
            p,
        )
        for p in parts
    ]
