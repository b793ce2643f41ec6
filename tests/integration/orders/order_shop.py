"""A small shop for the order tests, built through the services the way the API builds it:
a books category, two approved suppliers (offers whose sku starts with "A" are Alice's, "B"
Bob's) and a client; plus reads of what the order tests check (stock, history, refunds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from conftest import BOOKS_SCHEMA
from marketplane.access import service as access
from marketplane.access.model import ClientView
from marketplane.bootstrap import Platform
from marketplane.catalog import service as catalog
from marketplane.catalog.model import OfferDraft
from marketplane.kernel.clock import utcnow
from marketplane.kernel.money import apply_markup
from marketplane.orders import store
from marketplane.orders.model import LineRequest

ISBN = "9780306406157"


@dataclass
class Shop:
    suppliers: dict[str, str]  # "A" / "B" → supplier id
    client: ClientView
    offers: dict[str, str] = field(default_factory=dict)  # sku → offer id
    prices: dict[str, int] = field(default_factory=dict)  # offer id → the supplier's price

    def supplier_of(self, sku: str) -> str:
        return self.suppliers[sku[0]]

    def line(self, sku: str, quantity: int) -> LineRequest:
        """A line at the price the client is shown."""
        offer_id = self.offers[sku]
        shown = apply_markup(self.prices[offer_id], self.client.markup_bps)
        return LineRequest(offer_id, quantity, shown, "EUR")


def draft(sku: str, *, price: int, quantity: int, description: str = "") -> OfferDraft:
    return OfferDraft(
        sku=sku,
        category="books",
        title=f"Book {sku}",
        description=description,
        price_currency="EUR",
        price_amount=price,
        quantity=quantity,
        attributes={"isbn": ISBN, "author": "Ada Hartmann", "year": 2001},
    )


async def open_shop(
    platform: Platform,
    *,
    offers: Mapping[str, tuple[int, int]],
    markup_bps: int = 0,
) -> Shop:
    """`offers`: sku → (price, quantity)."""
    async with platform.uow() as uow:
        await catalog.create_category(
            uow, slug="books", name="Books", attribute_schema=BOOKS_SCHEMA
        )
        suppliers = {}
        for letter, name in (("A", "Alice"), ("B", "Bob")):
            supplier = await access.create_supplier(uow, name=name, email=None)
            supplier = await access.transition_supplier(
                uow, supplier_id=supplier.id, action="approve", actor="test"
            )
            await catalog.apply_supplier_status(
                uow, supplier_id=supplier.id, status=supplier.status
            )
            suppliers[letter] = supplier.id
        client = await access.create_client(
            uow,
            name="Shop",
            markup_bps=markup_bps,
            allowed_suppliers=None,
            allowed_categories=None,
        )
        await uow.commit()
    shop = Shop(suppliers=suppliers, client=client.view())
    for sku, (price, quantity) in offers.items():
        offer_id = await supply(platform, shop, sku, price=price, quantity=quantity)
        shop.offers[sku] = offer_id
        shop.prices[offer_id] = price
    return shop


async def supply(
    platform: Platform, shop: Shop, sku: str, *, price: int, quantity: int, description: str = ""
) -> str:
    """The supplier states its offer (as `PUT /supply/v1/offers/{sku}` does); returns its id."""
    async with platform.uow() as uow:
        results = await catalog.upsert_offers(
            uow,
            supplier_id=shop.supplier_of(sku),
            drafts=[draft(sku, price=price, quantity=quantity, description=description)],
        )
        await uow.commit()
    assert results[0].outcome != "failed", results[0].errors
    assert results[0].offer_id is not None
    return results[0].offer_id


async def stock_of(platform: Platform, offer_id: str) -> tuple[int, int, int]:
    """(quantity, reserved, sold) of an offer."""
    async with platform.uow(write=False) as uow:
        offer = await catalog.any_offer(uow, offer_id=offer_id)
    return offer.quantity, offer.reserved, offer.sold


async def history_rows(platform: Platform) -> list[Any]:
    async with platform.uow(write=False) as uow:
        conn = await uow.connection()
        return list(
            await conn.execute(store.order_history.select().order_by(store.order_history.c.pk))
        )


async def table_rows(platform: Platform, table: sa.Table) -> list[Any]:
    async with platform.uow(write=False) as uow:
        conn = await uow.connection()
        return list(await conn.execute(table.select()))


async def make_due(
    platform: Platform, *, orders: Sequence[str] = (), parts: Sequence[str] = ()
) -> None:
    """Moves orders' payment holds and supplier orders' acceptance deadlines into the past (test
    setup: the jobs then find them due)."""
    past = utcnow() - timedelta(hours=1)
    async with platform.uow() as uow:
        conn = await uow.connection()
        if orders:
            await conn.execute(
                store.orders.update()
                .where(store.orders.c.id.in_(list(orders)))
                .values(expires_at=past)
            )
        if parts:
            await conn.execute(
                store.supplier_orders.update()
                .where(store.supplier_orders.c.id.in_(list(parts)))
                .values(accept_by=past)
            )
        await uow.commit()
