"""Catalog use cases: categories, offer upserts, the supplier's and the store's views."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import fastjsonschema
import orjson
import sqlalchemy as sa

from marketplane.access import service as access
from marketplane.access.model import ClientView, Milestone
from marketplane.catalog import store
from marketplane.catalog.checks import check_drafts
from marketplane.catalog.model import (
    STORE_FIELDS,
    Category,
    Offer,
    OfferDraft,
    OfferStatus,
    SearchRequest,
    Sort,
    ValidOffer,
    attribute_rows,
    change_kind,
)
from marketplane.catalog.search import (
    SMALL_SET,
    SPONSOR_TRIES,
    SPONSORED_SLOTS,
    SearchPlan,
    TextMatch,
    plan,
    small_set_count,
    sponsored,
    store_columns,
    visible_to,
)
from marketplane.db.uow import UnitOfWork
from marketplane.events import service as events
from marketplane.events.model import OFFER_CHANGES, NewEvent, store_type
from marketplane.kernel.clock import rfc3339, utcnow
from marketplane.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed, field_error
from marketplane.kernel.ids import new_id, new_ids
from marketplane.kernel.money import apply_markup
from marketplane.kernel.pagination import Cursor, decode_cursor, encode_cursor, fingerprint

# --- categories -----------------------------------------------------------------------------

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")


def _prepare_schema(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") != "object" or not isinstance(schema.get("properties", {}), dict):
        raise field_error(
            "attribute_schema", "invalid_schema", 'must be {"type": "object", "properties": {…}}'
        )
    # Attributes a category does not declare are refused unless its schema says otherwise.
    prepared = {"additionalProperties": False, **schema}
    try:
        fastjsonschema.compile(prepared)
    except (fastjsonschema.JsonSchemaDefinitionException, ValueError, TypeError) as exc:
        raise field_error("attribute_schema", "invalid_schema", str(exc)) from exc
    return prepared


async def create_category(
    uow: UnitOfWork, *, slug: str, name: str, attribute_schema: dict[str, Any]
) -> Category:
    if not SLUG.match(slug):
        raise field_error("slug", "invalid_slug", "lowercase letters, digits and -, up to 80")
    if await store.slug_taken(await uow.connection(), slug):
        raise Conflict(f"a category {slug!r} exists", code="slug_taken")
    now = utcnow()
    category = Category(
        id=new_id("cat"),
        slug=slug,
        name=name,
        attribute_schema=_prepare_schema(attribute_schema),
        schema_version=1,
        created_at=now,
        updated_at=now,
    )
    await store.insert_category(await uow.connection(), category)
    return category


async def get_category(uow: UnitOfWork, *, ref: str) -> Category:
    category = await store.category_by_id_or_slug(await uow.connection(), ref)
    if category is None:
        raise NotFound(f"no category {ref}", code="category_not_found")
    return category


async def update_category(
    uow: UnitOfWork,
    *,
    ref: str,
    name: str | None = None,
    attribute_schema: dict[str, Any] | None = None,
) -> Category:
    """Offers are checked against the schema when written; a new schema applies from then on."""
    category = await get_category(uow, ref=ref)
    if name is not None:
        category = replace(category, name=name)
    if attribute_schema is not None:
        category = replace(
            category,
            attribute_schema=_prepare_schema(attribute_schema),
            schema_version=category.schema_version + 1,
        )
    category = replace(category, updated_at=utcnow())
    await store.update_category(await uow.connection(), category)
    return category


async def list_categories(uow: UnitOfWork, *, view: ClientView | None = None) -> list[Category]:
    found = await store.list_categories(await uow.connection())
    if view is not None and view.allowed_categories is not None:
        found = [c for c in found if c.id in view.allowed_categories]
    return found


# --- supplier listing -----------------------------------------------------------------------


async def apply_supplier_status(uow: UnitOfWork, *, supplier_id: str, status: str) -> None:
    """Only an active supplier's offers are listed to clients; pending ones are a sandbox."""
    conn = await uow.connection()
    listed = status == "active"
    await store.set_listed(conn, supplier_id, listed)
    where, values = store.listing_change(supplier_id, listed)
    async for chunk in store.change_offers(conn, where, values):
        happened = offer_events(
            "listed" if listed else "unlisted", ((o, live, listed) for o, live in chunk)
        )
        await events.emit(uow, *happened)
    if listed and await store.has_active_offers(conn, supplier_id):
        await access.mark_milestone(
            uow, supplier_id=supplier_id, milestone=Milestone.FIRST_OFFER_LIVE
        )


