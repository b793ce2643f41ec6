"""Money owed back to customers: recorded with the change that owes it, as a pending refund
that jobs.send_refunds sends to the provider once that change has committed."""

from __future__ import annotations

from marketplane.db.uow import UnitOfWork
from marketplane.events.model import EventType
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import Conflict
from marketplane.kernel.ids import new_id
from marketplane.orders import store
from marketplane.orders.model import Payment, PaymentStatus, Refund, RefundStatus, SupplierOrder
from marketplane.orders.transitions import Detail, queue


async def owe(
    uow: UnitOfWork,
    part: SupplierOrder,
    payment_id: str,
    amount: int,
    reason: str,
    *,
    earned: bool = False,
) -> Refund | None:
    """Records money owed back to the customer for a part (sent after commit)."""
    if amount <= 0:
        return None
    conn = await uow.connection()
    now = utcnow()
    if not await store.refund_within(conn, part.id, amount, now):
        raise Conflict(
            "that is more than is left to refund on this supplier order",
            code="refund_exceeds_paid",
            extra={"refundable": {"amount": part.refundable, "currency": part.currency}},
        )
    refund = Refund(
        id=new_id("re"),
        order_id=part.order_id,
        supplier_order_id=part.id,
        payment_id=payment_id,
        amount=amount,
        currency=part.currency,
        reason=reason,
        earned=earned,
        status=RefundStatus.PENDING,
        reference=None,
        failure_code=None,
        created_at=now,
        updated_at=now,
    )
    await store.insert_refund(conn, refund)
    await store.add_to(conn, store.orders, part.order_id, refunded_amount=amount)
    queue(
        uow,
        part.order_id,
        client=EventType.ORDER_REFUNDED,
        supplier=EventType.SUPPLIER_ORDER_REFUNDED,
        part=part.id,
    )
    return refund


async def return_payment(uow: UnitOfWork, payment: Payment) -> None:
    """A payment taken for an order another payment had paid already: all of it goes back."""
    now = utcnow()
    await store.insert_refund(
        await uow.connection(),
        Refund(
            id=new_id("re"), order_id=payment.order_id, supplier_order_id=None,
            payment_id=payment.id, amount=payment.amount, currency=payment.currency,
            reason="the order was paid already", earned=False, status=RefundStatus.PENDING,
            reference=None, failure_code=None, created_at=now, updated_at=now,
        ),
    )  # fmt: skip
    queue(uow, payment.order_id, client=EventType.ORDER_REFUNDED)


def captured(found: Detail) -> Payment | None:
    """The payment that paid the order (one at most: see pay_order)."""
    return next((p for p in found.payments if p.status is PaymentStatus.CAPTURED), None)
