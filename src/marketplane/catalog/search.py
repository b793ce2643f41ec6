"""Store search: one interface over SQLite FTS5 and PostgreSQL tsvector.

Both index the same pre-normalised tokens (catalog.model.tokens), and a query is the AND of its
terms, so the same query over the same data returns the same set on both. Relevance is a property
of the offer and the query alone — offers whose title holds every term (tier 1), then the others
(tier 0), newest first within a tier — so it is identical on both databases and a cursor stays
valid while the catalog changes (corpus-wide scores such as BM25 shift under concurrent writes).

Every page is an index walk in the order asked for, stopped after `limit + 1` rows: each sort
order has a partial index over live offers, and relevance is two walks (one per tier) over the
full-text index in rowid order. Only filters that narrow the walk (one category, one supplier)
may drive an index; the rest (client restrictions, attributes) are checked row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from marketplane.access.model import ClientView
from marketplane.catalog.model import FACET_LIMIT, SearchRequest, Sort, query_value_forms
from marketplane.catalog.store import offer_attrs, offers
from marketplane.kernel.money import base_ceiling, base_floor

_fts = sa.table("offers_fts", sa.column("rowid"))
# `live = 1` written into the SQL, not bound: a planner proves a partial index applies (its
# WHERE is `live = 1`) only from a literal; a generic plan with `live = $1` cannot use one.
LIVE: Any = sa.literal_column("1")
_fts_table: ColumnElement[Any] = sa.literal_column("offers_fts")


class TextMatch:
    """How one database matches terms."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def _sqlite_query(self, terms: Sequence[str], tier: int | None) -> str:
        every = "(" + " ".join(f'"{t}"' for t in terms) + ")"
        in_title = "{search_title} : " + every
        if tier == 1:
            return in_title
        if tier == 0:
            return f"{every} NOT ({in_title})"
        return every

    def _pg_query(self, terms: Sequence[str], tier: int | None) -> ColumnElement[bool]:
        every = " & ".join(f"'{t}'" for t in terms)
        in_title = " & ".join(f"'{t}':A" for t in terms)
        text = every
        if tier == 1:
            text = in_title
        elif tier == 0:
            text = f"({every}) & !({in_title})"
        return sa.literal_column("offers.search_tsv").op("@@")(
            sa.func.to_tsquery(sa.literal_column("'simple'"), text)
        )

    def filter(self, terms: Sequence[str], tier: int | None = None) -> ColumnElement[bool]:
        """The match as a condition on offers (for sorts other than by recency)."""
        if self.sqlite:
            return offers.c.pk.in_(
                sa.select(_fts.c.rowid).where(
                    _fts_table.op("MATCH")(self._sqlite_query(terms, tier))
                )
            )
        return self._pg_query(terms, tier)

    def walk(
        self,
        columns: list[Any],
        where: list[ColumnElement[bool]],
        terms: Sequence[str],
        tier: int | None,
        before_pk: int | None,
        limit: int,
    ) -> sa.Select[Any]:
        """Matching offers newest first, walking the full-text index itself in rowid order."""
        if self.sqlite:
            conditions = [_fts_table.op("MATCH")(self._sqlite_query(terms, tier)), *where]
            if before_pk is not None:
                conditions.append(_fts.c.rowid < before_pk)
            return (
                sa.select(*columns)
                .select_from(_fts.join(offers, offers.c.pk == _fts.c.rowid))
                .where(*conditions)
                .order_by(_fts.c.rowid.desc())
                .limit(limit)
            )
        conditions = [self._pg_query(terms, tier), *where]
        if before_pk is not None:
            conditions.append(offers.c.pk < before_pk)
        return sa.select(*columns).where(*conditions).order_by(offers.c.pk.desc()).limit(limit)


def store_columns(sqlite: bool) -> list[Any]:
    """What the store shows of an offer, fetched as the database holds it: attributes as JSON
    text and (on SQLite) timestamps as text, so a page is not parsed only to be serialised."""
    attributes = (
        sa.type_coerce(offers.c.attributes, sa.Text)
        if sqlite
        else sa.cast(offers.c.attributes, sa.Text)
    )
    stamps = [
        sa.type_coerce(c, sa.Text) if sqlite else c
        for c in (offers.c.created_at, offers.c.updated_at)
    ]
    return [
        offers.c.pk,
        offers.c.id,
        offers.c.title,
        offers.c.description,
        offers.c.category_id,
        offers.c.supplier_id,
        attributes.label("attributes_json"),
        offers.c.price_amount,
        offers.c.currency,
        offers.c.quantity,
        offers.c.gtin,
        offers.c.product_id,
        offers.c.version,
        stamps[0].label("created"),
        stamps[1].label("updated"),
    ]


def _checked(column: Any, sqlite: bool) -> Any:
    """The column as a row-by-row check: SQLite's unary + keeps it from driving an index walk."""
    return sa.literal_column(f"+{column.table.name}.{column.name}") if sqlite else column


