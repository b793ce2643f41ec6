"""Money routes: operators set terms and read the ledger (admin); a supplier reads its own
balance (supply). Nothing on the store side."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from marketplane.access.model import Permission, Principal
from marketplane.catalog.schemas import MoneyOut
from marketplane.http.deps import PlatformDep, SupplierDep, admin
from marketplane.http.openapi import READ, WRITE
from marketplane.kernel.clock import rfc3339
from marketplane.kernel.errors import field_error
from marketplane.kernel.pagination import Cursor, decode_cursor, encode_cursor, fingerprint
from marketplane.money import ledger, service
from marketplane.money.model import AccountKey, CommissionRule, normal_balance

operator = APIRouter(prefix="/admin/v1", tags=["admin: money"])
supply = APIRouter(prefix="/supply/v1", tags=["supply: money"])
Limit = Annotated[int, Query(ge=1, le=100)]
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleIn(Strict):
    supplier: str | None = Field(default=None, max_length=40, description="None: every one.")
    category: str | None = Field(default=None, max_length=40, description="None: every one.")
    rate_bps: StrictInt = Field(ge=0, le=10_000, description="Of the supplier's price.")
    fixed: StrictInt = Field(default=0, ge=0, le=10**12, description="Per unit, minor units.")
    currency: str | None = Field(default=None, pattern="^[A-Z]{3}$")
    effective_from: AwareDatetime | None = None
    effective_to: AwareDatetime | None = None


class RuleOut(BaseModel):
    id: str
    supplier: str | None
    category: str | None
    rate_bps: int
    fixed: int
    currency: str | None
    effective_from: datetime
    effective_to: datetime | None


class ShareIn(Strict):
    client: str = Field(max_length=40)
    share_bps: StrictInt = Field(ge=0, le=10_000, description="Of the commission on its sales.")
    effective_from: AwareDatetime | None = None


class ShareOut(BaseModel):
    id: str
    client: str
    share_bps: int
    effective_from: datetime


class AccountOut(BaseModel):
    purpose: str
    type: str
    owner: str
    balance: MoneyOut = Field(description="What it holds: positive when it holds what it should.")


class PostingOut(BaseModel):
    purpose: str
    owner: str
    amount: MoneyOut = Field(description="Positive: debit; negative: credit.")


class TransactionOut(BaseModel):
    id: str
    key: str
    kind: str
    memo: dict[str, Any]
    posted_at: datetime
    postings: list[PostingOut]


class TransactionPage(BaseModel):
    data: list[TransactionOut]
    has_more: bool
    next_cursor: str | None


def _rule(rule: CommissionRule) -> dict[str, Any]:
    return {
        "id": rule.id, "supplier": rule.supplier_id, "category": rule.category_id,
        "rate_bps": rule.rate_bps, "fixed": rule.fixed, "currency": rule.currency,
        "effective_from": rule.effective_from, "effective_to": rule.effective_to,
    }  # fmt: skip


def _accounts(found: dict[AccountKey, int]) -> list[dict[str, Any]]:
    return [
        {
            "purpose": str(key.purpose),
            "type": str(key.type),
            "owner": key.owner,
            "balance": {"amount": normal_balance(key, raw), "currency": key.currency},
        }
        for key, raw in sorted(found.items())
    ]


@operator.post(
    "/commission-rules",
    status_code=201,
    response_model=RuleOut,
    responses=WRITE,
    operation_id="admin_create_commission_rule",
    description="A commission rule, effective-dated; the most specific one in force applies "
    "to each sold line (supplier × category, then supplier, then category, then the default).",
)
async def create_rule(
    body: RuleIn,
    platform: PlatformDep,
    _: Principal = Depends(admin(Permission.MONEY_WRITE)),
) -> Any:
    async with platform.uow() as uow:
        rule = await service.add_commission_rule(
            uow, supplier_id=body.supplier, category_id=body.category, rate_bps=body.rate_bps,
            fixed=body.fixed, currency=body.currency, effective_from=body.effective_from,
            effective_to=body.effective_to,
        )  # fmt: skip
        await uow.commit()
    return _rule(rule)


@operator.get(
    "/commission-rules",
    response_model=list[RuleOut],
    responses=READ,
    operation_id="admin_list_commission_rules",
)
async def list_rules(
    platform: PlatformDep, _: Principal = Depends(admin(Permission.MONEY_READ))
) -> Any:
    async with platform.uow(write=False) as uow:
        return [_rule(r) for r in await service.commission_rules(uow)]


@operator.post(
    "/revenue-shares",
    status_code=201,
    response_model=ShareOut,
    responses=WRITE,
    operation_id="admin_set_revenue_share",
    description="A client's share of the commission on what its customers buy, from a date on.",
)
async def set_share(
    body: ShareIn,
    platform: PlatformDep,
    _: Principal = Depends(admin(Permission.MONEY_WRITE)),
) -> Any:
    async with platform.uow() as uow:
        made = await service.set_revenue_share(
            uow, client_id=body.client, share_bps=body.share_bps, effective_from=body.effective_from
        )
        await uow.commit()
    return made


@operator.get(
    "/revenue-shares",
    response_model=list[ShareOut],
    responses=READ,
    operation_id="admin_list_revenue_shares",
)
async def list_shares(
    platform: PlatformDep,
    client: Annotated[str | None, Query(max_length=40)] = None,
    _: Principal = Depends(admin(Permission.MONEY_READ)),
) -> Any:
    async with platform.uow(write=False) as uow:
        return await service.revenue_shares(uow, client_id=client)


@operator.get(
    "/ledger/accounts",
    response_model=list[AccountOut],
    responses=READ,
    operation_id="admin_ledger_accounts",
    description="Every account's balance, now or as it stood `at` a past time.",
)
async def accounts(
    platform: PlatformDep,
    owner: Annotated[str | None, Query(max_length=40)] = None,
    at: Annotated[
        str | None,
        Query(pattern=RFC3339, description="RFC 3339 with its offset: the balances as they stood."),
    ] = None,
    _: Principal = Depends(admin(Permission.MONEY_READ)),
) -> Any:
    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError as exc:
            raise field_error("at", "invalid_time", f"{at!r} is not a time") from exc
    async with platform.uow(write=False) as uow:
        return _accounts(await ledger.balances(uow, owner=owner, at=when))


@operator.get(
    "/ledger/transactions",
    response_model=TransactionPage,
    responses=READ,
    operation_id="admin_ledger_transactions",
    description="Transactions newest first, with their postings (`owner`: touching its accounts).",
)
async def transactions(
    platform: PlatformDep,
    owner: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = 20,
    cursor: str | None = None,
    _: Principal = Depends(admin(Permission.MONEY_READ)),
) -> Any:
    params = {"owner": owner}
    before = None
    if cursor:
        found = decode_cursor(
            cursor, expected_sort="ltx", expected_fingerprint=fingerprint(params), arity=1
        )
        before = int(found.key[0])
    async with platform.uow(write=False) as uow:
        rows = await ledger.transactions(uow, owner=owner, before=before, limit=limit + 1)
    shown = rows[:limit]
    return {
        "data": [
            {
                "id": t.id,
                "key": t.key,
                "kind": t.kind,
                "memo": t.memo,
                "posted_at": rfc3339(t.posted_at),
                "postings": [
                    {
                        "purpose": p.purpose,
                        "owner": p.owner,
                        "amount": {"amount": p.amount, "currency": p.currency},
                    }
                    for p in t.postings
                ],
            }
            for t in shown
        ],
        "has_more": len(rows) > limit,
        "next_cursor": encode_cursor(Cursor("ltx", (shown[-1].pk,), fingerprint(params)))
        if len(rows) > limit
        else None,
    }


@supply.get(
    "/balance",
    response_model=list[AccountOut],
    responses=READ,
    operation_id="supply_balance",
    description="What the platform owes the supplier (payable) and what it owes the platform "
    "(receivable), per currency.",
)
async def supply_balance(principal: SupplierDep, platform: PlatformDep) -> Any:
    async with platform.uow(write=False) as uow:
        return _accounts(await ledger.balances(uow, owner=principal.owner_id))
