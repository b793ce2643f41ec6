"""Store search: one interface over SQLite FTS5 and PostgreSQL tsvector.

Both index the same pre-normalised tokens (catalog.model.tokens), and a query is the AND of its
terms, so the same query over the same data returns the same set on both. Relevance is a property
of the offer and the query alone — title matches every term (tier 1) or not (tier 0), newest
first within a tier — so it is identical on both databases and a cursor stays valid while the
catalog changes (corpus-wide scores such as BM25 would shift under concurrent writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from marketplane.access.model import ClientView
from marketplane.catalog.model import (
    FACET_LIMIT,
    OfferStatus,
    SearchRequest,
    Sort,
    query_value_forms,
)
from marketplane.catalog.store import (
    OFFER_COLUMNS,
    categories,
    offer_attrs,
    offers,
    supplier_listing,
)
from marketplane.kernel.money import base_ceiling, base_floor

_fts = sa.table("offers_fts", sa.column("rowid"))


class TextMatch:
    """How one database matches terms; chosen once per engine."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def matches(self, terms: Sequence[str]) -> ColumnElement[bool]:
        if self.dialect == "sqlite":
            expr = " ".join(f'"{t}"' for t in terms)
            return offers.c.pk.in_(
                sa.select(_fts.c.rowid).where(sa.literal_column("offers_fts").op("MATCH")(expr))
            )
        query = " & ".join(f"'{t}'" for t in terms)
        return sa.literal_column("offers.search_tsv").op("@@")(
            sa.func.to_tsquery(sa.literal_column("'simple'"), query)
        )

    def title_tier(self, terms: Sequence[str]) -> ColumnElement[int]:
        if self.dialect == "sqlite":
            expr = "{search_title} : (" + " ".join(f'"{t}"' for t in terms) + ")"
            in_title = offers.c.pk.in_(
                sa.select(_fts.c.rowid).where(sa.literal_column("offers_fts").op("MATCH")(expr))
            )
        else:
            query = " & ".join(f"'{t}':A" for t in terms)
            in_title = sa.literal_column("offers.search_tsv").op("@@")(
                sa.func.to_tsquery(sa.literal_column("'simple'"), query)
            )
        return sa.case((in_title, 1), else_=0)


def visible_to(view: ClientView | None) -> list[ColumnElement[bool]]:
    """What a client may see: live offers of listed suppliers inside its configuration."""
    conditions: list[ColumnElement[bool]] = [
        offers.c.status == str(OfferStatus.ACTIVE),
        offers.c.supplier_id.in_(
            sa.select(supplier_listing.c.supplier_id).where(supplier_listing.c.listed.is_(True))
        ),
    ]
    if view is not None and view.allowed_suppliers is not None:
        conditions.append(offers.c.supplier_id.in_(sorted(view.allowed_suppliers)))
    if view is not None and view.allowed_categories is not None:
        conditions.append(offers.c.category_id.in_(sorted(view.allowed_categories)))
    return conditions


@dataclass
class SearchPlan:
    """The statements for one request: the page, and each facet."""

    page: sa.Select[Any]
    facets: dict[str, sa.Select[Any]]
    key_columns: tuple[str, ...]


def plan(
    request: SearchRequest,
    *,
    text: TextMatch,
    view: ClientView | None,
    after: tuple[Any, ...] | None,
) -> SearchPlan:
    markup = view.markup_bps if view else 0
    where = visible_to(view)
    if request.categories:
        refs = list(request.categories)
        where.append(
            offers.c.category_id.in_(
                sa.select(categories.c.id).where(
                    sa.or_(categories.c.id.in_(refs), categories.c.slug.in_(refs))
                )
            )
        )
    if request.suppliers:
        where.append(offers.c.supplier_id.in_(list(request.suppliers)))
    if request.currency:
        where.append(offers.c.currency == request.currency)
    if request.price_min is not None:
        where.append(offers.c.price_amount >= base_floor(request.price_min, markup))
    if request.price_max is not None:
        where.append(offers.c.price_amount <= base_ceiling(request.price_max, markup))
    for name, values in request.attr_equals:
        forms = sorted({form for value in values for form in query_value_forms(value)})
        where.append(
            offers.c.pk.in_(
                sa.select(offer_attrs.c.offer_pk).where(
                    offer_attrs.c.name == name, offer_attrs.c.str_value.in_(forms)
                )
            )
        )
    for name, low, high in request.attr_ranges:
        bounds = [offer_attrs.c.name == name, offer_attrs.c.num_value.is_not(None)]
        if low is not None:
            bounds.append(offer_attrs.c.num_value >= low)
        if high is not None:
            bounds.append(offer_attrs.c.num_value <= high)
        where.append(offers.c.pk.in_(sa.select(offer_attrs.c.offer_pk).where(*bounds)))
    if request.terms:
        where.append(text.matches(request.terms))

    facets = {name: _facet(name, where) for name in request.facets}

    columns: list[Any] = list(OFFER_COLUMNS)
    pk = offers.c.pk
    price = offers.c.price_amount
    if request.sort is Sort.RELEVANCE:
        tier = text.title_tier(request.terms)
        columns.append(tier.label("tier"))
        order = [tier.desc(), pk.desc()]
        keys: tuple[str, ...] = ("tier", "pk")
        if after:
            where.append(sa.or_(tier < after[0], sa.and_(tier == after[0], pk < after[1])))
    elif request.sort is Sort.PRICE:
        order, keys = [price.asc(), pk.asc()], ("price_amount", "pk")
        if after:
            where.append(sa.or_(price > after[0], sa.and_(price == after[0], pk > after[1])))
    elif request.sort is Sort.PRICE_DESC:
        order, keys = [price.desc(), pk.desc()], ("price_amount", "pk")
        if after:
            where.append(sa.or_(price < after[0], sa.and_(price == after[0], pk < after[1])))
    else:
        order, keys = [pk.desc()], ("pk",)
        if after:
            where.append(pk < after[0])
    page = sa.select(*columns).where(*where).order_by(*order).limit(request.limit + 1)
    return SearchPlan(page=page, facets=facets, key_columns=keys)


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
