"""Billing routes: operators define plans and subscribe suppliers (admin); suppliers bid for
sponsored placement and read their subscription (supply); front ends record clicks (store)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from marketplane.access import service as access
from marketplane.access.model import Permission, Principal
from marketplane.catalog import service as catalog
from marketplane.catalog.schemas import MoneyOut
from marketplane.currency import precision
from marketplane.db.uow import UnitOfWork
from marketplane.http.deps import PlatformDep, StoreWriterDep, SupplierDep, admin
from marketplane.http.openapi import READ, WRITE, problems
from marketplane.kernel.errors import field_error
from marketplane.money import billing
from marketplane.money.model import Bid, BidBasis, Placement, Plan, Subscription

operator = APIRouter(prefix="/admin/v1", tags=["admin: billing"])
supply = APIRouter(prefix="/supply/v1", tags=["supply: billing"])
store = APIRouter(prefix="/store/v1", tags=["store: sponsored placement"])
Reader = Depends(admin(Permission.MONEY_READ))
Writer = Depends(admin(Permission.MONEY_WRITE))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AmountIn(Strict):
    amount: StrictInt = Field(ge=1, le=10**12, description="Integer count of the minor unit.")
    currency: str = Field(pattern="^[A-Z]{3}$", examples=["EUR"])


class PlanIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    price: AmountIn = Field(description="A month, billed in advance.")


class PlanOut(BaseModel):
    id: str
    name: str
    price: MoneyOut
    created_at: datetime


class SubscriptionIn(Strict):
    supplier: str = Field(max_length=40)
    plan: str = Field(max_length=40)
    start: AwareDatetime | None = Field(default=None, description="Default: now.")


class EndIn(Strict):
    at: AwareDatetime | None = Field(default=None, description="Default: now.")


class SubscriptionOut(BaseModel):
    id: str
    supplier: str
    plan: str
    started_at: datetime
    ended_at: datetime | None
    billed_until: datetime = Field(description="The end of the last month billed.")


class BidIn(Strict):
    category: str = Field(max_length=40)
    basis: BidBasis = Field(description="click: per click on the placement; order: per order.")
    price: AmountIn


class BidOut(BaseModel):
    id: str
    supplier: str
    category: str
    basis: BidBasis
    price: MoneyOut
    effective_from: datetime
    effective_to: datetime | None


class ClickIn(Strict):
    offer: str = Field(min_length=1, max_length=40)
    placement: Placement = Field(
        default=Placement.ORGANIC,
        description="sponsored when the customer clicked a result flagged `sponsored`.",
    )


class ClickOut(BaseModel):
    id: str
    offer: str
    placement: Placement
    at: datetime


def _currency(value: str) -> str:
    if precision(value) is None:
        raise field_error("price.currency", "unknown_currency", f"{value} is not a currency")
    return value


def _plan(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id, "name": plan.name,
        "price": {"amount": plan.amount, "currency": plan.currency},
        "created_at": plan.created_at,
    }  # fmt: skip


def _subscription(found: Subscription) -> dict[str, Any]:
    return {
        "id": found.id, "supplier": found.supplier_id, "plan": found.plan_id,
        "started_at": found.started_at, "ended_at": found.ended_at,
        "billed_until": found.billed_until,
    }  # fmt: skip


def _bid(bid: Bid) -> dict[str, Any]:
    return {
        "id": bid.id, "supplier": bid.supplier_id, "category": bid.category_id,
        "basis": bid.basis, "price": {"amount": bid.amount, "currency": bid.currency},
        "effective_from": bid.effective_from, "effective_to": bid.effective_to,
    }  # fmt: skip


# --- plans and subscriptions (admin) ---------------------------------------------------------


@operator.post(
    "/plans", status_code=201, response_model=PlanOut, responses=WRITE,
    operation_id="admin_create_plan",
)  # fmt: skip
async def create_plan(body: PlanIn, platform: PlatformDep, _: Principal = Writer) -> Any:
    async with platform.uow() as uow:
        plan = await billing.create_plan(
            uow, name=body.name, amount=body.price.amount,
            currency=_currency(body.price.currency),
        )  # fmt: skip
        await uow.commit()
    return _plan(plan)


@operator.get("/plans", response_model=list[PlanOut], responses=READ, operation_id="admin_plans")
async def list_plans(platform: PlatformDep, _: Principal = Reader) -> Any:
    async with platform.uow(write=False) as uow:
        return [_plan(p) for p in await billing.plans(uow)]


@operator.post(
    "/subscriptions", status_code=201, response_model=SubscriptionOut,
    responses={**WRITE, **problems(409)}, operation_id="admin_subscribe",
    description="Subscribes a supplier to a plan; a month already begun is billed at once, the "
    "next ones by the worker.",
)  # fmt: skip
async def subscribe(body: SubscriptionIn, platform: PlatformDep, _: Principal = Writer) -> Any:
    async with platform.uow() as uow:
        await access.get_supplier(uow, supplier_id=body.supplier)
        found = await billing.subscribe(
            uow, supplier_id=body.supplier, plan_id=body.plan, start=body.start
        )
        await uow.commit()
    async with platform.uow(write=False) as uow:
        mine = await billing.subscriptions(uow, supplier_id=found.supplier_id)
    return _subscription(next(s for s in mine if s.id == found.id))


@operator.post(
    "/subscriptions/{subscription_id}/end", response_model=SubscriptionOut,
    responses={**WRITE, **problems(409)}, operation_id="admin_end_subscription",
)  # fmt: skip
async def end_subscription(
    subscription_id: str, platform: PlatformDep, body: EndIn | None = None,
    _: Principal = Writer,
) -> Any:  # fmt: skip
    async with platform.uow() as uow:
        found = await billing.end_subscription(
            uow, subscription_id=subscription_id, supplier_id=None,
            at=body.at if body else None,
        )  # fmt: skip
        await uow.commit()
    return _subscription(found)


@operator.get(
    "/subscriptions", response_model=list[SubscriptionOut], responses=READ,
    operation_id="admin_subscriptions",
)  # fmt: skip
async def list_subscriptions(
    platform: PlatformDep,
    supplier: Annotated[str | None, Query(max_length=40)] = None,
    _: Principal = Reader,
) -> Any:
    async with platform.uow(write=False) as uow:
        return [_subscription(s) for s in await billing.subscriptions(uow, supplier_id=supplier)]


@operator.get("/bids", response_model=list[BidOut], responses=READ, operation_id="admin_bids")
async def admin_bids(
    platform: PlatformDep,
    supplier: Annotated[str | None, Query(max_length=40)] = None,
    live: bool = True,
    _: Principal = Reader,
) -> Any:
    async with platform.uow(write=False) as uow:
        return [_bid(b) for b in await billing.bids(uow, supplier_id=supplier, live=live)]


# --- supply ----------------------------------------------------------------------------------


@supply.get(
    "/subscriptions", response_model=list[SubscriptionOut], responses=READ,
    operation_id="supply_subscriptions",
)  # fmt: skip
async def supply_subscriptions(principal: SupplierDep, platform: PlatformDep) -> Any:
    async with platform.uow(write=False) as uow:
        found = await billing.subscriptions(uow, supplier_id=principal.owner_id)
    return [_subscription(s) for s in found]


@supply.post(
    "/bids", status_code=201, response_model=BidOut, responses=WRITE,
    operation_id="supply_place_bid",
    description="Bids for sponsored placement on a category, per click or per order; replaces "
    "the supplier's bid of that basis there.",
)  # fmt: skip
async def place_bid(body: BidIn, principal: SupplierDep, platform: PlatformDep) -> Any:
    async with platform.uow() as uow:
        category = await catalog.get_category(uow, ref=body.category)
        bid = await billing.place_bid(
            uow, supplier_id=principal.owner_id, category_id=category.id, basis=body.basis,
            amount=body.price.amount, currency=_currency(body.price.currency),
        )  # fmt: skip
        await uow.commit()
    return _bid(bid)


@supply.get("/bids", response_model=list[BidOut], responses=READ, operation_id="supply_bids")
async def supply_bids(principal: SupplierDep, platform: PlatformDep, live: bool = True) -> Any:
    async with platform.uow(write=False) as uow:
        return [_bid(b) for b in await billing.bids(uow, supplier_id=principal.owner_id, live=live)]


@supply.delete(
    "/bids/{bid_id}", status_code=204, responses=WRITE, operation_id="supply_withdraw_bid"
)
async def withdraw_bid(bid_id: str, principal: SupplierDep, platform: PlatformDep) -> None:
    async with platform.uow() as uow:
        await billing.withdraw_bid(uow, supplier_id=principal.owner_id, bid_id=bid_id)
        await uow.commit()


# --- store -----------------------------------------------------------------------------------


@store.post(
    "/clicks", status_code=201, response_model=ClickOut, responses=WRITE,
    operation_id="store_record_click",
    description="Records a customer's click on an offer; `placement: sponsored` when it was "
    "shown flagged `sponsored`.",
)  # fmt: skip
async def record_click(body: ClickIn, principal: StoreWriterDep, platform: PlatformDep) -> Any:
    assert principal.client is not None
    async with platform.uow() as uow:
        offer = await _clicked(uow, principal, body.offer)
        found = await billing.record_click(
            uow, client_id=principal.owner_id, offer=offer, placement=body.placement
        )
        await uow.commit()
    return {k: found[k] for k in ("id", "offer", "placement", "at")}


async def _clicked(uow: UnitOfWork, principal: Principal, offer_id: str) -> billing.Clicked:
    row = await catalog.store_offer(uow, view=principal.client, offer_id=offer_id)
    return billing.Clicked(row.id, row.supplier_id, row.category_id, row.currency)
