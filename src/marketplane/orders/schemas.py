"""Order request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from marketplane.catalog.schemas import MoneyOut


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MoneyIn(Strict):
    amount: StrictInt = Field(ge=0, le=10**15, description="Integer count of the minor unit.")
    currency: str = Field(pattern="^[A-Z]{3}$", examples=["EUR"])


class LineIn(Strict):
    offer: str = Field(min_length=1, max_length=40, description="The offer's id.")
    quantity: StrictInt = Field(ge=1, le=10_000)
    unit_price: MoneyIn = Field(description="The unit price the customer saw (the client's).")


class ShippingIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    lines: list[str] = Field(min_length=1, max_length=4)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str = Field(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")


class OrderIn(Strict):
    customer_ref: str = Field(
        min_length=1, max_length=200, description="The client's reference for its customer."
    )
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    shipping: ShippingIn | None = None


class PayIn(Strict):
    payment_token: str = Field(
        default="tok_test_ok",
        min_length=1,
        max_length=200,
        description="What the payment provider charges (the test provider: `tok_test_…`).",
    )


class CancelIn(Strict):
    reason: str | None = Field(default=None, max_length=500)


class RefundIn(Strict):
    supplier_order: str = Field(min_length=1, max_length=40)
    amount: MoneyIn | None = Field(default=None, description="Omitted: all that is left.")
    reason: str = Field(min_length=1, max_length=500)


class LineDecision(Strict):
    id: str = Field(min_length=1, max_length=40)
    accepted: StrictBool


class AcceptIn(Strict):
    lines: list[LineDecision] | None = Field(
        default=None,
        max_length=100,
        description="Per line; lines not named are accepted. Omitted: the whole order.",
    )


class RejectIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class TrackingIn(Strict):
    carrier: str | None = Field(default=None, max_length=100)
    number: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=2000)


class FulfilIn(Strict):
    tracking: TrackingIn | None = None


class LineOut(BaseModel):
    id: str
    offer: str
    title: str
    quantity: int
    unit_price: MoneyOut
    amount: MoneyOut
    status: str


class SupplierLineOut(LineOut):
    sku: str


class PartOut(BaseModel):
    id: str
    supplier: str
    status: str
    total: MoneyOut
    refunded: MoneyOut
    accept_by: datetime | None
    tracking: dict[str, Any] | None
    lines: list[LineOut]


class PaymentOut(BaseModel):
    id: str
    provider: str
    status: str
    amount: MoneyOut
    failure_code: str | None
    created_at: datetime


class RefundOut(BaseModel):
    id: str
    supplier_order: str | None = Field(description="None: a whole payment returned.")
    payment: str
    amount: MoneyOut
    reason: str
    status: str
    failure_code: str | None
    created_at: datetime


class OrderOut(BaseModel):
    id: str
    customer_ref: str
    shipping: dict[str, Any] | None
    status: str
    total: MoneyOut
    refunded: MoneyOut
    expires_at: datetime
    supplier_orders: list[PartOut]
    payment: PaymentOut | None
    refunds: list[RefundOut]
    version: int
    created_at: datetime
    updated_at: datetime


class HistoryOut(BaseModel):
    object: str
    kind: str
    from_: str | None = Field(alias="from")
    to: str
    action: str
    actor: str
    reason: str | None
    at: datetime


class AdminOrderOut(OrderOut):
    client: str
    history: list[HistoryOut]


class SupplierOrderOut(BaseModel):
    id: str
    order: str
    customer_ref: str
    shipping: dict[str, Any] | None
    status: str
    total: MoneyOut
    accepted_total: MoneyOut
    accept_by: datetime | None
    tracking: dict[str, Any] | None
    fulfilled_at: datetime | None
    released_at: datetime | None = Field(
        description="When its money moved from held (pending) to available for payout."
    )
    lines: list[SupplierLineOut]
    version: int
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    data: list[OrderOut]
    has_more: bool
    next_cursor: str | None


class SupplierOrderPage(BaseModel):
    data: list[SupplierOrderOut]
    has_more: bool
    next_cursor: str | None
