"""Admin routes for the team, suppliers, clients and keys. Thin: each calls a service."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from marketplane.access import service
from marketplane.access.model import ApiKey, Permission, Principal, SupplierStatus
from marketplane.access.schemas import (
    ClientIn,
    ClientOut,
    ClientPatch,
    KeyCreated,
    KeyIn,
    KeyOut,
    OperatorIn,
    OperatorOut,
    Page,
    StatusChange,
    SupplierIn,
    SupplierOut,
    TransitionIn,
)
from marketplane.catalog import service as catalog
from marketplane.http.deps import PlatformDep, admin
from marketplane.http.openapi import READ, WRITE
from marketplane.kernel.errors import field_error
from marketplane.kernel.pagination import Cursor, decode_cursor, encode_cursor

router = APIRouter(prefix="/admin/v1", tags=["admin: team, suppliers, clients"])


def _as(permission: Permission) -> Any:
    return Depends(admin(permission))


Limit = Annotated[int, Query(ge=1, le=100)]


def _after(cursor: str | None, kind: str) -> str | None:
    if not cursor:
        return None
    return str(decode_cursor(cursor, expected_sort=kind, expected_fingerprint="", arity=1).key[0])


def _page(items: list[Any], limit: int, kind: str) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {
        "data": [asdict(i) for i in items],
        "has_more": more,
        "next_cursor": encode_cursor(Cursor(kind, (items[-1].id,), "")) if more else None,
    }


def _key_created(key: ApiKey, token: str) -> dict[str, Any]:
    return {**asdict(key), "key": token}


# --- team -----------------------------------------------------------------------------------


@router.post(
    "/operators",
    status_code=201,
    response_model=OperatorOut,
    responses=WRITE,
    operation_id="admin_create_operator",
)
async def create_operator(
    body: OperatorIn, platform: PlatformDep, _: Principal = _as(Permission.TEAM_WRITE)
) -> Any:
    async with platform.uow() as uow:
        operator = await service.create_operator(
            uow, name=body.name, email=body.email, role=body.role
        )
        await uow.commit()
    return operator


@router.get(
    "/operators",
    response_model=list[OperatorOut],
    responses=READ,
    operation_id="admin_list_operators",
)
async def list_operators(platform: PlatformDep, _: Principal = _as(Permission.TEAM_READ)) -> Any:
    async with platform.uow(write=False) as uow:
        return await service.list_operators(uow)


@router.post(
    "/operators/{operator_id}/keys",
    status_code=201,
    response_model=KeyCreated,
    responses=WRITE,
    operation_id="admin_create_operator_key",
)
async def create_operator_key(
    operator_id: str,
    platform: PlatformDep,
    body: Annotated[KeyIn | None, Body()] = None,
    _: Principal = _as(Permission.TEAM_WRITE),
) -> Any:
    body = body or KeyIn()
    async with platform.uow() as uow:
        await service.get_operator(uow, operator_id=operator_id)
        key, token = await service.issue_key(
            uow, owner_type="operator", owner_id=operator_id, kind=body.kind, label=body.label
        )
        await uow.commit()
    return _key_created(key, token)


@router.get("/keys", response_model=list[KeyOut], responses=READ, operation_id="admin_list_keys")
async def list_keys(
    owner: Annotated[str, Query(min_length=1, max_length=40)],
    platform: PlatformDep,
    _: Principal = _as(Permission.TEAM_READ),
) -> Any:
    async with platform.uow(write=False) as uow:
        return await service.list_keys(uow, owner_id=owner)


@router.post(
    "/keys/{key_id}/revoke",
    response_model=KeyOut,
    responses=WRITE,
    operation_id="admin_revoke_key",
)
async def revoke_key(
    key_id: str, platform: PlatformDep, _: Principal = _as(Permission.KEYS_WRITE)
) -> Any:
    async with platform.uow() as uow:
        key = await service.revoke_key(uow, key_id=key_id)
        await uow.commit()
    platform.auth.forget()
    return key


# --- suppliers ------------------------------------------------------------------------------


@router.post(
    "/suppliers",
    status_code=201,
    response_model=SupplierOut,
    responses=WRITE,
    operation_id="admin_create_supplier",
)
async def create_supplier(
    body: SupplierIn, platform: PlatformDep, _: Principal = _as(Permission.SUPPLIERS_WRITE)
) -> Any:
    async with platform.uow() as uow:
        supplier = await service.create_supplier(uow, name=body.name, email=body.email)
        await catalog.apply_supplier_status(uow, supplier_id=supplier.id, status=supplier.status)
        await uow.commit()
    return supplier


@router.get(
    "/suppliers",
    response_model=Page[SupplierOut],
    responses=READ,
    operation_id="admin_list_suppliers",
)
async def list_suppliers(
    platform: PlatformDep,
    status: SupplierStatus | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
    _: Principal = _as(Permission.SUPPLIERS_READ),
) -> Any:
    async with platform.uow(write=False) as uow:
        found = await service.list_suppliers(
            uow, status=status, before=_after(cursor, "supplier"), limit=limit + 1
        )
    return _page(found, limit, "supplier")


@router.get(
    "/suppliers/{supplier_id}",
    response_model=SupplierOut,
    responses=READ,
    operation_id="admin_get_supplier",
)
async def get_supplier(
    supplier_id: str, platform: PlatformDep, _: Principal = _as(Permission.SUPPLIERS_READ)
) -> Any:
    async with platform.uow(write=False) as uow:
        return await service.get_supplier(uow, supplier_id=supplier_id)


@router.get(
    "/suppliers/{supplier_id}/history",
    response_model=list[StatusChange],
    responses=READ,
    operation_id="admin_supplier_history",
)
async def supplier_history(
    supplier_id: str, platform: PlatformDep, _: Principal = _as(Permission.SUPPLIERS_READ)
) -> Any:
    async with platform.uow(write=False) as uow:
        return await service.supplier_history(uow, supplier_id=supplier_id)


async def _transition(
    platform: PlatformDep,
    principal: Principal,
    supplier_id: str,
    action: str,
    body: TransitionIn | None,
) -> Any:
    async with platform.uow() as uow:
        supplier = await service.transition_supplier(
            uow,
            supplier_id=supplier_id,
            action=action,
            actor=principal.owner_id,
            reason=body.reason if body else None,
        )
        await catalog.apply_supplier_status(uow, supplier_id=supplier.id, status=supplier.status)
        await uow.commit()
    return supplier


@router.post(
    "/suppliers/{supplier_id}/approve",
    response_model=SupplierOut,
    responses=WRITE,
    operation_id="admin_approve_supplier",
)
async def approve_supplier(
    supplier_id: str,
    platform: PlatformDep,
    body: Annotated[TransitionIn | None, Body()] = None,
    principal: Principal = _as(Permission.SUPPLIERS_WRITE),
) -> Any:
    return await _transition(platform, principal, supplier_id, "approve", body)


@router.post(
    "/suppliers/{supplier_id}/suspend",
    response_model=SupplierOut,
    responses=WRITE,
    operation_id="admin_suspend_supplier",
)
async def suspend_supplier(
    supplier_id: str,
    platform: PlatformDep,
    body: Annotated[TransitionIn | None, Body()] = None,
    principal: Principal = _as(Permission.SUPPLIERS_WRITE),
) -> Any:
    return await _transition(platform, principal, supplier_id, "suspend", body)


@router.post(
    "/suppliers/{supplier_id}/keys",
    status_code=201,
    response_model=KeyCreated,
    responses=WRITE,
    operation_id="admin_create_supplier_key",
)
async def create_supplier_key(
    supplier_id: str,
    platform: PlatformDep,
    body: Annotated[KeyIn | None, Body()] = None,
    _: Principal = _as(Permission.SUPPLIERS_WRITE),
) -> Any:
    body = body or KeyIn()
    async with platform.uow() as uow:
        await service.get_supplier(uow, supplier_id=supplier_id)
        key, token = await service.issue_key(
            uow, owner_type="supplier", owner_id=supplier_id, kind=body.kind, label=body.label
        )
        await uow.commit()
    return _key_created(key, token)


# --- clients --------------------------------------------------------------------------------


@router.post(
    "/clients",
    status_code=201,
    response_model=ClientOut,
    responses=WRITE,
    operation_id="admin_create_client",
)
async def create_client(
    body: ClientIn, platform: PlatformDep, _: Principal = _as(Permission.CLIENTS_WRITE)
) -> Any:
    async with platform.uow() as uow:
        client = await service.create_client(
            uow,
            name=body.name,
            markup_bps=body.markup_bps,
            allowed_suppliers=body.allowed_suppliers,
            allowed_categories=body.allowed_categories,
            order_hold_seconds=body.order_hold_seconds,
        )
        await uow.commit()
    return client


@router.get(
    "/clients", response_model=Page[ClientOut], responses=READ, operation_id="admin_list_clients"
)
async def list_clients(
    platform: PlatformDep,
    limit: Limit = 20,
    cursor: str | None = None,
    _: Principal = _as(Permission.CLIENTS_READ),
) -> Any:
    async with platform.uow(write=False) as uow:
        found = await service.list_clients(uow, before=_after(cursor, "client"), limit=limit + 1)
    return _page(found, limit, "client")


@router.get(
    "/clients/{client_id}",
    response_model=ClientOut,
    responses=READ,
    operation_id="admin_get_client",
)
async def get_client(
    client_id: str, platform: PlatformDep, _: Principal = _as(Permission.CLIENTS_READ)
) -> Any:
    async with platform.uow(write=False) as uow:
        return await service.get_client(uow, client_id=client_id)


@router.patch(
    "/clients/{client_id}",
    response_model=ClientOut,
    responses=WRITE,
    operation_id="admin_update_client",
)
async def update_client(
    client_id: str,
    body: ClientPatch,
    platform: PlatformDep,
    _: Principal = _as(Permission.CLIENTS_WRITE),
) -> Any:
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "markup_bps"):
        if name in changes and changes[name] is None:
            raise field_error(name, "null_not_allowed", f"{name} cannot be null")
    async with platform.uow() as uow:
        client = await service.update_client(uow, client_id=client_id, changes=changes)
        await uow.commit()
    platform.auth.forget()
    return client


@router.post(
    "/clients/{client_id}/keys",
    status_code=201,
    response_model=KeyCreated,
    responses=WRITE,
    operation_id="admin_create_client_key",
)
async def create_client_key(
    client_id: str,
    platform: PlatformDep,
    body: Annotated[KeyIn | None, Body()] = None,
    _: Principal = _as(Permission.CLIENTS_WRITE),
) -> Any:
    body = body or KeyIn()
    async with platform.uow() as uow:
        await service.get_client(uow, client_id=client_id)
        key, token = await service.issue_key(
            uow, owner_type="client", owner_id=client_id, kind=body.kind, label=body.label
        )
        await uow.commit()
    return _key_created(key, token)
