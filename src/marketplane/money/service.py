"""Money use cases: commercial terms, and the postings a sale makes, each in the transaction
of the change it records.

A sale posts three times, and a fourth when it is released. **Capture** (the provider took the
customer's money): cash and the provider's fee against customer funds, money held and not yet
anyone's. **Acceptance** (a supplier accepted lines): those funds become the supplier's pending
balance less commission, the commission, the client's markup, and the client's revenue share of
the commission (a distribution cost). **Release** (the hold after fulfilment has passed): what
is left of the supplier's pending share becomes payable, available to pay out. **Refund** (sent
back to the customer): of money not yet earned, funds against cash; of an accepted sale, each
part of the acceptance reversed in proportion, cumulatively exact (the refunds of a whole sale
reverse exactly what it posted). The supplier's part comes out of its pending balance before
release; after, out of its payable, and what the payable does not hold (paid out already)
becomes owed by the supplier (its receivable), so the payable never goes below zero. Any other
charge to a supplier (subscription, advertising) is taken the same way. The provider keeps its
fee on a refund.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplane.db.uow import UnitOfWork
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import ValidationFailed, field_error
from marketplane.kernel.ids import has_prefix, new_id
from marketplane.money import ledger, store
from marketplane.money.model import (
    PLATFORM,
    AccountKey,
    CommissionRule,
    Posting,
    Purpose,
    allocate,
    commission,
    credit,
    debit,
    entry,
    pick_rule,
    share,
    split_charge,
)


def _platform(purpose: Purpose, currency: str) -> AccountKey:
    return AccountKey(purpose, PLATFORM, currency)


# --- terms ----------------------------------------------------------------------------------


async def add_commission_rule(
    uow: UnitOfWork,
    *,
    supplier_id: str | None,
    category_id: str | None,
    rate_bps: int,
    fixed: int,
    currency: str | None,
    effective_from: datetime | None,
    effective_to: datetime | None,
) -> CommissionRule:
    """A commission rule; the most specific one in force applies to each sold line."""
    if supplier_id is not None and not has_prefix(supplier_id, "sup"):
        raise field_error("supplier", "invalid_id", f"{supplier_id!r} is not a sup_ id")
    if category_id is not None and not has_prefix(category_id, "cat"):
        raise field_error("category", "invalid_id", f"{category_id!r} is not a cat_ id")
    if fixed and currency is None:
        raise field_error("fixed", "currency_required", "a fixed amount needs its currency")
    now = utcnow()
    start = effective_from or now
    if effective_to is not None and effective_to <= start:
        raise field_error("effective_to", "before_start", "a rule must end after it starts")
    rule = CommissionRule(
        id=new_id("cr"),
        supplier_id=supplier_id,
        category_id=category_id,
        rate_bps=rate_bps,
        fixed=fixed,
        currency=currency,
        effective_from=start,
        effective_to=effective_to,
    )
    await store.insert_rule(await uow.connection(), rule, now)
    return rule


async def commission_rules(uow: UnitOfWork) -> list[CommissionRule]:
    return await store.rules_for(await uow.connection(), None)


async def set_revenue_share(
    uow: UnitOfWork, *, client_id: str, share_bps: int, effective_from: datetime | None
) -> dict[str, object]:
    """From `effective_from` on (default now), the client gets `share_bps` of the commission
    on what its customers buy."""
    if not has_prefix(client_id, "cli"):
        raise field_error("client", "invalid_id", f"{client_id!r} is not a cli_ id")
    now = utcnow()
    share_id = new_id("rs")
    start = effective_from or now
    await store.insert_share(
        await uow.connection(), share_id=share_id, client_id=client_id, share_bps=share_bps,
        start=start, at=now,
    )  # fmt: skip
    return {"id": share_id, "client": client_id, "share_bps": share_bps, "effective_from": start}


async def revenue_shares(uow: UnitOfWork, *, client_id: str | None) -> list[dict[str, object]]:
    rows = await store.shares_of(await uow.connection(), client_id)
    return [
        {"id": r.id, "client": r.client_id, "share_bps": r.share_bps,
         "effective_from": r.effective_from}
        for r in rows
    ]  # fmt: skip


async def _share_bps(uow: UnitOfWork, client_id: str, at: datetime) -> int:
    rows = await store.shares_of(await uow.connection(), client_id)
    in_force = [r for r in rows if r.effective_from <= at]
    return int(in_force[-1].share_bps) if in_force else 0


# --- what a sale posts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SoldLine:
    offer_id: str
    category_id: str
    quantity: int
    amount: int  # what the customer paid for the line
    supplier_amount: int  # the supplier's price for it


async def record_capture(
    uow: UnitOfWork, *, payment_id: str, amount: int, fee: int, currency: str
) -> str:
    """The provider took `amount` and kept `fee`: money held for the customer's order."""
    return await ledger.post(
        uow,
        entry(
            f"payment:{payment_id}:captured",
            "payment_captured",
            [
                debit(_platform(Purpose.CASH, currency), amount - fee),
                debit(_platform(Purpose.PAYMENT_FEES, currency), fee),
                credit(_platform(Purpose.CUSTOMER_FUNDS, currency), amount),
            ],
            payment=payment_id,
        ),
    )


