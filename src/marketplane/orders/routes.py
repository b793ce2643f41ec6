"""Order routes: a client places, pays, cancels, refunds and reads its own orders (store); a
supplier reads and decides its own (supply); operators read all and refund (admin); payment
providers answer (hooks). Each route checks who is calling and calls one use case."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from marketplane.access.model import Permission, Principal
from marketplane.bootstrap import Platform
from marketplane.http.deps import PlatformDep, StoreWriterDep, SupplierDep, admin
from marketplane.http.openapi import READ, WRITE, problems
from marketplane.kernel.errors import BadRequest, NotFound
from marketplane.kernel.pagination import Cursor, decode_cursor, encode_cursor, fingerprint
from marketplane.orders import decisions, jobs, service
from marketplane.orders.model import LineRequest, OrderStatus, SupplierOrderStatus
from marketplane.orders.schemas import (
    AcceptIn,
    AdminOrderOut,
    CancelIn,
    FulfilIn,
    OrderIn,
    OrderOut,
    OrderPage,
    PayIn,
    RefundIn,
    RefundOut,
    RejectIn,
    SupplierOrderOut,
    SupplierOrderPage,
)
from marketplane.orders.transitions import Actor, Detail, present_order, present_part

store = APIRouter(prefix="/store/v1", tags=["store: orders"])
supply = APIRouter(prefix="/supply/v1", tags=["supply: orders"])
operator = APIRouter(prefix="/admin/v1", tags=["admin: orders"])
hooks = APIRouter(prefix="/hooks", tags=["payment providers"])

Limit = Annotated[int, Query(ge=1, le=100)]
PAY = {**WRITE, **problems(402)}


async def _send_refunds(platform: Platform) -> None:
    """Owed refunds go to the provider now rather than at the worker's next pass."""
    await jobs.send_refunds(platform.uow, platform.payments)


def _accept_seconds(platform: Platform) -> float:
    return platform.settings.order_accept_hours * 3600


def _before(cursor: str | None, kind: str, params: dict[str, Any]) -> str | None:
    if not cursor:
        return None
    found = decode_cursor(
        cursor, expected_sort=kind, expected_fingerprint=fingerprint(params), arity=1
    )
    return str(found.key[0])


def _next(items: list[Any], limit: int, kind: str, params: dict[str, Any]) -> str | None:
    return (
        encode_cursor(Cursor(kind, (items[limit - 1],), fingerprint(params)))
        if len(items) > limit
        else None
    )


# --- store ----------------------------------------------------------------------------------


