"""Payout and statement routes: a supplier sets where it is paid, asks for a payout, reads its
payouts and statements (supply); operators do the same for any supplier (admin); the payout
provider answers (hooks)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from marketplane.access import service as access
from marketplane.access.model import Permission, Principal
from marketplane.bootstrap import Platform
from marketplane.catalog.schemas import MoneyOut
from marketplane.http.deps import PlatformDep, SupplierDep, admin
from marketplane.http.openapi import READ, WRITE, problems
from marketplane.kernel.clock import rfc3339, utcnow
from marketplane.kernel.errors import NotFound, field_error
from marketplane.kernel.pagination import Cursor, decode_cursor, encode_cursor, fingerprint
from marketplane.money import payouts, statements
from marketplane.money.model import Payout, PayoutSettings, PayoutTrigger, Schedule

operator = APIRouter(prefix="/admin/v1", tags=["admin: payouts"])
supply = APIRouter(prefix="/supply/v1", tags=["supply: payouts"])
hooks = APIRouter(prefix="/hooks", tags=["payout providers"])
Limit = Annotated[int, Query(ge=1, le=100)]
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
Currency = Annotated[str, Query(pattern="^[A-Z]{3}$")]
PAYOUT_CONFLICTS = {**WRITE, **problems(409)}
STATEMENT = {
    200: {
        "description": "The statement: JSON, or CSV with `format=csv`",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **READ,
}


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: str = Field(max_length=200, description="Where the provider pays.")
    schedule: Schedule = Schedule.MANUAL
    minimum: StrictInt | None = Field(
        default=None, ge=1, le=10**12, description="Smallest payout (default: the platform's)."
    )


class SettingsOut(BaseModel):
    supplier: str
    destination: str
    schedule: Schedule
    minimum: int
    next_run_at: datetime | None


class PayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: str = Field(pattern="^[A-Z]{3}$")


class PayoutOut(BaseModel):
    id: str
    supplier: str
    status: str
    amount: MoneyOut = Field(description="Sent to the supplier.")
    netted: MoneyOut = Field(description="Of its balance, settled against what it owed.")
    trigger: str
    destination: str
    reference: str | None
    failure_code: str | None
    created_at: datetime
    updated_at: datetime


class PayoutPage(BaseModel):
    data: list[PayoutOut]
    has_more: bool
    next_cursor: str | None


class Position(BaseModel):
    currency: str
    pending: int = Field(description="Its share of sales, held until released.")
    available: int = Field(description="What the next payout takes.")
    owed: int = Field(description="What it owes the platform, settled from the next payout.")
    in_transit: int = Field(description="In payouts not yet settled.")


class StatementLine(BaseModel):
    posted_at: datetime
    transaction: str
    kind: str
    reference: str | None
    account: str
    amount: int
    balance: int


class StatementOut(BaseModel):
    supplier: str
    currency: str
    since: datetime | None
    until: datetime
    opening: dict[str, int]
    lines: list[StatementLine]
    closing: dict[str, int]


def _settings(found: PayoutSettings) -> dict[str, Any]:
    return {
        "supplier": found.supplier_id, "destination": found.destination,
        "schedule": str(found.schedule), "minimum": found.minimum,
        "next_run_at": rfc3339(found.next_run_at) if found.next_run_at else None,
    }  # fmt: skip


def _time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise field_error(name, "invalid_time", f"{value!r} is not a time") from exc


async def _known(platform: Platform, supplier_id: str) -> None:
    """Operators name the supplier: one that exists."""
    async with platform.uow(write=False) as uow:
        await access.get_supplier(uow, supplier_id=supplier_id)


async def _configure(platform: Platform, supplier_id: str, body: SettingsIn) -> Any:
    async with platform.uow() as uow:
        found = await payouts.configure(
            uow, platform.payouts, supplier_id=supplier_id, destination=body.destination,
            schedule=body.schedule, minimum=body.minimum or platform.settings.payout_minimum,
        )  # fmt: skip
        await uow.commit()
    return _settings(found)


async def _read_settings(platform: Platform, supplier_id: str) -> Any:
    async with platform.uow(write=False) as uow:
        found = await payouts.settings_of(uow, supplier_id)
    if found is None:
        raise NotFound("no payout settings yet", code="payout_settings_missing")
    return _settings(found)


async def _pay_out(
    platform: Platform, supplier_id: str, currency: str, trigger: PayoutTrigger
) -> Any:
    async with platform.uow() as uow:
        payout = await payouts.open_payout(
            uow, supplier_id=supplier_id, currency=currency, trigger=trigger
        )
        await uow.commit()
    return payouts.present(await payouts.send(platform.uow, platform.payouts, payout))


async def _page(platform: Platform, supplier_id: str | None, limit: int, cursor: str | None) -> Any:
    params = {"supplier": supplier_id}
    before = None
    if cursor:
        found = decode_cursor(
            cursor, expected_sort="po", expected_fingerprint=fingerprint(params), arity=1
        )
        before = str(found.key[0])
    async with platform.uow(write=False) as uow:
        rows: list[Payout] = await payouts.list_payouts(
            uow, supplier_id=supplier_id, before=before, limit=limit + 1
        )
    shown = rows[:limit]
    more = len(rows) > limit
    return {
        "data": [payouts.present(p) for p in shown],
        "has_more": more,
        "next_cursor": encode_cursor(Cursor("po", (shown[-1].id,), fingerprint(params)))
        if more
        else None,
    }


async def _statement(
    platform: Platform,
    supplier_id: str,
    currency: str,
    since: str | None,
    until: str | None,
    format: str,
) -> Any:
    async with platform.uow(write=False) as uow:
        found = await statements.statement(
            uow, supplier_id=supplier_id, currency=currency, since=_time("since", since),
            until=_time("until", until) or utcnow(),
        )  # fmt: skip
    if format == "csv":
        name = f"statement-{currency}.csv"
        return Response(
            statements.as_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )
    return found


Since = Annotated[
    str | None, Query(pattern=RFC3339, description="From (inclusive); default: the beginning.")
]
Until = Annotated[str | None, Query(pattern=RFC3339, description="To (inclusive); default: now.")]
Format = Annotated[str, Query(pattern="^(json|csv)$", description="json (default) or csv.")]
STATEMENT_DOC = (
    "Every posting on the supplier's accounts (pending, available, owed) in the period, in its "
    "favour, each naming its ledger transaction: opening + lines = closing, which are the "
    "ledger's balances then. `format=csv` downloads it."
)


# --- supply ----------------------------------------------------------------------------------


@supply.put(
    "/payout-settings", response_model=SettingsOut, responses=WRITE,
    operation_id="supply_set_payout_settings",
    description="Where the supplier is paid, how often (manual, daily, weekly, monthly), and "
    "its smallest payout.",
)  # fmt: skip
async def supply_set_settings(
    body: SettingsIn, principal: SupplierDep, platform: PlatformDep
) -> Any:
    return await _configure(platform, principal.owner_id, body)


@supply.get(
    "/payout-settings", response_model=SettingsOut, responses=READ,
    operation_id="supply_payout_settings",
)  # fmt: skip
async def supply_settings(principal: SupplierDep, platform: PlatformDep) -> Any:
    return await _read_settings(platform, principal.owner_id)


@supply.get(
    "/payouts/position", response_model=list[Position], responses=READ,
    operation_id="supply_payout_position",
    description="Per currency: held, available, owed and in transit.",
)  # fmt: skip
async def supply_position(principal: SupplierDep, platform: PlatformDep) -> Any:
    async with platform.uow(write=False) as uow:
        found = await payouts.position(uow, principal.owner_id)
    return [{"currency": c, **v} for c, v in sorted(found.items())]


@supply.post(
    "/payouts", status_code=201, response_model=PayoutOut, responses=PAYOUT_CONFLICTS,
    operation_id="supply_request_payout",
    description="Pays out the available balance in a currency now (409 below_minimum when it is "
    "less than the minimum; 409 insufficient_balance when another payout took it).",
)  # fmt: skip
async def supply_request_payout(
    body: PayoutIn, principal: SupplierDep, platform: PlatformDep
) -> Any:
    return await _pay_out(platform, principal.owner_id, body.currency, PayoutTrigger.SUPPLIER)


@supply.get(
    "/payouts", response_model=PayoutPage, responses=READ, operation_id="supply_list_payouts"
)
async def supply_list_payouts(
    principal: SupplierDep, platform: PlatformDep, limit: Limit = 20, cursor: str | None = None
) -> Any:
    return await _page(platform, principal.owner_id, limit, cursor)


@supply.get(
    "/payouts/{payout_id}", response_model=PayoutOut, responses=READ,
    operation_id="supply_get_payout",
)  # fmt: skip
async def supply_get_payout(payout_id: str, principal: SupplierDep, platform: PlatformDep) -> Any:
    async with platform.uow(write=False) as uow:
        return payouts.present(
            await payouts.payout_of(uow, payout_id, supplier_id=principal.owner_id)
        )


@supply.get(
    "/statements", response_model=StatementOut, responses=STATEMENT,
    operation_id="supply_statement", description=STATEMENT_DOC,
)  # fmt: skip
async def supply_statement(
    principal: SupplierDep,
    platform: PlatformDep,
    currency: Currency,
    since: Since = None,
    until: Until = None,
    format: Format = "json",
) -> Any:
    return await _statement(platform, principal.owner_id, currency, since, until, format)


# --- admin -----------------------------------------------------------------------------------

Reader = Depends(admin(Permission.MONEY_READ))
Writer = Depends(admin(Permission.MONEY_WRITE))


@operator.put(
    "/suppliers/{supplier_id}/payout-settings", response_model=SettingsOut, responses=WRITE,
    operation_id="admin_set_payout_settings",
)  # fmt: skip
async def admin_set_settings(
    supplier_id: str, body: SettingsIn, platform: PlatformDep, _: Principal = Writer
) -> Any:
    await _known(platform, supplier_id)
    return await _configure(platform, supplier_id, body)


@operator.get(
    "/suppliers/{supplier_id}/payout-settings", response_model=SettingsOut, responses=READ,
    operation_id="admin_payout_settings",
)  # fmt: skip
async def admin_settings(supplier_id: str, platform: PlatformDep, _: Principal = Reader) -> Any:
    return await _read_settings(platform, supplier_id)


@operator.post(
    "/suppliers/{supplier_id}/payouts", status_code=201, response_model=PayoutOut,
    responses=PAYOUT_CONFLICTS, operation_id="admin_create_payout",
    description="Pays out a supplier's available balance in a currency now.",
)  # fmt: skip
async def admin_create_payout(
    supplier_id: str, body: PayoutIn, platform: PlatformDep, _: Principal = Writer
) -> Any:
    await _known(platform, supplier_id)
    return await _pay_out(platform, supplier_id, body.currency, PayoutTrigger.OPERATOR)


@operator.get(
    "/payouts", response_model=PayoutPage, responses=READ, operation_id="admin_list_payouts"
)
async def admin_list_payouts(
    platform: PlatformDep,
    supplier: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = 20,
    cursor: str | None = None,
    _: Principal = Reader,
) -> Any:
    return await _page(platform, supplier, limit, cursor)


@operator.get(
    "/payouts/{payout_id}", response_model=PayoutOut, responses=READ,
    operation_id="admin_get_payout",
)  # fmt: skip
async def admin_get_payout(payout_id: str, platform: PlatformDep, _: Principal = Reader) -> Any:
    async with platform.uow(write=False) as uow:
        return payouts.present(await payouts.payout_of(uow, payout_id, supplier_id=None))


@operator.get(
    "/suppliers/{supplier_id}/statement", response_model=StatementOut, responses=STATEMENT,
    operation_id="admin_supplier_statement", description=STATEMENT_DOC,
)  # fmt: skip
async def admin_statement(
    supplier_id: str,
    platform: PlatformDep,
    currency: Currency,
    since: Since = None,
    until: Until = None,
    format: Format = "json",
    _: Principal = Reader,
) -> Any:
    await _known(platform, supplier_id)
    return await _statement(platform, supplier_id, currency, since, until, format)


# --- the payout provider ---------------------------------------------------------------------


@hooks.post(
    "/payouts/{provider}",
    operation_id="payout_callback",
    responses={**problems(400, 401, 404, 413)},
    description="A payout provider's answer about a payout (paid or failed), signed; each is "
    "applied once, however often it is sent.",
)
async def payout_callback(provider: str, request: Request, platform: PlatformDep) -> Any:
    known = platform.payouts
    if provider != known.name:
        raise NotFound(f"no payout provider {provider!r}", code="provider_not_found")
    async with platform.uow() as uow:
        applied = await payouts.handle_callback(
            uow, known, headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )  # fmt: skip
        await uow.commit()
    return {"applied": applied}
