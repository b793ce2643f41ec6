"""Wire shapes of the catalog routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from marketplane.catalog.model import OfferDraft, OfferStatus


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    """JSON columns hold 64-bit integers at most (orjson refuses bigger ones)."""
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, int) and not -(2**63) <= item < 2**63:
            raise ValueError("integers must fit in 64 bits")
    return value


StoredJson = Annotated[dict[str, Any], AfterValidator(_storable)]


class MoneyOut(BaseModel):
    amount: int = Field(description="Integer count of the currency's minor unit.")
    currency: str = Field(examples=["EUR"])


class PriceIn(Strict):
    """Give `amount` in minor units (1299) or `decimal` in major units ("12.99"), not both."""

    currency: str = Field(min_length=3, max_length=3, examples=["EUR"])
    amount: StrictInt | None = None
    decimal: str | None = Field(default=None, max_length=40, examples=["12.99"])


class OfferIn(Strict):
    category: str = Field(min_length=1, max_length=80, description="Category id or slug.")
    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=20_000)
    attributes: StoredJson = Field(default_factory=dict)
    price: PriceIn
    quantity: StrictInt = Field(ge=0, le=2**31 - 1)
    gtin: str | None = Field(default=None, max_length=20, description="GTIN or ISBN.")
    status: Literal["active", "inactive"] = "active"

    def draft(self, sku: str) -> OfferDraft:
        return OfferDraft(
            sku=sku,
            category=self.category,
            title=self.title,
            description=self.description,
            attributes=self.attributes,
            price_currency=self.price.currency,
            price_amount=self.price.amount,
            price_decimal=self.price.decimal,
            quantity=self.quantity,
            gtin=self.gtin,
            status=OfferStatus(self.status),
        )


class BatchItemIn(OfferIn):
    sku: str = Field(min_length=1, max_length=200)


class BatchIn(Strict):
    offers: list[dict[str, Any]] = Field(
        description="Up to 1,000 offers, each shaped like BatchItemIn; each gets its own result."
    )


class ItemError(BaseModel):
    field: str
    code: str
    message: str


class BatchItemResult(BaseModel):
    index: int
    sku: str | None
    outcome: Literal["created", "updated", "unchanged", "failed"]
    offer_id: str | None
    version: int | None
    errors: list[ItemError]


class BatchCounts(BaseModel):
    created: int
    updated: int
    unchanged: int
    failed: int


class BatchOut(BaseModel):
    results: list[BatchItemResult]
    counts: BatchCounts


class SupplyOfferOut(BaseModel):
    id: str
    sku: str
    category: str
    title: str
    description: str
    attributes: dict[str, Any]
    price: MoneyOut
    quantity: int = Field(description="Available: what customers may still order.")
    reserved: int = Field(description="Held for orders that are unpaid or not yet accepted.")
    sold: int = Field(description="Taken by orders its supplier accepted.")
    status: OfferStatus
    gtin: str | None
    product: str | None
    source: str
    version: int
    created_at: datetime
    updated_at: datetime


class AdminOfferOut(SupplyOfferOut):
    supplier: str


class SupplyOfferPage(BaseModel):
    data: list[SupplyOfferOut]
    has_more: bool
    next_cursor: str | None


class AdminOfferPage(BaseModel):
    data: list[AdminOfferOut]
    has_more: bool
    next_cursor: str | None


class StoreOfferOut(BaseModel):
    """An offer as a client sees it; `fields=` may leave out any field but `id`."""

    id: str
    title: str | None = None
    description: str | None = None
    category: str | None = None
    supplier: str | None = None
    attributes: dict[str, Any] | None = None
    price: MoneyOut | None = None
    quantity: int | None = None
    gtin: str | None = None
    product: str | None = None
    version: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    sponsored: bool | None = Field(
        default=None,
        description="true on a sponsored placement (a supplier paid to be shown first): "
        "show it as such; absent on the others.",
    )


class FacetValue(BaseModel):
    value: str
    count: int


class StoreOfferPage(BaseModel):
    data: list[StoreOfferOut]
    has_more: bool
    next_cursor: str | None
    facets: dict[str, list[FacetValue]] | None = None


class ProductOut(BaseModel):
    id: str
    gtin: str
    title: str
    category: str
    buy_box: StoreOfferOut
    offers: list[StoreOfferOut]
    offer_count: int


class CategoryIn(Strict):
    slug: str = Field(min_length=1, max_length=80, examples=["books"])
    name: str = Field(min_length=1, max_length=200)
    attribute_schema: StoredJson = Field(
        description='A JSON Schema for offer attributes: {"type": "object", "properties": …}. '
        'Mark the attribute that identifies an item across suppliers with "x-gtin": true.'
    )


class CategoryPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    attribute_schema: StoredJson | None = None


class CategoryOut(BaseModel):
    id: str
    slug: str
    name: str
    attribute_schema: dict[str, Any]
    schema_version: int
    created_at: datetime
    updated_at: datetime