def _scope(
    column: Any,
    requested: Sequence[Any],
    allowed: frozenset[str] | None,
    *,
    sqlite: bool,
    may_drive: bool,
) -> list[ColumnElement[bool]]:
    """Conditions for what the request asks within what the client may see. A single value may
    drive an index walk; lists are checked row by row."""
    conditions: list[ColumnElement[bool]] = []
    if len(requested) == 1 and may_drive:
        conditions.append(column == requested[0])
    elif requested:
        conditions.append(_checked(column, sqlite).in_(list(requested)))
    if allowed is not None:
        if not requested and len(allowed) == 1 and may_drive:
            conditions.append(column == next(iter(allowed)))
        else:
            conditions.append(_checked(column, sqlite).in_(sorted(allowed)))
    return conditions


SMALL_SET = 1000  # offers holding a value, below which collecting them beats walking an order


def _attribute_probe(
    name: str,
    sqlite: bool,
    *,
    values: list[str] | None = None,
    low: float | None = None,
    high: float | None = None,
) -> ColumnElement[bool]:
    """Does this row hold the attribute value (or a number in range)? One primary-key probe."""
    probe = offer_attrs.alias("probe")
    bounds: list[ColumnElement[bool]] = [
        probe.c.offer_pk == offers.c.pk,
        _checked(probe.c.name, sqlite) == name,
    ]
    if values is not None:
        bounds.append(_checked(probe.c.str_value, sqlite).in_(values))
    number = _checked(probe.c.num_value, sqlite)
    if low is not None:
        bounds.append(number >= low)
    if high is not None:
        bounds.append(number <= high)
    if low is not None or high is not None:
        bounds.append(number.is_not(None))
    return sa.select(sa.literal(1)).select_from(probe).where(*bounds).correlate(offers).exists()


def small_set_count(name: str, values: Sequence[str]) -> sa.Select[Any]:
    """How many offers hold an attribute value, counted no further than SMALL_SET + 1."""
    forms = sorted({form for value in values for form in query_value_forms(value)})
    held = (
        sa.select(sa.literal(1))
        .where(offer_attrs.c.name == name, offer_attrs.c.str_value.in_(forms))
        .limit(SMALL_SET + 1)
        .subquery()
    )
    return sa.select(sa.func.count()).select_from(held)


@dataclass
class SearchPlan:
    """The statements for one request: page segments in order, and each facet."""

    segments: list[sa.Select[Any]]
    facets: dict[str, sa.Select[Any]] = field(default_factory=dict)
    key_columns: tuple[str, ...] = ("pk",)
    where: list[ColumnElement[bool]] = field(default_factory=list)  # what every match meets