def _acceptance_key(supplier_order_id: str) -> str:
    return f"supplier_order:{supplier_order_id}:accepted"


async def record_acceptance(
    uow: UnitOfWork,
    *,
    supplier_order_id: str,
    supplier_id: str,
    client_id: str,
    currency: str,
    lines: Sequence[SoldLine],
) -> str:
    """Accepted lines earn: the supplier's payable (its price less commission), the platform's
    commission and markup, the client's share of the commission."""
    now = utcnow()
    rules = await store.rules_for(await uow.connection(), supplier_id)
    amount = sum(line.amount for line in lines)
    supplier_amount = sum(line.supplier_amount for line in lines)
    earned = sum(
        commission(
            pick_rule(rules, supplier_id=supplier_id, category_id=line.category_id, at=now),
            line.supplier_amount,
            currency,
            line.quantity,
        )
        for line in lines
    )
    markup = amount - supplier_amount
    if markup < 0:
        raise ValidationFailed("a client never sells below the supplier's price")
    shared = share(earned, await _share_bps(uow, client_id, now))
    pending = AccountKey(Purpose.SUPPLIER_PENDING, supplier_id, currency)
    postings = [
        debit(_platform(Purpose.CUSTOMER_FUNDS, currency), amount),
        credit(pending, supplier_amount - earned),
        credit(_platform(Purpose.COMMISSION, currency), earned),
        credit(_platform(Purpose.MARKUP, currency), markup),
        debit(_platform(Purpose.DISTRIBUTION, currency), shared),
        credit(AccountKey(Purpose.CLIENT_PAYABLE, client_id, currency), shared),
    ]
    memo = {
        "supplier_order": supplier_order_id, "supplier": supplier_id, "client": client_id,
        "amount": str(amount), "payable": str(supplier_amount - earned),
        "commission": str(earned), "markup": str(markup), "share": str(shared),
        "held": "pending",  # its share waits for release (sales before 0008 were paid at once)
    }  # fmt: skip
    return await ledger.post(
        uow, entry(_acceptance_key(supplier_order_id), "sale_accepted", postings, **memo)
    )


async def _sale(uow: UnitOfWork, supplier_order_id: str) -> Any:
    """The figures an accepted sale posted (its memo)."""
    sale = await store.transaction_by_key(
        await uow.connection(), _acceptance_key(supplier_order_id)
    )
    if sale is None:
        raise ValidationFailed(f"supplier order {supplier_order_id} has no accepted sale")
    return sale.memo


