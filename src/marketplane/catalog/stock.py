"""Stock moves for orders: reserve, release, sell. Each is one conditional UPDATE per offer.

An offer's stock is `quantity` (available: what may still be ordered) + `reserved` (held for
orders not yet decided) + `sold` (taken by accepted orders). Orders only move units between the
three; only a supplier's update changes their sum (it states the available quantity). Nothing
here reads and then writes: each statement checks and moves at once (`quantity >= n`), and
offers are visited in primary-key order so concurrent orders lock rows in one order (no
deadlock on PostgreSQL; SQLite has a single writer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from marketplane.access.model import ClientView
from marketplane.catalog import store
from marketplane.catalog.model import Offer, OfferStatus
from marketplane.catalog.search import visible_to
from marketplane.catalog.service import offer_events
from marketplane.db.uow import UnitOfWork
from marketplane.events import service as events
from marketplane.kernel.clock import utcnow

offers = store.offers
_RETURNED = (*store.OFFER_COLUMNS, offers.c.live)


@dataclass(frozen=True, slots=True)
class Short:
    """An offer a reservation could not take: how many were asked, how many are available
    (None: not orderable, or its price moved)."""

    offer_id: str
    wanted: int
    available: int | None


async def orderable(uow: UnitOfWork, *, view: ClientView, offer_ids: list[str]) -> dict[str, Offer]:
    """The offers a client may order, by id: active, live, inside its configuration."""
    conn = await uow.connection()
    rows = await conn.execute(
        sa.select(*store.OFFER_COLUMNS).where(
            store.among(conn, offers.c.id, offer_ids),
            offers.c.status == str(OfferStatus.ACTIVE),
            *visible_to(view),
        )
    )
    return {row.id: store.offer_from_row(row) for row in rows}


async def reserve(
    uow: UnitOfWork, *, wanted: Mapping[str, tuple[int, int, int]]
) -> tuple[dict[str, Offer], list[Short]]:
    """Moves `wanted` units of each offer from available to reserved, only if the offer still
    has them, is still live at the price the customer agreed to. `wanted`: offer id →
    (pk, quantity, price amount). Returns the offers as they are after, and what could not
    be reserved; the caller rolls back when that list is not empty (nothing is half-taken)."""
    conn = await uow.connection()
    now = utcnow()
    taken: dict[str, Offer] = {}
    moved: list[tuple[Offer, bool, bool]] = []
    short: list[Short] = []
    for offer_id, (_, count, price) in sorted(wanted.items(), key=lambda item: item[1][0]):
        row = (
            await conn.execute(
                offers.update()
                .where(
                    offers.c.id == offer_id,
                    offers.c.quantity >= count,
                    offers.c.price_amount == price,
                    offers.c.status == str(OfferStatus.ACTIVE),
                    *visible_to(None),
                )
                .values(
                    quantity=offers.c.quantity - count,
                    reserved=offers.c.reserved + count,
                    version=offers.c.version + 1,
                    updated_at=now,
                )
                .returning(*_RETURNED)
            )
        ).first()
        if row is None:
            left = (
                await conn.execute(sa.select(offers.c.quantity).where(offers.c.id == offer_id))
            ).scalar()
            short.append(Short(offer_id, count, left))
            continue
        offer = store.offer_from_row(row)
        taken[offer_id] = offer
        moved.append((offer, bool(row.live), bool(row.live)))
    if not short:
        await events.emit(uow, *offer_events("quantity", moved))
    return taken, short


async def settle(
    uow: UnitOfWork,
    *,
    sell: Mapping[str, int] | None = None,
    release: Mapping[str, int] | None = None,
) -> None:
    """Ends reservations: `sell` units become sold (their supplier accepted), `release` units go
    back on sale (rejected, cancelled, expired). One pass over all the offers, in key order,
    whatever parts of an order they come from: two orders settling the same offers lock them
    alike. Selling alone changes nothing a client sees (no event, no new version)."""
    sell, release = dict(sell or {}), dict(release or {})
    if not sell and not release:
        return
    conn = await uow.connection()
    now = utcnow()
    pks = dict(
        (
            await conn.execute(
                sa.select(offers.c.id, offers.c.pk).where(
                    store.among(conn, offers.c.id, sorted(sell.keys() | release.keys()))
                )
            )
        ).all()
    )
    if len(pks) != len(sell.keys() | release.keys()):
        raise RuntimeError("an order names an offer that does not exist")
    moved: list[tuple[Offer, bool, bool]] = []
    for offer_id in sorted(pks, key=pks.__getitem__):
        sold, back = sell.get(offer_id, 0), release.get(offer_id, 0)
        change: dict[str, Any] = {"reserved": offers.c.reserved - (sold + back)}
        if sold:
            change["sold"] = offers.c.sold + sold
        if back:
            change.update(quantity=offers.c.quantity + back, version=offers.c.version + 1)
            change["updated_at"] = now
        row = (
            await conn.execute(
                offers.update()
                .where(offers.c.pk == pks[offer_id], offers.c.reserved >= sold + back)
                .values(change)
                .returning(*_RETURNED)
            )
        ).first()
        if row is None:  # an order's reservation is always there: anything else is a bug
            raise RuntimeError(f"offer {offer_id} holds fewer than {sold + back} reserved units")
        if back:
            moved.append((store.offer_from_row(row), bool(row.live), bool(row.live)))
    await events.emit(uow, *offer_events("quantity", moved))
