"""Wire shapes of the access routes."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from marketplane.access.model import KeyKind, Role, Side, SupplierStatus

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    data: list[T]
    has_more: bool
    next_cursor: str | None


class OperatorIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: Role


class OperatorOut(BaseModel):
    id: str
    name: str
    email: str | None
    role: Role
    created_at: datetime


class SupplierIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)


class SupplierOut(BaseModel):
    id: str
    name: str
    email: str | None
    status: SupplierStatus
    created_at: datetime
    updated_at: datetime


class TransitionIn(Strict):
    reason: str | None = Field(default=None, max_length=500)


class StatusChange(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    at: datetime


class ClientIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    markup_bps: StrictInt = Field(
        default=0, ge=0, le=100_000, description="Markup in basis points."
    )
    allowed_suppliers: list[str] | None = Field(
        default=None, max_length=10_000, description="Supplier ids it may show; null: all."
    )
    allowed_categories: list[str] | None = Field(
        default=None, max_length=10_000, description="Category ids it may show; null: all."
    )
    order_hold_seconds: StrictInt | None = Field(
        default=None,
        ge=60,
        le=7 * 24 * 3600,
        description="How long its orders wait for payment before they expire; null: the default.",
    )


class ClientPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    markup_bps: StrictInt | None = Field(default=None, ge=0, le=100_000)
    allowed_suppliers: list[str] | None = Field(default=None, max_length=10_000)
    allowed_categories: list[str] | None = Field(default=None, max_length=10_000)
    order_hold_seconds: StrictInt | None = Field(
        default=None,
        ge=60,
        le=7 * 24 * 3600,
        description="How long its orders wait for payment before they expire; null: the default.",
    )


class ClientOut(BaseModel):
    id: str
    name: str
    markup_bps: int
    allowed_suppliers: list[str] | None
    allowed_categories: list[str] | None
    order_hold_seconds: int | None
    created_at: datetime
    updated_at: datetime


class KeyIn(Strict):
    label: str | None = Field(default=None, max_length=200)
    kind: KeyKind = KeyKind.SECRET


class KeyOut(BaseModel):
    id: str
    side: Side
    kind: KeyKind
    owner_id: str
    label: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself. Shown once; only its hash is kept.")