# --- offer upserts --------------------------------------------------------------------------


@dataclass(slots=True)
class ItemResult:
    index: int
    sku: str
    outcome: str  # created | updated | unchanged | failed
    offer_id: str | None = None
    version: int | None = None
    errors: list[FieldError] = field(default_factory=list)


class RelayBroken(Exception):
    """The transaction before this one in a relay did not commit: this one must not either."""


class Relay:
    """One of a sequence of offer writes in transactions that overlap (a feed's batches on
    PostgreSQL). Each inserts its new offers while the one before it is still finishing, and
    touches offers that exist already, writes its events and commits only after that one has
    committed (`turn`). So the commits keep their order, and none of them ever waits for a lock
    the one after it holds.

    Its successor may begin once `opened` is done: the products its offers need exist, made in
    a transaction of their own (`new_uow`) and committed, so the successor's offers can refer
    to them too (a product outlives its offers anyway). The caller sees to it that two writes
    in flight never name the same SKU."""

    def __init__(self, before: Relay | None, new_uow: Callable[[], UnitOfWork]) -> None:
        loop = asyncio.get_running_loop()
        self.before = before
        self.new_uow = new_uow
        self.opened: asyncio.Future[None] = loop.create_future()
        self.committed: asyncio.Future[None] = loop.create_future()

    def open(self) -> None:
        if not self.opened.done():
            self.opened.set_result(None)

    async def turn(self) -> None:
        """Returns once the write before this one has committed; RelayBroken if it did not."""
        before = self.before
        if before is None:
            return
        try:
            await asyncio.shield(before.committed)
        except Exception as exc:
            raise RelayBroken("the batch before this one was not written") from exc
        self.before = None  # committed: what it created is visible now

    def ended(self, error: BaseException | None) -> None:
        """This write committed (`error` None) or never will."""
        self.open()
        if self.committed.done():
            return
        if error is None:
            self.committed.set_result(None)
        else:
            self.committed.set_exception(RelayBroken(str(error) or type(error).__name__))
            self.committed.exception()  # retrieved: a successor may not be there to see it


