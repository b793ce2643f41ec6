"""Catalog tables and their SQL (Core: this is the hot path)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplane.catalog.model import Category, Offer, OfferStatus
from marketplane.db import bulk, upsert
from marketplane.db.metadata import metadata
from marketplane.db.types import BigPk, Json, UtcDateTime

Id = sa.String(40)

categories = sa.Table(
    "categories",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("slug", sa.String(80), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("attribute_schema", Json, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
supplier_listing = sa.Table(
    "supplier_listing",
    metadata,
    sa.Column("supplier_id", Id, primary_key=True),
    sa.Column("listed", sa.Boolean, nullable=False),
)
products = sa.Table(
    "products",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("gtin", sa.String(14), nullable=False, unique=True),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("category_id", Id, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
offers = sa.Table(
    "offers",
    metadata,
    sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("sku", sa.String(200), nullable=False),
    sa.Column("category_id", Id, nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("price_amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),  # available: what may still be ordered
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("live", sa.SmallInteger, nullable=False),
    sa.Column("gtin", sa.String(14)),
    sa.Column("product_id", Id),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("content_hash", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("search_title", sa.Text, nullable=False),
    sa.Column("search_body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Held for unpaid or undecided orders, and sold to accepted ones (see catalog.stock).
    sa.Column("reserved", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sold", sa.BigInteger, nullable=False, server_default="0"),
)
offer_attrs = sa.Table(
    "offer_attrs",
    metadata,
    sa.Column("offer_pk", BigPk, primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("str_value", sa.String(200), primary_key=True),
    sa.Column("num_value", sa.Float),
)

OFFER_COLUMNS = (
    offers.c.pk,
    offers.c.id,
    offers.c.supplier_id,
    offers.c.sku,
    offers.c.category_id,
    offers.c.title,
    offers.c.description,
    offers.c.attributes,
    offers.c.price_amount,
    offers.c.currency,
    offers.c.quantity,
    offers.c.status,
    offers.c.gtin,
    offers.c.product_id,
    offers.c.source,
    offers.c.version,
    offers.c.created_at,
    offers.c.updated_at,
    offers.c.reserved,
    offers.c.sold,
)


def among(conn: AsyncConnection, column: Any, values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """`column IN values`, with the values as one parameter: an IN list of a thousand values
    took 0.5 ms to render per statement and was a new statement for each count. PostgreSQL: an
    array (`= ANY`). SQLite: a JSON array (`IN (SELECT value FROM json_each(?))`), which it
    searches through the column's index as it does a list (strings and integers only)."""
    return _among(conn.dialect.name, column, sa.bindparam(None, value=among_value(conn, values)))


def among_value(conn: AsyncConnection, values: Sequence[Any]) -> Any:
    """The bound value of `among` (or of `among_param` in a statement built once)."""
    return (
        list(values) if conn.dialect.name == "postgresql" else orjson.dumps(list(values)).decode()
    )


def among_param(dialect: str, column: Any, name: str) -> sa.ColumnElement[bool]:
    """`among` with a named parameter, for a statement built once per dialect: building one
    per request (its IN clause, then its cache key) cost more than running it."""
    return _among(dialect, column, sa.bindparam(name))


def _among(dialect: str, column: Any, param: sa.BindParameter[Any]) -> sa.ColumnElement[bool]:
    if dialect == "postgresql":
        param.type = postgresql.ARRAY(column.type)
        return column == sa.any_(param)  # type: ignore[no-any-return]
    param.type = sa.Text()
    each = sa.func.json_each(param).table_valued("value")
    return column.in_(sa.select(each.c.value))  # type: ignore[no-any-return]


_built: dict[tuple[str, str], Any] = {}


def built_once(conn: AsyncConnection, name: str, build: Callable[[str], Any]) -> Any:
    """The statement `build(dialect)` makes, made once per dialect and `name`."""
    key = (conn.dialect.name, name)
    statement = _built.get(key)
    if statement is None:
        statement = _built[key] = build(conn.dialect.name)
    return statement


