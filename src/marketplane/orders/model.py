"""Order rules: the two order kinds, their transition tables, lines, and the stock law.

A customer order (`ord_`) is what a client places; it is split into one supplier order (`so_`)
per supplier, whose lines (`oln_`) each name one offer. The customer order follows the payment
(placed → paid, or expired / cancelled); each supplier order follows its supplier's decision
(awaiting acceptance → accepted | rejected → fulfilled → completed). Every move of either kind
is a row in its table below, and nothing else may move them (see service.transition).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from marketplane.kernel.errors import InvalidTransition


class OrderKind(StrEnum):
    ORDER = "order"
    SUPPLIER_ORDER = "supplier_order"


class OrderStatus(StrEnum):
    PLACED = "placed"  # stock reserved, waiting for payment until its hold expires
    PAID = "paid"  # payment captured; its supplier orders are deciding
    EXPIRED = "expired"  # not paid in time: stock released
    CANCELLED = "cancelled"  # by the customer before any supplier accepted: stock released
    CLOSED = "closed"  # every supplier order has reached its end


class SupplierOrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    AWAITING_ACCEPTANCE = "awaiting_acceptance"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FULFILLED = "fulfilled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Action(StrEnum):
    PAY = "pay"
    EXPIRE = "expire"
    CANCEL = "cancel"
    CLOSE = "close"
    ACCEPT = "accept"
    REJECT = "reject"
    FULFIL = "fulfil"
    COMPLETE = "complete"


ORDER_TRANSITIONS: Mapping[tuple[Action, str], OrderStatus] = {
    (Action.PAY, OrderStatus.PLACED): OrderStatus.PAID,
    (Action.EXPIRE, OrderStatus.PLACED): OrderStatus.EXPIRED,
    (Action.CANCEL, OrderStatus.PLACED): OrderStatus.CANCELLED,
    (Action.CANCEL, OrderStatus.PAID): OrderStatus.CANCELLED,
    (Action.CLOSE, OrderStatus.PAID): OrderStatus.CLOSED,
}

SUPPLIER_ORDER_TRANSITIONS: Mapping[tuple[Action, str], SupplierOrderStatus] = {
    (Action.PAY, SupplierOrderStatus.PENDING_PAYMENT): SupplierOrderStatus.AWAITING_ACCEPTANCE,
    (Action.EXPIRE, SupplierOrderStatus.PENDING_PAYMENT): SupplierOrderStatus.EXPIRED,
    (Action.CANCEL, SupplierOrderStatus.PENDING_PAYMENT): SupplierOrderStatus.CANCELLED,
    (Action.CANCEL, SupplierOrderStatus.AWAITING_ACCEPTANCE): SupplierOrderStatus.CANCELLED,
    (Action.ACCEPT, SupplierOrderStatus.AWAITING_ACCEPTANCE): SupplierOrderStatus.ACCEPTED,
    (Action.REJECT, SupplierOrderStatus.AWAITING_ACCEPTANCE): SupplierOrderStatus.REJECTED,
    (Action.FULFIL, SupplierOrderStatus.ACCEPTED): SupplierOrderStatus.FULFILLED,
    (Action.COMPLETE, SupplierOrderStatus.FULFILLED): SupplierOrderStatus.COMPLETED,
}

TRANSITIONS: Mapping[OrderKind, Mapping[tuple[Action, str], str]] = {
    OrderKind.ORDER: ORDER_TRANSITIONS,
    OrderKind.SUPPLIER_ORDER: SUPPLIER_ORDER_TRANSITIONS,
}

# A supplier order in one of these has finished: its stock is sold or released for good.
SUPPLIER_ORDER_ENDS = frozenset(
    {
        SupplierOrderStatus.REJECTED,
        SupplierOrderStatus.COMPLETED,
        SupplierOrderStatus.CANCELLED,
        SupplierOrderStatus.EXPIRED,
    }
)
# Stock stays reserved while a supplier order is in one of these.
HOLDS_STOCK = frozenset(
    {SupplierOrderStatus.PENDING_PAYMENT, SupplierOrderStatus.AWAITING_ACCEPTANCE}
)
# Suppliers see their orders from payment on (an unpaid one is not an order for them yet).
SUPPLIER_SEES = frozenset(SupplierOrderStatus) - {
    SupplierOrderStatus.PENDING_PAYMENT,
    SupplierOrderStatus.EXPIRED,
}


def next_status(kind: OrderKind, current: str, action: Action) -> str:
    """The status `action` moves an order of `kind` to from `current`, or InvalidTransition
    (409, with the current status)."""
    target = TRANSITIONS[kind].get((action, current))
    if target is None:
        raise InvalidTransition(
            f"cannot {action} a {kind.replace('_', ' ')} that is {current}",
            extra={"current_status": str(current)},
        )
    return target


class LineStatus(StrEnum):
    RESERVED = "reserved"  # stock held for it
    SOLD = "sold"  # accepted by the supplier: stock sold
    RELEASED = "released"  # rejected, cancelled or expired: stock back on sale


class PaymentStatus(StrEnum):
    PROCESSING = "processing"  # asked of the provider, no answer recorded yet
    PENDING = "pending"  # the provider answers later, by callback
    CAPTURED = "captured"
    FAILED = "failed"


class RefundStatus(StrEnum):
    PENDING = "pending"  # recorded with the change that owes it; sent to the provider after
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# --- placing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineRequest:
    """A line as the client sends it: the offer, how many, and the unit price the customer saw."""

    offer_id: str
    quantity: int
    unit_price: int
    currency: str


class Counted(Protocol):
    @property
    def offer_id(self) -> str: ...

    @property
    def quantity(self) -> int: ...


def quantities_by_offer(lines: Iterable[Counted]) -> dict[str, int]:
    """Units per offer. Lines for the same offer are summed before reserving (two lines never
    reserve more together than one could) and before their reservations end."""
    total: dict[str, int] = {}
    for line in lines:
        total[line.offer_id] = total.get(line.offer_id, 0) + line.quantity
    return total


# --- stored objects -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderLine:
    id: str
    order_id: str
    supplier_order_id: str
    offer_id: str
    category_id: str
    sku: str
    title: str
    quantity: int
    unit_price: int  # what the customer pays a unit (the client's price)
    supplier_unit_price: int  # the offer's own price: the supplier's side of the sale
    currency: str
    status: LineStatus

    @property
    def amount(self) -> int:
        return self.unit_price * self.quantity

    @property
    def supplier_amount(self) -> int:
        return self.supplier_unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class SupplierOrder:
    id: str
    order_id: str
    supplier_id: str
    client_id: str
    status: SupplierOrderStatus
    currency: str
    amount: int  # what the customer pays for its lines
    accepted_amount: int  # of lines the supplier accepted
    refunded_amount: int  # returned to the customer: rejected lines, then refunds
    accept_by: datetime | None
    tracking: Mapping[str, object] | None
    version: int
    created_at: datetime
    updated_at: datetime
    fulfilled_at: datetime | None = None
    released_at: datetime | None = None  # its money moved from held to available

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded_amount


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    client_id: str
    customer_ref: str
    shipping: Mapping[str, object] | None
    status: OrderStatus
    currency: str
    amount: int
    refunded_amount: int
    expires_at: datetime
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    order_id: str
    provider: str
    status: PaymentStatus
    amount: int
    currency: str
    reference: str | None
    failure_code: str | None
    fee: int | None  # what the provider kept, once captured
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    order_id: str
    supplier_order_id: str | None  # None: a whole payment returned (the order was paid twice)
    payment_id: str
    amount: int
    currency: str
    reason: str
    earned: bool  # of money the supplier had earned (after acceptance): reverses the sale
    status: RefundStatus
    reference: str | None
    failure_code: str | None
    created_at: datetime
    updated_at: datetime