class KnownProducts:
    """Products that a sequence of offer writes (a feed run's batches) found committed, by
    GTIN: a product is never deleted and keeps its GTIN, so the later writes need not look them
    up again (a batch of 5,000 books asked for some 4,700 each time). Holds at most `limit`."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.ids: dict[str, str] = {}

    def add(self, found: Mapping[str, str]) -> None:
        room = self.limit - len(self.ids)
        if room > 0:
            self.ids.update(itertools.islice(found.items(), room))


async def categories_by_ref(uow: UnitOfWork, refs: Iterable[str]) -> dict[str, Category]:
    found = await store.categories_by_refs(await uow.connection(), set(refs))
    return {c.id: c for c in found} | {c.slug: c for c in found}


async def check_offers(
    uow: UnitOfWork, drafts: Sequence[OfferDraft]
) -> list[ValidOffer | list[FieldError]]:
    """Each draft checked against every rule: the offer as it would be stored, or its errors."""
    return check_drafts(drafts, await categories_by_ref(uow, (d.category for d in drafts)))


async def upsert_offers(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    drafts: Sequence[OfferDraft],
    source: str = "api",
    dry_run: bool = False,
) -> list[ItemResult]:
    """Validate each draft, then write the valid ones together. A bad item never half-writes.
    `dry_run` decides every outcome (created, updated, unchanged, failed) and writes nothing."""
    results: list[ItemResult] = []
    valid: list[tuple[int, ValidOffer]] = []
    for index, (draft, outcome) in enumerate(
        zip(drafts, await check_offers(uow, drafts), strict=True)
    ):
        results.append(ItemResult(index=index, sku=draft.sku, outcome="failed"))
        if isinstance(outcome, list):
            results[-1].errors = outcome
        else:
            valid.append((index, outcome))
    await _write_valid(uow, supplier_id, valid, results, source, dry_run, None)
    return results


async def write_offers(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    offers: Sequence[ValidOffer],
    source: str,
    dry_run: bool = False,
    relay: Relay | None = None,
    products: KnownProducts | None = None,
) -> list[ItemResult]:
    """As upsert_offers, for offers checked already (`check_drafts`, by a caller that did it
    meanwhile); a result for each. `relay`: this write's place in a sequence of overlapping
    ones (see Relay); `products`: what the writes before it learnt of products."""
    results = [ItemResult(index=i, sku=o.sku, outcome="failed") for i, o in enumerate(offers)]
    items = list(enumerate(offers))
    await _write_valid(uow, supplier_id, items, results, source, dry_run, relay, products)
    return results


async def _write_valid(
    uow: UnitOfWork,
    supplier_id: str,
    items: list[tuple[int, ValidOffer]],
    results: list[ItemResult],
    source: str,
    dry_run: bool,
    relay: Relay | None,
    products: KnownProducts | None = None,
) -> None:
    """Writes valid offers (their index in `results`); of a SKU named twice, the last."""
    valid: dict[str, tuple[int, ValidOffer]] = {}
    for index, offer in items:
        earlier = valid.get(offer.sku)
        if earlier is not None:
            results[earlier[0]].errors = [
                FieldError("sku", "duplicate_sku", f"sku repeated at item {index}; the last wins")
            ]
        valid[offer.sku] = (index, offer)
    if valid:
        await _write(uow, supplier_id, valid, results, source, dry_run, relay, products)


async def _write(
    uow: UnitOfWork,
    supplier_id: str,
    valid: dict[str, tuple[int, ValidOffer]],
    results: list[ItemResult],
    source: str,
    dry_run: bool,
    relay: Relay | None,
    products: KnownProducts | None,
) -> None:
    conn = await uow.connection()
    now = utcnow()
    listed = await store.is_listed(conn, supplier_id)
    existing = await store.existing_offers(conn, supplier_id, list(valid))
    created = sum(1 for sku in valid if sku not in existing)
    product_ids: dict[str, str] = {}
    keys: Iterator[int | None] = itertools.repeat(None)  # a dry run draws none
    if not dry_run:
        offers = [o for _, o in valid.values()]
        apart = relay.new_uow if relay is not None else None
        product_ids = await _products_for(uow, offers, now, existing, apart, products)
        if relay is not None:
            relay.open()
        keys = iter(await store.offer_keys(conn, created))
    # New offers become rows (store.INSERT_COLUMNS) straight from the offer: a feed's usual case.
    inserts: list[tuple[Any, ...]] = []
    fresh: list[tuple[int, str, str, float | None]] = []  # attribute entries of new offers
    updates: list[dict[str, Any]] = []
    stale: list[int] = []  # offers that exist already and whose entries are replaced
    entries: list[tuple[int, str, str, float | None]] = []  # their entries
    happened: list[NewEvent] = []
    stamp = rfc3339(now)
    fresh_ids = iter(new_ids("off", created))
    for sku, (index, offer) in valid.items():
        result = results[index]
        row = existing.get(sku)
        same = row is not None and row.content_hash == offer.content_hash
        if same and row is not None and row.quantity == offer.quantity:
            # The same statement, and no order moved the quantity since: nothing to do. A
            # supplier stating its quantity again after orders took some is heard (it states
            # what is available now).
            result.outcome, result.offer_id, result.version = "unchanged", row.id, row.version
            continue
        status, gtin = _STATUS_TEXT[offer.status], offer.gtin
        live = int(listed and status == _ACTIVE)
        product_id = product_ids.get(gtin) if gtin else None
        if row is None:
            offer_id, pk = next(fresh_ids), next(keys)
            inserts.append(
                (
                    pk,
                    offer_id,
                    supplier_id,
                    sku,
                    offer.category_id,
                    offer.title,
                    offer.description,
                    offer.attributes,
                    offer.price_amount,
                    offer.currency,
                    offer.quantity,
                    status,
                    live,
                    gtin,
                    product_id,
                    source,
                    offer.content_hash,
                    1,
                    offer.search_title,
                    offer.search_body,
                    now,
                    now,
                )
            )
            if pk is not None:
                fresh.extend(attribute_rows(offer.attributes, pk))
            result.outcome, result.offer_id, result.version = "created", offer_id, 1
            written = _Written(offer_id, supplier_id, status, live, product_id, source, 1)
            happened.append(_offer_event("created", offer, written, stamp, stamp, False))
            continue
        written = _Written(row.id, supplier_id, status, live, product_id, source, row.version + 1)
        updates.append(
            {
                "b_pk": row.pk,
                "category_id": offer.category_id,
                "title": offer.title,
                "description": offer.description,
                "attributes": offer.attributes,
                "price_amount": offer.price_amount,
                "currency": offer.currency,
                "quantity": offer.quantity,
                "status": status,
                "live": live,
                "gtin": gtin,
                "product_id": product_id,
                "source": source,
                "content_hash": offer.content_hash,
                "version": written.version,
                "search_title": offer.search_title,
                "search_body": offer.search_body,
                "updated_at": now,
            }
        )
        result.outcome, result.offer_id, result.version = "updated", row.id, written.version
        if row.attributes != offer.attributes:
            stale.append(row.pk)
            entries.extend(attribute_rows(offer.attributes, row.pk))
        kind = (
            "quantity"  # only orders moved it since the same statement
            if same
            else change_kind(
                offer,
                hash_before=row.content_hash,
                price_before=row.price_amount,
                quantity_before=row.quantity,
            )
        )
        created_at = rfc3339(row.created_at)
        happened.append(_offer_event(kind, offer, written, created_at, stamp, bool(row.live)))
    if dry_run:
        return
    await store.insert_offers(conn, inserts)
    if relay is not None:
        # Rows nobody else can see yet are written; the rest waits for the write before.
        await store.replace_attributes(conn, [], fresh)
        await relay.turn()
    else:
        entries.extend(fresh)
    # Rows locked in primary-key order, as orders lock them (catalog.stock): a batch and a
    # checkout touching the same offers never wait for each other in a circle.
    updates.sort(key=lambda row: row["b_pk"])
    await store.update_offers(conn, updates)
    await events.emit(uow, *happened)
    if any(row[_LIVE] for row in inserts) or any(row["live"] for row in updates):
        await access.mark_milestone(
            uow, supplier_id=supplier_id, milestone=Milestone.FIRST_OFFER_LIVE
        )
    await store.replace_attributes(conn, stale, entries)


_STATUS_TEXT = {status: str(status) for status in OfferStatus}
_ACTIVE = str(OfferStatus.ACTIVE)
_LIVE = store.INSERT_COLUMNS.index("live")


@dataclass(slots=True)
class _Written:
    """What an offer write stored beside the offer's own content."""

    offer_id: str
    supplier_id: str
    status: str
    live: int
    product_id: str | None
    source: str
    version: int


