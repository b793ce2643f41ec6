"""Supplier routes: its own offers (one at a time or in batches) and the categories to use."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import ValidationError

from marketplane.catalog import service
from marketplane.catalog.model import OfferStatus
from marketplane.catalog.schemas import (
    BatchIn,
    BatchItemIn,
    BatchOut,
    CategoryOut,
    OfferIn,
    SupplyOfferOut,
    SupplyOfferPage,
)
from marketplane.http.deps import PlatformDep, SupplierDep
from marketplane.http.errors import field_path
from marketplane.http.openapi import READ, WRITE
from marketplane.kernel.errors import FieldError, ValidationFailed

router = APIRouter(prefix="/supply/v1", tags=["supply: offers"])
Sku = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


@router.put(
    "/offers/{sku}",
    response_model=SupplyOfferOut,
    responses={**WRITE, 201: {"model": SupplyOfferOut, "description": "Created"}},
    operation_id="supply_put_offer",
)
async def put_offer(
    sku: Sku, body: OfferIn, platform: PlatformDep, principal: SupplierDep, response: Response
) -> Any:
    async with platform.uow() as uow:
        results = await service.upsert_offers(
            uow, supplier_id=principal.owner_id, drafts=[body.draft(sku)]
        )
        service.raise_if_failed(results)
        await uow.commit()
    async with platform.uow(write=False) as uow:
        offer = await service.own_offer(uow, supplier_id=principal.owner_id, sku=sku)
    response.status_code = 201 if results[0].outcome == "created" else 200
    return service.present_offer(offer)


@router.post(
    "/offers/batch", response_model=BatchOut, responses=WRITE, operation_id="supply_batch_offers"
)
async def batch_offers(body: BatchIn, platform: PlatformDep, principal: SupplierDep) -> Any:
    limit = platform.settings.batch_max_items
    if len(body.offers) > limit:
        raise ValidationFailed(
            f"a batch holds at most {limit} offers; this one has {len(body.offers)}",
            code="batch_too_large",
            errors=[FieldError("offers", "too_many_items", f"at most {limit} items")],
        )
    drafts, rejected = [], {}
    for index, raw in enumerate(body.offers):
        try:
            drafts.append((index, BatchItemIn.model_validate(raw)))
        except ValidationError as exc:
            rejected[index] = [
                FieldError(field_path(tuple(e["loc"])), str(e["type"]), str(e["msg"]))
                for e in exc.errors()
            ]
    async with platform.uow() as uow:
        results = await service.upsert_offers(
            uow,
            supplier_id=principal.owner_id,
            drafts=[item.draft(item.sku) for _, item in drafts],
        )
        await uow.commit()
    merged: list[dict[str, Any]] = []
    for (index, _), result in zip(drafts, results, strict=True):
        merged.append({**asdict(result), "index": index})
    for index, errors in rejected.items():
        raw = body.offers[index]
        sku = raw.get("sku") if isinstance(raw.get("sku"), str) else None
        merged.append(
            {
                "index": index,
                "sku": sku,
                "outcome": "failed",
                "offer_id": None,
                "version": None,
                "errors": [asdict(e) for e in errors],
            }
        )
    merged.sort(key=lambda r: r["index"])
    counts = Counter(r["outcome"] for r in merged)
    return {
        "results": merged,
        "counts": {k: counts.get(k, 0) for k in ("created", "updated", "unchanged", "failed")},
    }


@router.get(
    "/offers", response_model=SupplyOfferPage, responses=READ, operation_id="supply_list_offers"
)
async def list_offers(
    platform: PlatformDep,
    principal: SupplierDep,
    category: Annotated[str | None, Query(max_length=80)] = None,
    status: OfferStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    async with platform.uow(write=False) as uow:
        found, next_cursor = await service.list_offers(
            uow,
            supplier_id=principal.owner_id,
            category=category,
            status=status,
            limit=limit,
            cursor=cursor,
        )
    return {
        "data": [service.present_offer(o) for o in found],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


@router.get(
    "/offers/{sku}", response_model=SupplyOfferOut, responses=READ, operation_id="supply_get_offer"
)
async def get_offer(sku: Sku, platform: PlatformDep, principal: SupplierDep) -> Any:
    async with platform.uow(write=False) as uow:
        return service.present_offer(
            await service.own_offer(uow, supplier_id=principal.owner_id, sku=sku)
        )


@router.delete(
    "/offers/{sku}",
    response_model=SupplyOfferOut,
    responses=WRITE,
    operation_id="supply_delete_offer",
)
async def delete_offer(sku: Sku, platform: PlatformDep, principal: SupplierDep) -> Any:
    async with platform.uow() as uow:
        offer = await service.delete_offer(uow, supplier_id=principal.owner_id, sku=sku)
        await uow.commit()
    return service.present_offer(offer)


@router.get(
    "/categories",
    response_model=list[CategoryOut],
    responses=READ,
    operation_id="supply_list_categories",
)
async def list_categories(platform: PlatformDep, _: SupplierDep) -> Any:
    async with platform.uow(write=False) as uow:
        return [asdict(c) for c in await service.list_categories(uow)]