def offer_from_row(row: Any) -> Offer:
    return Offer(
        pk=row.pk,
        id=row.id,
        supplier_id=row.supplier_id,
        sku=row.sku,
        category_id=row.category_id,
        title=row.title,
        description=row.description,
        attributes=row.attributes,
        price_amount=row.price_amount,
        currency=row.currency,
        quantity=row.quantity,
        status=OfferStatus(row.status),
        gtin=row.gtin,
        product_id=row.product_id,
        source=row.source,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        reserved=row.reserved,
        sold=row.sold,
    )


def _category(row: Any) -> Category:
    return Category(
        id=row.id,
        slug=row.slug,
        name=row.name,
        attribute_schema=row.attribute_schema,
        schema_version=row.schema_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# --- categories -----------------------------------------------------------------------------


async def insert_category(conn: AsyncConnection, category: Category) -> None:
    await conn.execute(
        categories.insert().values(
            id=category.id,
            slug=category.slug,
            name=category.name,
            attribute_schema=category.attribute_schema,
            schema_version=category.schema_version,
            created_at=category.created_at,
            updated_at=category.updated_at,
        )
    )


async def update_category(conn: AsyncConnection, category: Category) -> None:
    await conn.execute(
        categories.update()
        .where(categories.c.id == category.id)
        .values(
            name=category.name,
            attribute_schema=category.attribute_schema,
            schema_version=category.schema_version,
            updated_at=category.updated_at,
        )
    )


async def category_by_id_or_slug(conn: AsyncConnection, ref: str) -> Category | None:
    column = categories.c.id if ref.startswith("cat_") else categories.c.slug
    row = (await conn.execute(categories.select().where(column == ref))).first()
    return _category(row) if row else None


async def slug_taken(conn: AsyncConnection, slug: str) -> bool:
    query = sa.select(categories.c.id).where(categories.c.slug == slug)
    return (await conn.execute(query)).first() is not None


async def list_categories(conn: AsyncConnection) -> list[Category]:
    return [_category(r) for r in await conn.execute(categories.select().order_by(categories.c.id))]


def _categories_by_refs(dialect: str) -> sa.Select[Any]:
    return categories.select().where(
        sa.or_(
            among_param(dialect, categories.c.id, "refs"),
            among_param(dialect, categories.c.slug, "refs"),
        )
    )


async def categories_by_refs(conn: AsyncConnection, refs: Iterable[str]) -> list[Category]:
    query = built_once(conn, "categories_by_refs", _categories_by_refs)
    found = await conn.execute(query, {"refs": among_value(conn, list(refs))})
    return [_category(r) for r in found]


# --- supplier listing -----------------------------------------------------------------------


def _is_listed(dialect: str) -> sa.Select[Any]:
    query = sa.select(supplier_listing.c.listed).where(
        supplier_listing.c.supplier_id == sa.bindparam("supplier_id")
    )
    return query.with_for_update(read=True) if dialect == "postgresql" else query


async def is_listed(conn: AsyncConnection, supplier_id: str) -> bool:
    """Whether the supplier's offers go live. On PostgreSQL the row is share-locked, so a status
    change waits for this transaction (and this one for it): offers never go live behind it."""
    query = built_once(conn, "is_listed", _is_listed)
    return bool((await conn.execute(query, {"supplier_id": supplier_id})).scalar())


async def set_listed(conn: AsyncConnection, supplier_id: str, listed: bool) -> None:
    """Records whether the supplier is listed; its offers follow through `change_offers`."""
    updated = await conn.execute(
        supplier_listing.update()
        .where(supplier_listing.c.supplier_id == supplier_id)
        .values(listed=listed)
    )
    if updated.rowcount == 0:
        await conn.execute(supplier_listing.insert().values(supplier_id=supplier_id, listed=listed))


def listing_change(
    supplier_id: str, listed: bool
) -> tuple[list[sa.ColumnElement[bool]], dict[str, Any]]:
    """The offers a listing change switches on or off, and how (for `change_offers`)."""
    if listed:
        where = [
            offers.c.supplier_id == supplier_id,
            offers.c.status == str(OfferStatus.ACTIVE),
            offers.c.live == 0,
        ]
        return where, {"live": 1}
    return [offers.c.supplier_id == supplier_id, offers.c.live == 1], {"live": 0}


CHANGE_CHUNK = 1000


async def change_offers(
    conn: AsyncConnection,
    where: Sequence[sa.ColumnElement[bool]],
    values: dict[str, Any],
    *,
    limit: int | None = None,
) -> AsyncIterator[list[tuple[Offer, bool]]]:
    """Sets `values` on the offers matching `where` (at most `limit`), CHANGE_CHUNK at a time;
    yields each chunk's offers as they were before, with whether each was live. The change must
    take an offer out of `where`, or it would be found again."""
    left = limit
    while left is None or left > 0:
        size = CHANGE_CHUNK if left is None else min(CHANGE_CHUNK, left)
        rows = (
            await conn.execute(
                sa.select(*OFFER_COLUMNS, offers.c.live)
                .where(*where)
                .order_by(offers.c.pk)
                .limit(size)
            )
        ).all()
        if not rows:
            return
        await conn.execute(
            offers.update().where(among(conn, offers.c.pk, [r.pk for r in rows])).values(values)
        )
        yield [(offer_from_row(r), bool(r.live)) for r in rows]
        if left is not None:
            left -= len(rows)
        if len(rows) < size:
            return


def retirement(status: OfferStatus, at: datetime) -> dict[str, Any]:
    """The values that take offers out of the store as deleted or inactive (`change_offers`)."""
    return {
        "status": str(status),
        "live": 0,
        "version": offers.c.version + 1,
        "updated_at": at,
        "content_hash": str(status),  # so the same offer sent again is an update
    }


# --- products -------------------------------------------------------------------------------


async def products_by_gtin(conn: AsyncConnection, gtins: Sequence[str]) -> dict[str, str]:
    """The products of these GTINs that exist, by GTIN. A feed batch asks for thousands (on
    PostgreSQL, read from the driver: see bulk.fetch)."""
    if not gtins:
        return {}
    if conn.dialect.name == "postgresql":
        found = await bulk.fetch(conn, _PRODUCTS_BY_GTIN, list(gtins))
        return dict(found)
    rows = await conn.execute(
        sa.select(products.c.gtin, products.c.id).where(among(conn, products.c.gtin, gtins))
    )
    return {r.gtin: r.id for r in rows.all()}


_PRODUCTS_BY_GTIN = "SELECT gtin, id FROM products WHERE gtin = ANY($1::varchar[])"


async def insert_products(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(products.insert(), rows)


async def insert_new_products(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """As insert_products, leaving out GTINs another transaction has made a product of
    (PostgreSQL: it waits for that one to end, then skips those)."""
    if rows:
        await conn.execute(
            postgresql.insert(products).on_conflict_do_nothing(index_elements=["gtin"]), rows
        )


# --- offers ---------------------------------------------------------------------------------


def _existing_offers(dialect: str) -> sa.Select[Any]:
    query = sa.select(
        offers.c.pk,
        offers.c.id,
        offers.c.sku,
        offers.c.content_hash,
        offers.c.version,
        offers.c.attributes,
        offers.c.created_at,
        offers.c.gtin,
        offers.c.product_id,
        offers.c.price_amount,
        offers.c.quantity,
        offers.c.live,
    )
    return query.where(
        offers.c.supplier_id == sa.bindparam("supplier_id"),
        among_param(dialect, offers.c.sku, "skus"),
    )


async def existing_offers(
    conn: AsyncConnection, supplier_id: str, skus: Sequence[str]
) -> dict[str, Any]:
    query = built_once(conn, "existing_offers", _existing_offers)
    rows = await conn.execute(query, {"supplier_id": supplier_id, "skus": among_value(conn, skus)})
    return {r.sku: r for r in rows}


# The sequence is looked up once (OFFSET 0 keeps the planner from doing it for each key: 3 µs a
# key, measured, ten times the cost of nextval itself).
_DRAW_KEYS = """SELECT nextval(seq) FROM generate_series(1, $1),
    (SELECT CAST(pg_get_serial_sequence('offers', 'pk') AS regclass) AS seq OFFSET 0) AS s"""


# An offer as inserted, in this order (catalog.service builds the rows).
INSERT_COLUMNS = (
    "pk",
    "id",
    "supplier_id",
    "sku",
    "category_id",
    "title",
    "description",
    "attributes",
    "price_amount",
    "currency",
    "quantity",
    "status",
    "live",
    "gtin",
    "product_id",
    "source",
    "content_hash",
    "version",
    "search_title",
    "search_body",
    "created_at",
    "updated_at",
)


# What an update of an offer writes: everything but its identity and when it was created.
UPDATE_COLUMNS = tuple(
    c for c in INSERT_COLUMNS if c not in ("pk", "id", "supplier_id", "sku", "created_at")
)


async def offer_keys(conn: AsyncConnection, count: int) -> list[int]:
    """Primary keys for `count` new offers, ascending. Chosen before the insert, so nothing is
    looked up after it (on PostgreSQL the rows go by COPY; on SQLite, RETURNING with ordered
    rows makes SQLAlchemy fall back to one INSERT per row: measured 15× slower for 1,000)."""
    if not count:
        return []
    if conn.dialect.name == "postgresql":
        return [pk for (pk,) in await bulk.fetch(conn, _DRAW_KEYS, count)]
    # As SQLite would choose them, one past the largest: the writer holds the database from its
    # first statement (BEGIN IMMEDIATE), so nobody takes them meanwhile.
    last = (await conn.execute(sa.select(sa.func.max(offers.c.pk)))).scalar() or 0
    return list(range(last + 1, last + 1 + count))


async def insert_offers(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert offers, as INSERT_COLUMNS rows with keys from `offer_keys`."""
    await bulk.insert_values(conn, offers, INSERT_COLUMNS, rows)


_UPDATE = (
    offers.update()
    .where(offers.c.pk == sa.bindparam("b_pk", type_=offers.c.pk.type))
    .values({name: sa.bindparam(name, type_=offers.c[name].type) for name in UPDATE_COLUMNS})
)


async def update_offers(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await bulk.execute_many(conn, _UPDATE, rows)


ATTRIBUTE_COLUMNS = ("offer_pk", "name", "str_value", "num_value")


def _drop_attributes(dialect: str) -> sa.Delete:
    return offer_attrs.delete().where(among_param(dialect, offer_attrs.c.offer_pk, "pks"))


async def replace_attributes(
    conn: AsyncConnection, offer_pks: Sequence[int], entries: list[tuple[int, str, str, Any]]
) -> None:
    """Drops the entries of `offer_pks`, then writes `entries` (ATTRIBUTE_COLUMNS tuples)."""
    if offer_pks:
        statement = built_once(conn, "drop_attributes", _drop_attributes)
        await conn.execute(statement, {"pks": among_value(conn, offer_pks)})
    await bulk.insert_values(conn, offer_attrs, ATTRIBUTE_COLUMNS, entries)


async def offer_by_sku(conn: AsyncConnection, supplier_id: str, sku: str) -> Offer | None:
    row = (
        await conn.execute(
            sa.select(*OFFER_COLUMNS).where(
                offers.c.supplier_id == supplier_id, offers.c.sku == sku
            )
        )
    ).first()
    return offer_from_row(row) if row else None


async def offer_by_id(conn: AsyncConnection, offer_id: str) -> Offer | None:
    row = (await conn.execute(sa.select(*OFFER_COLUMNS).where(offers.c.id == offer_id))).first()
    return offer_from_row(row) if row else None


async def list_offers(
    conn: AsyncConnection,
    *,
    supplier_id: str | None,
    category_id: str | None,
    status: str | None,
    before_pk: int | None,
    limit: int,
) -> list[Offer]:
    query = sa.select(*OFFER_COLUMNS).order_by(offers.c.pk.desc()).limit(limit)
    if supplier_id:
        query = query.where(offers.c.supplier_id == supplier_id)
    if category_id:
        query = query.where(offers.c.category_id == category_id)
    if status:
        query = query.where(offers.c.status == status)
    else:
        query = query.where(offers.c.status != str(OfferStatus.DELETED))
    if before_pk is not None:
        query = query.where(offers.c.pk < before_pk)
    return [offer_from_row(r) for r in await conn.execute(query)]


# --- full replacement: what a supplier's complete listing named -----------------------------

offers_seen = sa.Table(
    "offers_seen",
    metadata,
    sa.Column("token", sa.String(40), primary_key=True),
    sa.Column("sku", sa.String(200), primary_key=True),
)


async def note_seen(conn: AsyncConnection, token: str, skus: Sequence[str]) -> None:
    if not skus:
        return
    await conn.execute(
        upsert.insert(conn, offers_seen).on_conflict_do_nothing(),
        [{"token": token, "sku": sku} for sku in skus],
    )


def _absent(supplier_id: str, token: str) -> sa.ColumnElement[bool]:
    seen = sa.select(offers_seen.c.sku).where(offers_seen.c.token == token)
    return sa.and_(
        offers.c.supplier_id == supplier_id,
        offers.c.status == str(OfferStatus.ACTIVE),
        offers.c.sku.not_in(seen),
    )


async def count_absent(conn: AsyncConnection, supplier_id: str, token: str) -> int:
    query = sa.select(sa.func.count()).select_from(offers).where(_absent(supplier_id, token))
    return int((await conn.execute(query)).scalar_one())


async def count_active(conn: AsyncConnection, supplier_id: str) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(offers)
        .where(offers.c.supplier_id == supplier_id, offers.c.status == str(OfferStatus.ACTIVE))
    )
    return int((await conn.execute(query)).scalar_one())


def absent(supplier_id: str, token: str) -> list[sa.ColumnElement[bool]]:
    """Active offers of the supplier its listing `token` did not name (for `change_offers`)."""
    return [_absent(supplier_id, token)]


async def forget_seen(conn: AsyncConnection, token: str) -> None:
    await conn.execute(offers_seen.delete().where(offers_seen.c.token == token))


async def has_active_offers(conn: AsyncConnection, supplier_id: str) -> bool:
    query = sa.select(offers.c.pk).where(
        offers.c.supplier_id == supplier_id, offers.c.status == str(OfferStatus.ACTIVE)
    )
    return (await conn.execute(query.limit(1))).first() is not None


def undeleted(
    conn: AsyncConnection, supplier_id: str, skus: Sequence[str]
) -> list[sa.ColumnElement[bool]]:
    """The supplier's offers with these SKUs that are not deleted (for `change_offers`)."""
    return [
        offers.c.supplier_id == supplier_id,
        among(conn, offers.c.sku, skus),
        offers.c.status != str(OfferStatus.DELETED),
    ]


async def not_deleted(conn: AsyncConnection, supplier_id: str, skus: Sequence[str]) -> set[str]:
    if not skus:
        return set()
    found = await conn.execute(sa.select(offers.c.sku).where(*undeleted(conn, supplier_id, skus)))
    return {r.sku for r in found}


async def analyze(conn: AsyncConnection, *, lookups_only: bool = False) -> None:
    """Planner statistics (PostgreSQL): of everything searches use, or (`lookups_only`) of the
    columns an offer write looks up by, a fifth of the time (0.13 s against 0.71 s at 100,000
    offers: the text and search columns' statistics are most of it)."""
    if lookups_only:
        await conn.exec_driver_sql("ANALYZE offers (supplier_id, sku), offer_attrs (offer_pk)")
    else:
        await conn.exec_driver_sql("ANALYZE offers, offer_attrs, products")


SEARCH_INDEX = "ix_offers_search_tsv"


async def merge_pending_search(conn: AsyncConnection) -> int:
    """PostgreSQL: moves the entries written since into the full-text index proper; returns
    how many pages of them there were. The index takes writes into a pending list (fast), and
    the write that finds the list full (4 MB) merges it first: 130-280 ms, measured, in the
    middle of a price change. Merged here, no write waits for it (a write that finds a merge
    under way appends and goes on)."""
    found = await conn.execute(
        sa.text("SELECT gin_clean_pending_list(CAST(:index AS regclass))"), {"index": SEARCH_INDEX}
    )
    return int(found.scalar() or 0)