def _offer_event(
    kind: str,
    offer: ValidOffer,
    written: _Written,
    created: str,
    updated: str,
    live_before: bool,
) -> NewEvent:
    """The event of an offer write: the offer as written."""
    payload = {
        "id": written.offer_id,
        "sku": offer.sku,
        "supplier": written.supplier_id,
        "category": offer.category_id,
        "title": offer.title,
        "description": offer.description,
        "attributes": offer.attributes,
        "price": {"amount": offer.price_amount, "currency": offer.currency},
        "quantity": offer.quantity,
        "status": written.status,
        "gtin": offer.gtin,
        "product": written.product_id,
        "source": written.source,
        "version": written.version,
        "created_at": created,
        "updated_at": updated,
    }
    return _event(kind, payload, offer.category_id, live_before, bool(written.live))


def _event(
    kind: str, payload: dict[str, Any], category_id: str, live_before: bool, live_after: bool
) -> NewEvent:
    event_type = OFFER_CHANGES[kind]
    return NewEvent(
        type=event_type,
        object_id=payload["id"],
        version=payload["version"],
        payload=payload,
        supplier_id=payload["supplier"],
        category_id=category_id,
        store_type=store_type(event_type, live_before=live_before, live_after=live_after),
    )


def offer_events(kind: str, offers: Iterable[tuple[Offer, bool, bool]]) -> list[NewEvent]:
    """Events of offers changed as a whole (removed, switched off, listed or unlisted):
    each with whether it was live before and is live after."""
    return [
        _event(kind, present_offer(o, with_supplier=True), o.category_id, before, after)
        for o, before, after in offers
    ]