def plan(
    request: SearchRequest,
    *,
    text: TextMatch,
    view: ClientView | None,
    after: tuple[Any, ...] | None,
    category_ids: Sequence[str] | None = None,
    small_sets: frozenset[str] = frozenset(),
) -> SearchPlan:
    """`small_sets`: attributes whose value few offers hold (see `small_set_count`)."""
    sqlite = text.sqlite
    markup = view.markup_bps if view else 0
    keys: tuple[str, ...] = ("pk",)
    if request.sort is Sort.RELEVANCE:
        keys = ("tier", "pk")
    elif request.sort in (Sort.PRICE, Sort.PRICE_DESC):
        keys = ("price_amount", "pk")

    where: list[ColumnElement[bool]] = [offers.c.live == LIVE]
    # Categories arrive resolved to ids (`category_ids`): a planner that knows the value picks
    # the right index; one behind a subquery walks blind.
    ids = list(category_ids or ())
    if len(ids) > 1:
        where.append(_checked(offers.c.category_id, sqlite).in_(ids))
        ids = []
    # When the attribute index is walked, nothing else may drive.
    attribute_walk = request.sort is Sort.NEWEST and not request.terms and bool(request.attr_equals)
    where += _scope(
        offers.c.category_id,
        ids,
        view.allowed_categories if view else None,
        sqlite=sqlite,
        may_drive=not attribute_walk,
    )
    # One supplier narrows a walk only when no category does.
    by_category = bool(request.categories) or bool(view and view.allowed_categories is not None)
    where += _scope(
        offers.c.supplier_id,
        request.suppliers,
        view.allowed_suppliers if view else None,
        sqlite=sqlite,
        may_drive=not by_category and not attribute_walk,
    )
    if request.currency:
        where.append(_checked(offers.c.currency, sqlite) == request.currency)
    price = offers.c.price_amount
    price_check = (
        price if request.sort in (Sort.PRICE, Sort.PRICE_DESC) else _checked(price, sqlite)
    )
    if request.price_min is not None:
        where.append(price_check >= base_floor(request.price_min, markup))
    if request.price_max is not None:
        where.append(price_check <= base_ceiling(request.price_max, markup))
    driver: tuple[str, list[str]] | None = None
    for name, values in request.attr_equals:
        forms = sorted({form for value in values for form in query_value_forms(value)})
        if attribute_walk and driver is None:
            driver = (name, forms)  # walked below, newest first
        elif name in small_sets:
            # Few offers hold this value: collect them and sort (cheaper than walking the order).
            where.append(
                offers.c.pk.in_(
                    sa.select(offer_attrs.c.offer_pk).where(
                        offer_attrs.c.name == name, offer_attrs.c.str_value.in_(forms)
                    )
                )
            )
        else:
            where.append(_attribute_probe(name, sqlite, values=forms))
    for name, low, high in request.attr_ranges:
        # A range is usually broad (nights ≥ 3): probe each row's attributes by primary key.
        where.append(_attribute_probe(name, sqlite, low=low, high=high))

    terms = request.terms
    filtered = [*where, text.filter(terms)] if terms else where
    counted = (
        [*filtered, _attribute_probe(driver[0], sqlite, values=driver[1])] if driver else filtered
    )
    facets = {name: _facet(name, counted) for name in request.facets}
    columns = store_columns(sqlite)
    size = request.limit + 1
    pk = offers.c.pk
    segments: list[sa.Select[Any]] = []

    if request.sort is Sort.RELEVANCE:
        tiers = (1, 0) if not after else ((1, 0) if after[0] == 1 else (0,))
        for tier in tiers:
            before = int(after[1]) if after and after[0] == tier else None
            tier_columns = [*columns, sa.literal(tier).label("tier")]
            segments.append(text.walk(tier_columns, where, terms, tier, before, size))
    elif request.sort is Sort.NEWEST and terms:
        before = int(after[0]) if after else None
        segments.append(text.walk(columns, where, terms, None, before, size))
    elif request.sort is Sort.NEWEST and driver is not None:
        name, forms = driver
        walked = offer_attrs.alias("walked")
        conditions = [walked.c.name == name, walked.c.str_value.in_(forms), *where]
        if after:
            conditions.append(walked.c.offer_pk < after[0])
        statement = (
            sa.select(*columns)
            .select_from(walked.join(offers, offers.c.pk == walked.c.offer_pk))
            .where(*conditions)
            .order_by(walked.c.offer_pk.desc())
            .limit(size)
        )
        segments.append(statement)
    elif request.sort is Sort.NEWEST:
        conditions = [*where, pk < after[0]] if after else where
        segments.append(sa.select(*columns).where(*conditions).order_by(pk.desc()).limit(size))
    else:
        ascending = request.sort is Sort.PRICE
        conditions = list(filtered)
        if after:
            beyond = price > after[0] if ascending else price < after[0]
            tie = pk > after[1] if ascending else pk < after[1]
            conditions.append(sa.or_(beyond, sa.and_(price == after[0], tie)))
        order = [price.asc(), pk.asc()] if ascending else [price.desc(), pk.desc()]
        segments.append(sa.select(*columns).where(*conditions).order_by(*order).limit(size))
    return SearchPlan(segments=segments, facets=facets, key_columns=keys, where=counted)


SPONSORED_SLOTS = 2  # at most, at the top of a first page, never more than half of it
SPONSOR_TRIES = 10  # bids looked at, highest first, to fill them


def sponsored(
    where: list[ColumnElement[bool]], bid: tuple[str, str, str], sqlite: bool
) -> sa.Select[Any]:
    """The newest matching offer a bid (supplier, category, currency) places."""
    supplier, category, currency = bid
    return (
        sa.select(*store_columns(sqlite))
        .where(
            *where,
            offers.c.supplier_id == supplier,
            offers.c.category_id == category,
            offers.c.currency == currency,
        )
        .order_by(offers.c.pk.desc())
        .limit(1)
    )


def visible_to(view: ClientView | None) -> list[ColumnElement[bool]]:
    """What a client may see of single offers: live ones inside its configuration."""
    conditions: list[ColumnElement[bool]] = [offers.c.live == LIVE]
    if view is not None and view.allowed_suppliers is not None:
        conditions.append(offers.c.supplier_id.in_(sorted(view.allowed_suppliers)))
    if view is not None and view.allowed_categories is not None:
        conditions.append(offers.c.category_id.in_(sorted(view.allowed_categories)))
    return conditions


def _facet(name: str, where: list[ColumnElement[bool]]) -> sa.Select[Any]:
    count = sa.func.count().label("count")
    if name == "category":
        value: Any = offers.c.category_id
        query = sa.select(value.label("value"), count).where(*where)
    else:
        value = offer_attrs.c.str_value
        query = (
            sa.select(value.label("value"), count)
            .select_from(offer_attrs.join(offers, offers.c.pk == offer_attrs.c.offer_pk))
            .where(offer_attrs.c.name == name[5:], *where)
        )
    return query.group_by(value).order_by(count.desc(), value).limit(FACET_LIMIT)