async def record_refund(
    uow: UnitOfWork,
    *,
    refund_id: str,
    supplier_order_id: str | None,
    amount: int,
    currency: str,
    earned: bool,
    earned_before: int,
) -> str:
    """The customer got `amount` back. `earned`: out of an accepted sale, of which
    `earned_before` had been refunded already (for exact cumulative reversal)."""
    cash = _platform(Purpose.CASH, currency)
    if not earned or supplier_order_id is None:
        held = [debit(_platform(Purpose.CUSTOMER_FUNDS, currency), amount), credit(cash, amount)]
        return await ledger.post(
            uow, entry(f"refund:{refund_id}", "refund", held, refund=refund_id)
        )
    memo = await _sale(uow, supplier_order_id)
    total = int(memo["amount"])
    weights = [int(memo["payable"]), int(memo["commission"]), int(memo["markup"])]

    def reversed_until(refunded: int) -> list[int]:
        return [
            *allocate(refunded, weights),
            allocate(int(memo["share"]), [refunded, total - refunded])[0],
        ]

    after, before = reversed_until(earned_before + amount), reversed_until(earned_before)
    to_payable, to_commission, to_markup, to_share = (
        a - b for a, b in zip(after, before, strict=True)
    )
    supplier = memo["supplier"]
    floors: dict[AccountKey, int] = {}
    released = "held" not in memo or await store.transaction_by_key(
        await uow.connection(), _release_key(supplier_order_id)
    )
    if released:
        supplier_part, floors = await supplier_charge(uow, supplier, currency, to_payable)
    else:
        pending = AccountKey(Purpose.SUPPLIER_PENDING, supplier, currency)
        supplier_part = [debit(pending, to_payable)]
    postings: list[Posting] = [
        *supplier_part,
        debit(_platform(Purpose.COMMISSION, currency), to_commission),
        debit(_platform(Purpose.MARKUP, currency), to_markup),
        credit(cash, amount),
        debit(AccountKey(Purpose.CLIENT_PAYABLE, memo["client"], currency), to_share),
        credit(_platform(Purpose.DISTRIBUTION, currency), to_share),
    ]  # fmt: skip
    return await ledger.post(
        uow,
        entry(f"refund:{refund_id}", "refund_of_sale", postings, refund=refund_id),
        floors=floors,
    )


def _release_key(supplier_order_id: str) -> str:
    return f"supplier_order:{supplier_order_id}:released"


async def record_release(
    uow: UnitOfWork, *, supplier_order_id: str, currency: str, earned_refunded: int
) -> str | None:
    """The hold after fulfilment has passed: what is left of the supplier's share of the sale
    (its pending part less what refunds took back of it, `earned_refunded` so far) becomes
    payable. None when refunds took it all."""
    memo = await _sale(uow, supplier_order_id)
    weights = [int(memo["payable"]), int(memo["commission"]), int(memo["markup"])]
    left = int(memo["payable"]) - allocate(earned_refunded, weights)[0]
    if left == 0:
        return None
    supplier = memo["supplier"]
    return await ledger.post(
        uow,
        entry(
            _release_key(supplier_order_id),
            "sale_released",
            [
                debit(AccountKey(Purpose.SUPPLIER_PENDING, supplier, currency), left),
                credit(AccountKey(Purpose.SUPPLIER_PAYABLE, supplier, currency), left),
            ],
            supplier_order=supplier_order_id,
            supplier=supplier,
        ),
    )


async def supplier_charge(
    uow: UnitOfWork, supplier_id: str, currency: str, amount: int
) -> tuple[list[Posting], dict[AccountKey, int]]:
    """The debit side of charging a supplier `amount`: out of its payable as far as it goes
    (never below zero: the floor to post with), the rest owed by it (its receivable)."""
    payable = AccountKey(Purpose.SUPPLIER_PAYABLE, supplier_id, currency)
    # Locked: a payout or another charge cannot take it between this read and the posting.
    available = -(await store.running_balance(await uow.connection(), payable, lock=True))
    taken, owed = split_charge(amount, available)
    receivable = AccountKey(Purpose.SUPPLIER_RECEIVABLE, supplier_id, currency)
    return [debit(payable, taken), debit(receivable, owed)], {payable: 0}