async def _products_for(
    uow: UnitOfWork,
    offers: list[ValidOffer],
    now: Any,
    existing: Mapping[str, Any],
    apart: Callable[[], UnitOfWork] | None,
    products: KnownProducts | None,
) -> dict[str, str]:
    """Each GTIN's product, created if new. An offer keeping its GTIN keeps its product: no
    lookup (a price or stock update is then one statement shorter), nor for a product in
    `products`, which learns those found committed. With `apart` (PostgreSQL), new products are
    made and committed in a transaction of their own first."""
    known = {row.gtin: row.product_id for row in existing.values() if row.gtin and row.product_id}
    gtins = sorted({o.gtin for o in offers if o.gtin and o.gtin not in known})
    if products is not None and gtins:
        remembered = products.ids
        known |= {g: remembered[g] for g in gtins if g in remembered}
        gtins = [g for g in gtins if g not in known]
    if not gtins:
        return known
    found = await store.products_by_gtin(await uow.connection(), gtins)  # before any made here
    if products is not None:
        products.add(found)
    known |= found
    fresh: dict[str, dict[str, Any]] = {}
    for offer in offers:
        if offer.gtin and offer.gtin not in known and offer.gtin not in fresh:
            fresh[offer.gtin] = {
                "id": new_id("prd"),
                "gtin": offer.gtin,
                "title": offer.title,
                "category_id": offer.category_id,
                "created_at": now,
            }
    if not fresh:
        return known
    if uow.dialect != "postgresql":
        await store.insert_products(await uow.connection(), list(fresh.values()))
        return known | {g: row["id"] for g, row in fresh.items()}
    # Another transaction may create the same product: the first one wins, whose id is read.
    if apart is None:
        await store.insert_new_products(await uow.connection(), list(fresh.values()))
        return known | await store.products_by_gtin(await uow.connection(), list(fresh))
    async with apart() as own:
        await store.insert_new_products(await own.connection(), list(fresh.values()))
        await own.commit()
    made = await store.products_by_gtin(await uow.connection(), list(fresh))
    if products is not None:
        products.add(made)  # committed, by this write or the one that won
    return known | made


async def delete_offer(uow: UnitOfWork, *, supplier_id: str, sku: str) -> Offer:
    gone = await _retire(uow, store.undeleted(await uow.connection(), supplier_id, [sku]))
    if not gone:
        raise NotFound(f"no offer with sku {sku!r}", code="offer_not_found")
    return gone[0]


async def delete_offers(
    uow: UnitOfWork, *, supplier_id: str, skus: Sequence[str], dry_run: bool = False
) -> set[str]:
    """Deletes these offers of the supplier; returns the SKUs it deleted (the others were gone
    already, or never existed: deleting them again changes nothing). `dry_run` only tells."""
    conn = await uow.connection()
    if dry_run or not skus:
        return await store.not_deleted(conn, supplier_id, skus)
    return {o.sku for o in await _retire(uow, store.undeleted(conn, supplier_id, skus))}


