"""Operator routes: categories and a look at every offer."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from marketplane.access.model import Permission, Principal
from marketplane.catalog import service
from marketplane.catalog.model import OfferStatus
from marketplane.catalog.schemas import (
    AdminOfferOut,
    AdminOfferPage,
    CategoryIn,
    CategoryOut,
    CategoryPatch,
)
from marketplane.http.deps import PlatformDep, admin
from marketplane.http.openapi import READ, WRITE

router = APIRouter(prefix="/admin/v1", tags=["admin: catalog"])
CatalogRead = Annotated[Principal, Depends(admin(Permission.CATALOG_READ))]
CatalogWrite = Annotated[Principal, Depends(admin(Permission.CATALOG_WRITE))]


@router.post(
    "/categories",
    status_code=201,
    response_model=CategoryOut,
    responses=WRITE,
    operation_id="admin_create_category",
)
async def create_category(body: CategoryIn, platform: PlatformDep, _: CatalogWrite) -> Any:
    async with platform.uow() as uow:
        category = await service.create_category(
            uow, slug=body.slug, name=body.name, attribute_schema=body.attribute_schema
        )
        await uow.commit()
    return asdict(category)


@router.get(
    "/categories",
    response_model=list[CategoryOut],
    responses=READ,
    operation_id="admin_list_categories",
)
async def list_categories(platform: PlatformDep, _: CatalogRead) -> Any:
    async with platform.uow(write=False) as uow:
        return [asdict(c) for c in await service.list_categories(uow)]


@router.get(
    "/categories/{ref}",
    response_model=CategoryOut,
    responses=READ,
    operation_id="admin_get_category",
)
async def get_category(ref: str, platform: PlatformDep, _: CatalogRead) -> Any:
    async with platform.uow(write=False) as uow:
        return asdict(await service.get_category(uow, ref=ref))


@router.patch(
    "/categories/{ref}",
    response_model=CategoryOut,
    responses=WRITE,
    operation_id="admin_update_category",
)
async def update_category(
    ref: str, body: CategoryPatch, platform: PlatformDep, _: CatalogWrite
) -> Any:
    async with platform.uow() as uow:
        category = await service.update_category(
            uow, ref=ref, name=body.name, attribute_schema=body.attribute_schema
        )
        await uow.commit()
    return asdict(category)


@router.get(
    "/offers", response_model=AdminOfferPage, responses=READ, operation_id="admin_list_offers"
)
async def list_offers(
    platform: PlatformDep,
    _: CatalogRead,
    supplier: Annotated[str | None, Query(max_length=40)] = None,
    category: Annotated[str | None, Query(max_length=80)] = None,
    status: OfferStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    async with platform.uow(write=False) as uow:
        found, next_cursor = await service.list_offers(
            uow, supplier_id=supplier, category=category, status=status, limit=limit, cursor=cursor
        )
    return {
        "data": [service.present_offer(o, with_supplier=True) for o in found],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


@router.get(
    "/offers/{offer_id}",
    response_model=AdminOfferOut,
    responses=READ,
    operation_id="admin_get_offer",
)
async def get_offer(offer_id: str, platform: PlatformDep, _: CatalogRead) -> Any:
    async with platform.uow(write=False) as uow:
        return service.present_offer(
            await service.any_offer(uow, offer_id=offer_id), with_supplier=True
        )