@store.post(
    "/orders",
    status_code=201,
    response_model=OrderOut,
    responses=WRITE,
    operation_id="store_place_order",
    description=(
        "Reserves every line's stock and records the order, split into one supplier order per "
        "supplier; or reserves nothing (409 `insufficient_stock`, 409 `price_changed` with "
        "today's prices). Send an `Idempotency-Key`: a retry then never places twice. The "
        "order waits for payment until `expires_at`."
    ),
)
async def place_order(
    body: OrderIn,
    principal: StoreWriterDep,
    platform: PlatformDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    if idempotency_key is None:
        raise BadRequest(
            "placing an order needs an Idempotency-Key header, so a retry never places twice",
            code="idempotency_key_required",
        )
    assert principal.client is not None
    lines = [
        LineRequest(line.offer, line.quantity, line.unit_price.amount, line.unit_price.currency)
        for line in body.lines
    ]
    async with platform.uow() as uow:
        found = await service.place_order(
            uow,
            view=principal.client,
            customer_ref=body.customer_ref,
            shipping=body.shipping.model_dump() if body.shipping else None,
            lines=lines,
            default_hold_seconds=platform.settings.order_hold_seconds,
        )
        await uow.commit()
    return present_order(found)


@store.get("/orders", response_model=OrderPage, responses=READ, operation_id="store_list_orders")
async def list_orders(
    principal: StoreWriterDep,
    platform: PlatformDep,
    status: OrderStatus | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> Any:
    params = {"status": status}
    async with platform.uow(write=False) as uow:
        found = await service.list_orders(
            uow, client_id=principal.owner_id, status=status,
            before=_before(cursor, "order", params), limit=limit + 1,
        )  # fmt: skip
    return _order_page(found, limit, params)


def _order_page(found: list[Detail], limit: int, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": [present_order(d) for d in found[:limit]],
        "has_more": len(found) > limit,
        "next_cursor": _next([d.order.id for d in found], limit, "order", params),
    }


@store.get(
    "/orders/{order_id}", response_model=OrderOut, responses=READ, operation_id="store_get_order"
)
async def get_order(order_id: str, principal: StoreWriterDep, platform: PlatformDep) -> Any:
    async with platform.uow(write=False) as uow:
        return present_order(
            await service.client_order(uow, client_id=principal.owner_id, order_id=order_id)
        )


@store.post(
    "/orders/{order_id}/pay",
    response_model=OrderOut,
    responses={**PAY, 202: {"model": OrderOut, "description": "The provider answers later"}},
    operation_id="store_pay_order",
    description=(
        "Takes the payment (authorize and capture) through the payment provider. 402 "
        "`payment_failed` leaves the order placed for another attempt; 202 when the provider "
        "answers later by callback."
    ),
)
async def pay_order(
    order_id: str, principal: StoreWriterDep, platform: PlatformDep, body: PayIn | None = None
) -> Any:
    found = await service.pay_order(
        platform.uow,
        platform.payments,
        client_id=principal.owner_id,
        order_id=order_id,
        token=(body or PayIn()).payment_token,
        accept_seconds=_accept_seconds(platform),
    )
    shown = present_order(found)
    if found.payments and found.payments[-1].status == "pending":
        return JSONResponse(shown, status_code=202)
    return shown


@store.post(
    "/orders/{order_id}/cancel",
    response_model=OrderOut,
    responses=WRITE,
    operation_id="store_cancel_order",
    description="Before any supplier accepted: releases the stock and refunds what was paid.",
)
async def cancel_order(
    order_id: str, principal: StoreWriterDep, platform: PlatformDep, body: CancelIn | None = None
) -> Any:
    async with platform.uow() as uow:
        found = await decisions.cancel_order(
            uow, client_id=principal.owner_id, order_id=order_id, reason=(body or CancelIn()).reason
        )
        await uow.commit()
    await _send_refunds(platform)
    return await _fresh_order(platform, principal.owner_id, found.order.id)


async def _fresh_order(platform: Platform, client_id: str, order_id: str) -> dict[str, Any]:
    async with platform.uow(write=False) as uow:
        return present_order(
            await service.client_order(uow, client_id=client_id, order_id=order_id)
        )


@store.post(
    "/orders/{order_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    responses=WRITE,
    operation_id="store_refund_order",
    description=(
        "After a supplier accepted: gives back all (no `amount`) or part of what was paid for "
        "one supplier order; the stock stays sold."
    ),
)
async def refund_order(
    order_id: str, body: RefundIn, principal: StoreWriterDep, platform: PlatformDep
) -> Any:
    async with platform.uow() as uow:
        found = await service.client_order(
            uow, client_id=principal.owner_id, order_id=order_id, lock=True
        )
        made = await _refund(uow, found, body)
        await uow.commit()
    await _send_refunds(platform)
    return await _fresh_refund(platform, found, made.id)


async def _refund(uow: Any, found: Detail, body: RefundIn) -> Any:
    if body.amount is not None and body.amount.currency != found.order.currency:
        raise BadRequest(f"the order is paid in {found.order.currency}", code="currency_mismatch")
    return await decisions.refund(
        uow,
        found=found,
        supplier_order_id=body.supplier_order,
        amount=None if body.amount is None else body.amount.amount,
        reason=body.reason,
    )


async def _fresh_refund(platform: Platform, found: Detail, refund_id: str) -> dict[str, Any]:
    async with platform.uow(write=False) as uow:
        again = await service.any_order(uow, order_id=found.order.id)
    shown = present_order(again)
    return next(r for r in shown["refunds"] if r["id"] == refund_id)


# --- supply ---------------------------------------------------------------------------------


@supply.get(
    "/orders",
    response_model=SupplierOrderPage,
    responses=READ,
    operation_id="supply_list_orders",
    description="Its own supplier orders from payment on, newest first.",
)
async def supply_list_orders(
    principal: SupplierDep,
    platform: PlatformDep,
    status: SupplierOrderStatus | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> Any:
    params = {"status": status}
    async with platform.uow(write=False) as uow:
        found = await service.list_supplier_orders(
            uow, supplier_id=principal.owner_id, status=status,
            before=_before(cursor, "supplier_order", params), limit=limit + 1,
        )  # fmt: skip
    return {
        "data": [present_part(d, p) for d, p in found[:limit]],
        "has_more": len(found) > limit,
        "next_cursor": _next([p.id for _, p in found], limit, "supplier_order", params),
    }


@supply.get(
    "/orders/{supplier_order_id}",
    response_model=SupplierOrderOut,
    responses=READ,
    operation_id="supply_get_order",
)
async def supply_get_order(
    supplier_order_id: str, principal: SupplierDep, platform: PlatformDep
) -> Any:
    async with platform.uow(write=False) as uow:
        found, part = await service.supplier_order(
            uow, supplier_id=principal.owner_id, supplier_order_id=supplier_order_id
        )
    return present_part(found, part)


def _supplier(principal: Principal) -> Actor:
    return Actor("supplier", principal.owner_id)


@supply.post(
    "/orders/{supplier_order_id}/accept",
    response_model=SupplierOrderOut,
    responses=WRITE,
    operation_id="supply_accept_order",
    description=(
        "Accepts the order whole, or line by line (`lines`); rejected lines go back on sale "
        "and are refunded to the customer."
    ),
)
async def supply_accept_order(
    supplier_order_id: str,
    principal: SupplierDep,
    platform: PlatformDep,
    body: AcceptIn | None = None,
) -> Any:
    chosen = None
    if body is not None and body.lines is not None:
        chosen = {d.id: d.accepted for d in body.lines}
    async with platform.uow() as uow:
        found, part = await decisions.accept(
            uow, supplier_id=principal.owner_id, supplier_order_id=supplier_order_id,
            decisions=chosen, actor=_supplier(principal),
        )  # fmt: skip
        await uow.commit()
    await _send_refunds(platform)
    return present_part(found, part)


@supply.post(
    "/orders/{supplier_order_id}/reject",
    response_model=SupplierOrderOut,
    responses=WRITE,
    operation_id="supply_reject_order",
    description="Rejects the whole order: its stock goes back on sale, the customer is refunded.",
)
async def supply_reject_order(
    supplier_order_id: str, body: RejectIn, principal: SupplierDep, platform: PlatformDep
) -> Any:
    async with platform.uow() as uow:
        found, part = await decisions.reject(
            uow, supplier_id=principal.owner_id, supplier_order_id=supplier_order_id,
            reason=body.reason, actor=_supplier(principal),
        )  # fmt: skip
        await uow.commit()
    await _send_refunds(platform)
    return present_part(found, part)


@supply.post(
    "/orders/{supplier_order_id}/fulfil",
    response_model=SupplierOrderOut,
    responses=WRITE,
    operation_id="supply_fulfil_order",
    description="Marks an accepted order shipped, with its tracking data.",
)
async def supply_fulfil_order(
    supplier_order_id: str,
    principal: SupplierDep,
    platform: PlatformDep,
    body: FulfilIn | None = None,
) -> Any:
    tracking = body.tracking.model_dump(exclude_none=True) if body and body.tracking else None
    async with platform.uow() as uow:
        found, part = await decisions.fulfil(
            uow, supplier_id=principal.owner_id, supplier_order_id=supplier_order_id,
            tracking=tracking, actor=_supplier(principal),
        )  # fmt: skip
        await uow.commit()
    return present_part(found, part)


@supply.post(
    "/orders/{supplier_order_id}/complete",
    response_model=SupplierOrderOut,
    responses=WRITE,
    operation_id="supply_complete_order",
    description="Marks a fulfilled order complete (delivered).",
)
async def supply_complete_order(
    supplier_order_id: str, principal: SupplierDep, platform: PlatformDep
) -> Any:
    async with platform.uow() as uow:
        found, part = await decisions.complete(
            uow, supplier_id=principal.owner_id, supplier_order_id=supplier_order_id,
            actor=_supplier(principal),
        )  # fmt: skip
        await uow.commit()
    return present_part(found, part)


# --- admin ----------------------------------------------------------------------------------


async def _admin_out(uow: Any, found: Detail) -> dict[str, Any]:
    return {
        **present_order(found),
        "client": found.order.client_id,
        "history": await service.history(uow, found=found),
    }


@operator.get("/orders", response_model=OrderPage, responses=READ, operation_id="admin_list_orders")
async def admin_list_orders(
    platform: PlatformDep,
    client: Annotated[str | None, Query(max_length=40)] = None,
    status: OrderStatus | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
    _: Principal = Depends(admin(Permission.ORDERS_READ)),
) -> Any:
    params = {"client": client, "status": status}
    async with platform.uow(write=False) as uow:
        found = await service.list_orders(
            uow, client_id=client, status=status,
            before=_before(cursor, "order", params), limit=limit + 1,
        )  # fmt: skip
    return _order_page(found, limit, params)


@operator.get(
    "/orders/{order_id}",
    response_model=AdminOrderOut,
    responses=READ,
    operation_id="admin_get_order",
    description="An order with its history: every status change, who made it, when and why.",
)
async def admin_get_order(
    order_id: str,
    platform: PlatformDep,
    _: Principal = Depends(admin(Permission.ORDERS_READ)),
) -> Any:
    async with platform.uow(write=False) as uow:
        return await _admin_out(uow, await service.any_order(uow, order_id=order_id))


@operator.post(
    "/orders/{order_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    responses=WRITE,
    operation_id="admin_refund_order",
)
async def admin_refund_order(
    order_id: str,
    body: RefundIn,
    platform: PlatformDep,
    _: Principal = Depends(admin(Permission.ORDERS_WRITE)),
) -> Any:
    async with platform.uow() as uow:
        found = await service.any_order(uow, order_id=order_id, lock=True)
        made = await _refund(uow, found, body)
        await uow.commit()
    await _send_refunds(platform)
    return await _fresh_refund(platform, found, made.id)


# --- payment providers ----------------------------------------------------------------------


@hooks.post(
    "/payments/{provider}",
    operation_id="payment_callback",
    responses={**problems(400, 401, 404, 413)},
    description="A payment provider's answer about a payment, signed by the provider; "
    "each is applied once, however often it is sent.",
)
async def payment_callback(provider: str, request: Request, platform: PlatformDep) -> Any:
    known = platform.payments
    if provider != known.name:
        raise NotFound(f"no payment provider {provider!r}", code="provider_not_found")
    applied = await service.handle_callback(
        platform.uow,
        known,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.body(),
        accept_seconds=_accept_seconds(platform),
    )
    await _send_refunds(platform)
    return {"applied": applied}