async def _retire(
    uow: UnitOfWork,
    where: Sequence[Any],
    status: OfferStatus = OfferStatus.DELETED,
    limit: int | None = None,
) -> list[Offer]:
    """Takes the offers matching `where` out of the store as `status`, with their events;
    returns them as they are now."""
    at = utcnow()
    done: list[Offer] = []
    values = store.retirement(status, at)
    async for chunk in store.change_offers(await uow.connection(), where, values, limit=limit):
        now = [
            (replace(o, status=status, version=o.version + 1, updated_at=at), live)
            for o, live in chunk
        ]
        kind = "removed" if status is OfferStatus.DELETED else "content"
        await events.emit(uow, *offer_events(kind, ((o, live, False) for o, live in now)))
        done.extend(o for o, _ in now)
    return done


# --- full replacement: offers a complete listing does not name are switched off ---------------


async def refresh_statistics(uow: UnitOfWork, *, lookups_only: bool = False) -> None:
    """Brings the planner's statistics up to date after a large load (PostgreSQL; SQLite plans
    by its indexes alone): for the searches that follow, or (`lookups_only`, during a load) for
    the SKU lookup of offer writes, which without them reads every offer of the supplier
    (measured: an unchanged re-import at 750 rows/s instead of 6,500)."""
    if uow.dialect == "postgresql":
        await store.analyze(await uow.connection(), lookups_only=lookups_only)


async def note_listed(uow: UnitOfWork, *, token: str, skus: Sequence[str]) -> None:
    """Remembers, under `token`, SKUs a supplier's complete listing named."""
    await store.note_seen(await uow.connection(), token, skus)


async def unlisted_count(uow: UnitOfWork, *, supplier_id: str, token: str) -> tuple[int, int]:
    """(active offers the listing did not name, all active offers) of the supplier."""
    conn = await uow.connection()
    return (
        await store.count_absent(conn, supplier_id, token),
        await store.count_active(conn, supplier_id),
    )


async def deactivate_unlisted(
    uow: UnitOfWork, *, supplier_id: str, token: str, limit: int = 1000
) -> int:
    """Switches off up to `limit` active offers the listing did not name; returns how many."""
    switched = await _retire(uow, store.absent(supplier_id, token), OfferStatus.INACTIVE, limit)
    return len(switched)


async def forget_listed(uow: UnitOfWork, *, token: str) -> None:
    await store.forget_seen(await uow.connection(), token)


# --- reads ----------------------------------------------------------------------------------


async def own_offer(uow: UnitOfWork, *, supplier_id: str, sku: str) -> Offer:
    offer = await store.offer_by_sku(await uow.connection(), supplier_id, sku)
    if offer is None or offer.status is OfferStatus.DELETED:
        raise NotFound(f"no offer with sku {sku!r}", code="offer_not_found")
    return offer


async def any_offer(uow: UnitOfWork, *, offer_id: str) -> Offer:
    offer = await store.offer_by_id(await uow.connection(), offer_id)
    if offer is None:
        raise NotFound(f"no offer {offer_id}", code="offer_not_found")
    return offer


async def list_offers(
    uow: UnitOfWork,
    *,
    supplier_id: str | None,
    category: str | None = None,
    status: OfferStatus | None = None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Offer], str | None]:
    """Offers newest first, for a supplier (its own) or an operator (any)."""
    params = {"sup": supplier_id, "cat": category, "st": str(status) if status else None}
    fp = fingerprint(params)
    before = None
    if cursor:
        before = int(
            decode_cursor(cursor, expected_sort="pk", expected_fingerprint=fp, arity=1).key[0]
        )
    category_id = None
    if category:
        category_id = (await get_category(uow, ref=category)).id
    found = await store.list_offers(
        await uow.connection(),
        supplier_id=supplier_id,
        category_id=category_id,
        status=str(status) if status else None,
        before_pk=before,
        limit=limit + 1,
    )
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        next_cursor = encode_cursor(Cursor("pk", (found[-1].pk,), fp))
    return found, next_cursor


def _stamp(value: Any) -> str:
    # SQLite hands the stored text ("2026-11-22 17:30:35.853339", UTC); PostgreSQL a datetime.
    return value.replace(" ", "T") + "Z" if isinstance(value, str) else rfc3339(value)


