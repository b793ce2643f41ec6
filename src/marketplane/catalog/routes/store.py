"""Store routes: what a front end reads. Every answer is filtered and priced for its client."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from fastapi import APIRouter, Request

from marketplane.bootstrap import Platform
from marketplane.catalog import service
from marketplane.catalog.model import PARAM_LIMITS, STORE_FIELDS, Sort, parse_search
from marketplane.catalog.schemas import CategoryOut, ProductOut, StoreOfferOut, StoreOfferPage
from marketplane.db.uow import UnitOfWork
from marketplane.http import store_cache
from marketplane.http.deps import PlatformDep, StoreReaderDep
from marketplane.http.openapi import READ
from marketplane.kernel.errors import ValidationFailed
from marketplane.money import billing

router = APIRouter(prefix="/store/v1", tags=["store: catalog"])
SPONSORS = "sponsors"  # the store cache's key for the bids in force


def _param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


SEARCH_PARAMETERS = [
    _param(
        "q",
        {"type": "string", "maxLength": PARAM_LIMITS["q"]},
        "Full-text query; every word must match.",
    ),
    _param(
        "category", {"type": "string", "maxLength": 400}, "Category ids or slugs, comma-separated."
    ),
    _param(
        "supplier",
        {"type": "string", "maxLength": PARAM_LIMITS["supplier"]},
        "Supplier ids, comma-separated.",
    ),
    _param("price_min", {"type": "integer", "minimum": 0}, "Lowest price (minor units, as shown)."),
    _param(
        "price_max", {"type": "integer", "minimum": 0}, "Highest price (minor units, as shown)."
    ),
    _param(
        "currency", {"type": "string", "pattern": "^[A-Z]{3}$"}, "Only offers in this currency."
    ),
    _param(
        "sort",
        {"type": "string", "enum": [s.value for s in Sort]},
        "relevance (default with q), newest (default), price, -price.",
    ),
    _param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size."),
    _param(
        "cursor",
        {"type": "string", "maxLength": PARAM_LIMITS["cursor"]},
        "next_cursor of the previous page.",
    ),
    _param(
        "fields",
        {"type": "string"},
        f"Fields to return, comma-separated: {', '.join(STORE_FIELDS)}.",
    ),
    _param("facets", {"type": "string"}, "Counts to return: `category` and/or `attr.<name>`."),
]
ATTR_DOC = (
    "Filter on attributes with `attr.<name>=value` (repeat for any of several values) and numeric "
    "ranges with `attr.<name>_min=` / `attr.<name>_max=`."
)


async def _sponsors(
    request: Request, platform: Platform, uow: UnitOfWork
) -> list[tuple[str, str, str]]:
    """The bids in force as (supplier, category, currency), highest first: the same for every
    search until the next commit, so read once per data version."""

    async def read() -> bytes:
        found = await billing.sponsors(uow, None)
        return orjson.dumps(
            list(dict.fromkeys((b.supplier_id, b.category_id, b.currency) for b in found))
        )

    kept = await store_cache.shared(request, platform, SPONSORS, read)
    return [(supplier, category, currency) for supplier, category, currency in orjson.loads(kept)]


@router.get(
    "/offers",
    response_model=StoreOfferPage,
    responses=READ,
    operation_id="store_list_offers",
    description=ATTR_DOC,
    openapi_extra={"parameters": SEARCH_PARAMETERS},
)
async def list_offers(request: Request, platform: PlatformDep, principal: StoreReaderDep) -> Any:
    params = tuple(request.query_params.multi_items())

    async def compute(uow: UnitOfWork) -> Any:
        parsed = parse_search(params)
        if isinstance(parsed, list):
            raise ValidationFailed(f"{parsed[0].field}: {parsed[0].message}", errors=parsed)

        sponsors = [] if parsed.cursor else await _sponsors(request, platform, uow)
        return await service.search_offers(
            uow, view=principal.client, request=parsed, sponsors=sponsors
        )

    return await store_cache.answer(request, platform, principal.client, compute)


@router.get(
    "/offers/{offer_id}",
    response_model=StoreOfferOut,
    responses=READ,
    operation_id="store_get_offer",
)
async def get_offer(
    request: Request, offer_id: str, platform: PlatformDep, principal: StoreReaderDep
) -> Any:
    async def compute(uow: UnitOfWork) -> Any:
        row = await service.store_offer(uow, view=principal.client, offer_id=offer_id)
        markup = principal.client.markup_bps if principal.client else 0
        return service.present_store_offer(row, markup)

    return await store_cache.answer(request, platform, principal.client, compute)


@router.get(
    "/products/{product_id}",
    response_model=ProductOut,
    responses=READ,
    operation_id="store_get_product",
)
async def get_product(
    request: Request, product_id: str, platform: PlatformDep, principal: StoreReaderDep
) -> Any:
    async def compute(uow: UnitOfWork) -> Any:
        return await service.store_product(uow, view=principal.client, product_id=product_id)

    return await store_cache.answer(request, platform, principal.client, compute)


@router.get(
    "/categories",
    response_model=list[CategoryOut],
    responses=READ,
    operation_id="store_list_categories",
)
async def list_categories(
    request: Request, platform: PlatformDep, principal: StoreReaderDep
) -> Any:
    async def compute(uow: UnitOfWork) -> Any:
        return [asdict(c) for c in await service.list_categories(uow, view=principal.client)]

    return await store_cache.answer(request, platform, principal.client, compute)