def present_store_offer(
    row: Any, markup_bps: int, fields: Sequence[str] | None = None
) -> dict[str, Any]:
    """An offer as a client sees it (a `store_columns` row): its price marked up, nothing
    supplier-private. Attributes pass through as the stored JSON text."""
    # Unpacked by position: a Row's attribute lookup costs 0.5 µs a field (measured), this 0.01.
    (_, offer_id, title, description, category, supplier, attributes, amount, currency,
     quantity, gtin, product, version, created, updated, *_) = row  # fmt: skip
    full = {
        "id": offer_id,
        "title": title,
        "description": description,
        "category": category,
        "supplier": supplier,
        "attributes": orjson.Fragment(attributes),
        "price": {"amount": apply_markup(amount, markup_bps), "currency": currency},
        "quantity": quantity,
        "gtin": gtin,
        "product": product,
        "version": version,
        "created_at": _stamp(created),
        "updated_at": _stamp(updated),
    }
    if fields is None or len(fields) == len(STORE_FIELDS):
        return full
    return {name: full[name] for name in fields}


async def resolve_categories(uow: UnitOfWork, refs: Sequence[str]) -> tuple[str, ...]:
    """Category ids for ids or slugs; unknown ones are dropped (they match nothing). A category's
    id and slug never change and categories are never deleted, so found ones are remembered."""
    memo = uow.memo
    missing = [r for r in refs if f"category:{r}" not in memo]
    if missing:
        query = sa.select(store.categories.c.id, store.categories.c.slug).where(
            sa.or_(store.categories.c.id.in_(missing), store.categories.c.slug.in_(missing))
        )
        for row in await uow.fetch(query):
            memo[f"category:{row.id}"] = row.id
            memo[f"category:{row.slug}"] = row.id
    return tuple(sorted({memo[f"category:{r}"] for r in refs if f"category:{r}" in memo}))


def _empty_page(request: SearchRequest) -> dict[str, Any]:
    page: dict[str, Any] = {"data": [], "has_more": False, "next_cursor": None}
    if request.facets:
        page["facets"] = {name: [] for name in request.facets}
    return page


async def _sponsored(
    uow: UnitOfWork,
    planned: SearchPlan,
    sponsors: Sequence[tuple[str, str, str]],
    category_ids: Sequence[str] | None,
    limit: int,
) -> list[Any]:
    """The sponsored placements of a first page: for the highest bids in turn, the newest
    matching offer each places, one per supplier, at most `SPONSORED_SLOTS` and half the
    page."""
    slots = min(SPONSORED_SLOTS, limit // 2)
    bids = [b for b in sponsors if category_ids is None or b[1] in category_ids]
    sqlite = uow.dialect == "sqlite"
    chosen: list[Any] = []
    for bid in bids[:SPONSOR_TRIES]:
        if len(chosen) >= slots:
            break
        if any(c.supplier_id == bid[0] for c in chosen):
            continue
        chosen.extend(await uow.fetch(sponsored(planned.where, bid, sqlite)))
    return chosen


async def search_offers(
    uow: UnitOfWork,
    *,
    view: ClientView | None,
    request: SearchRequest,
    sponsors: Sequence[tuple[str, str, str]] = (),
) -> dict[str, Any]:
    """One page of the store's offers, with facets when asked for. `sponsors`: bids for
    placement as (supplier, category, currency), highest first; on a first page the offers
    they place come first, flagged `sponsored`."""
    fp = fingerprint(request.fingerprint_params())
    text = TextMatch(uow.dialect)
    arity = 2 if request.sort is not Sort.NEWEST else 1
    after = None
    if request.cursor:
        after = decode_cursor(
            request.cursor, expected_sort=str(request.sort), expected_fingerprint=fp, arity=arity
        ).key
    category_ids = None
    if request.categories:
        category_ids = await resolve_categories(uow, request.categories)
        if not category_ids:
            return _empty_page(request)
    small: set[str] = set()
    if request.sort in (Sort.PRICE, Sort.PRICE_DESC) and not request.terms:
        for name, values in request.attr_equals:
            held = (await uow.fetch(small_set_count(name, values)))[0][0]
            if held <= SMALL_SET:
                small.add(name)
    planned = plan(
        request,
        text=text,
        view=view,
        after=after,
        category_ids=category_ids,
        small_sets=frozenset(small),
    )
    rows: list[Any] = []
    for statement in planned.segments:
        rows.extend(await uow.fetch(statement, inline=not request.terms))
        if len(rows) > request.limit:
            break
    markup = view.markup_bps if view else 0
    top: list[Any] = []
    if sponsors and after is None:
        top = await _sponsored(uow, planned, sponsors, category_ids, request.limit)
    shown = [r.id for r in top]
    organic = [r for r in rows if r.id not in shown][: request.limit - len(top)]
    has_more = bool(organic) and rows.index(organic[-1]) + 1 < len(rows)
    rows = organic
    page: dict[str, Any] = {
        "data": [
            *({**present_store_offer(r, markup, request.fields), "sponsored": True} for r in top),
            *(present_store_offer(r, markup, request.fields) for r in rows),
        ],
        "has_more": has_more,
        "next_cursor": encode_cursor(
            Cursor(str(request.sort), tuple(getattr(rows[-1], k) for k in planned.key_columns), fp)
        )
        if has_more
        else None,
    }
    if request.facets:
        page["facets"] = {name: [] for name in request.facets}
        conn = await uow.connection()  # facets can count many rows: off the event loop
        for name, query in planned.facets.items():
            found = (await conn.execute(query)).all()
            page["facets"][name] = [{"value": r.value, "count": r.count} for r in found]
    return page


async def store_offer(uow: UnitOfWork, *, view: ClientView | None, offer_id: str) -> Any:
    columns = store_columns(uow.dialect == "sqlite")
    query = sa.select(*columns).where(store.offers.c.id == offer_id, *visible_to(view))
    found = await uow.fetch(query)
    if not found:
        raise NotFound(f"no offer {offer_id}", code="offer_not_found")
    return found[0]


async def store_product(
    uow: UnitOfWork, *, view: ClientView | None, product_id: str
) -> dict[str, Any]:
    """A product with the offers this client may see, cheapest first (the first is the buy box)."""
    found = await uow.fetch(store.products.select().where(store.products.c.id == product_id))
    product = found[0] if found else None
    if product is None:
        raise NotFound(f"no product {product_id}", code="product_not_found")
    query = (
        sa.select(*store_columns(uow.dialect == "sqlite"))
        .where(store.offers.c.product_id == product_id, *visible_to(view))
        .order_by(store.offers.c.price_amount, store.offers.c.pk)
        .limit(100)
    )
    rows = await uow.fetch(query)
    if not rows:
        raise NotFound(f"no product {product_id}", code="product_not_found")
    markup = view.markup_bps if view else 0
    offers = [present_store_offer(r, markup) for r in rows]
    return {
        "id": product.id,
        "gtin": product.gtin,
        "title": product.title,
        "category": product.category_id,
        "buy_box": offers[0],
        "offers": offers,
        "offer_count": len(offers),
    }


def raise_if_failed(results: list[ItemResult]) -> None:
    """For single-offer writes: the item's errors become the request's error."""
    if results and results[0].outcome == "failed":
        raise ValidationFailed("the offer is not valid", errors=results[0].errors)


def present_offer(offer: Offer, *, with_supplier: bool = False) -> dict[str, Any]:
    """An offer as its supplier (or an operator) sees it: its own price, status and source."""
    view = {
        "id": offer.id,
        "sku": offer.sku,
        "category": offer.category_id,
        "title": offer.title,
        "description": offer.description,
        "attributes": offer.attributes,
        "price": {"amount": offer.price_amount, "currency": offer.currency},
        "quantity": offer.quantity,
        "reserved": offer.reserved,
        "sold": offer.sold,
        "status": str(offer.status),
        "gtin": offer.gtin,
        "product": offer.product_id,
        "source": offer.source,
        "version": offer.version,
        "created_at": rfc3339(offer.created_at),
        "updated_at": rfc3339(offer.updated_at),
    }
    if with_supplier:
        view["supplier"] = offer.supplier_id
    return view
