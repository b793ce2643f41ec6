"""Ledger rules: accounts, balanced transactions, commission terms, proportional reversal.

Every amount is an integer count of a currency's minor unit, and each currency stands alone:
a transaction balances per currency and nothing converts between them.

Sign convention: a posting's `amount` is positive for a debit and negative for a credit, so a
transaction balances when its amounts sum to zero per currency, and the sum of every account's
balance in a currency is zero. An account's *normal* balance (what it holds, as a positive
number) is its debit balance for assets and expenses and its credit balance (negated) for
liabilities and revenue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from marketplane.kernel.errors import Conflict, ValidationFailed


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    REVENUE = "revenue"
    EXPENSE = "expense"


DEBIT_NORMAL = frozenset({AccountType.ASSET, AccountType.EXPENSE})


class Purpose(StrEnum):
    """What an account is for. With its owner and currency it names one account."""

    CASH = "cash"  # asset: money the platform holds at its payment provider
    CUSTOMER_FUNDS = "customer_funds"  # liability: paid, not yet earned (awaiting acceptance)
    SUPPLIER_PENDING = "supplier_pending"  # liability: a supplier's, held until released
    SUPPLIER_PAYABLE = "supplier_payable"  # liability: owed to a supplier, available to pay out
    SUPPLIER_RECEIVABLE = "supplier_receivable"  # asset: a supplier owes (fees, advertising)
    CLIENT_PAYABLE = "client_payable"  # liability: a client's revenue share, owed to it
    COMMISSION = "commission"  # revenue
    MARKUP = "markup"  # revenue: what clients add on top of the supplier's price
    SUBSCRIPTIONS = "subscriptions"  # revenue
    ADVERTISING = "advertising"  # revenue
    DISTRIBUTION = "distribution"  # expense: revenue shared with clients
    PAYMENT_FEES = "payment_fees"  # expense: what the payment provider keeps
    PAYOUTS_IN_TRANSIT = "payouts_in_transit"  # liability: in a payout the provider has not paid


ACCOUNT_TYPES: Mapping[Purpose, AccountType] = {
    Purpose.CASH: AccountType.ASSET,
    Purpose.CUSTOMER_FUNDS: AccountType.LIABILITY,
    Purpose.SUPPLIER_PENDING: AccountType.LIABILITY,
    Purpose.SUPPLIER_PAYABLE: AccountType.LIABILITY,
    Purpose.SUPPLIER_RECEIVABLE: AccountType.ASSET,
    Purpose.CLIENT_PAYABLE: AccountType.LIABILITY,
    Purpose.COMMISSION: AccountType.REVENUE,
    Purpose.MARKUP: AccountType.REVENUE,
    Purpose.SUBSCRIPTIONS: AccountType.REVENUE,
    Purpose.ADVERTISING: AccountType.REVENUE,
    Purpose.DISTRIBUTION: AccountType.EXPENSE,
    Purpose.PAYMENT_FEES: AccountType.EXPENSE,
    Purpose.PAYOUTS_IN_TRANSIT: AccountType.LIABILITY,
}
PLATFORM = "platform"


@dataclass(frozen=True, slots=True, order=True)
class AccountKey:
    purpose: Purpose
    owner: str  # "platform", a supplier id, a client id
    currency: str

    @property
    def type(self) -> AccountType:
        return ACCOUNT_TYPES[self.purpose]


@dataclass(frozen=True, slots=True)
class Posting:
    account: AccountKey
    amount: int  # > 0 debit, < 0 credit


def debit(account: AccountKey, amount: int) -> Posting:
    return Posting(account, amount)


def credit(account: AccountKey, amount: int) -> Posting:
    return Posting(account, -amount)


@dataclass(frozen=True, slots=True)
class Entry:
    """A transaction to post: a business key (its idempotency), what it is, its postings."""

    key: str
    kind: str
    postings: tuple[Posting, ...]
    memo: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Unbalanced(ValidationFailed):
    code: str = "unbalanced_transaction"


@dataclass
class KeyReused(Conflict):
    """The business key was posted before, with other postings: a bug, never a retry."""

    code: str = "ledger_key_reused"


def check_balanced(postings: Sequence[Posting]) -> None:
    """Two or more postings of whole, non-zero amounts, summing to zero in each currency."""
    if len(postings) < 2:
        raise Unbalanced("a transaction has two or more postings")
    totals: dict[str, int] = {}
    for posting in postings:
        if posting.amount == 0 or not isinstance(posting.amount, int):
            raise Unbalanced("every posting moves a whole, non-zero amount", code="invalid_posting")
        currency = posting.account.currency
        totals[currency] = totals.get(currency, 0) + posting.amount
    off = {c: t for c, t in totals.items() if t}
    if off:
        raise Unbalanced(
            "the postings do not balance: "
            + ", ".join(f"{t:+d} {c}" for c, t in sorted(off.items())),
        )


def entry(key: str, kind: str, postings: Iterable[Posting], **memo: str) -> Entry:
    """An entry with zero-amount postings dropped and same-account postings merged; checked."""
    merged: dict[AccountKey, int] = {}
    for posting in postings:
        merged[posting.account] = merged.get(posting.account, 0) + posting.amount
    kept = tuple(Posting(a, n) for a, n in sorted(merged.items()) if n)
    check_balanced(kept)
    return Entry(key, kind, kept, memo)


def normal_balance(account: AccountKey, raw: int) -> int:
    """What an account holds, as a positive number when it holds what it should."""
    return raw if account.type in DEBIT_NORMAL else -raw


# --- commercial terms -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommissionRule:
    id: str
    supplier_id: str | None  # None: every supplier
    category_id: str | None  # None: every category
    rate_bps: int
    fixed: int  # per line, in the line's currency's minor units
    currency: str | None  # the fixed amount's currency (None: no fixed part)
    effective_from: datetime
    effective_to: datetime | None

    @property
    def specificity(self) -> int:
        return (2 if self.supplier_id else 0) + (1 if self.category_id else 0)

    def applies(self, supplier_id: str, category_id: str, at: datetime) -> bool:
        return (
            self.supplier_id in (None, supplier_id)
            and self.category_id in (None, category_id)
            and self.effective_from <= at
            and (self.effective_to is None or at < self.effective_to)
        )


def pick_rule(
    rules: Iterable[CommissionRule], *, supplier_id: str, category_id: str, at: datetime
) -> CommissionRule | None:
    """The most specific rule in force (supplier × category, then supplier, then category,
    then the default); among equals the one that took effect last."""
    found = [r for r in rules if r.applies(supplier_id, category_id, at)]
    if not found:
        return None
    return max(found, key=lambda r: (r.specificity, r.effective_from, r.id))


def commission(rule: CommissionRule | None, amount: int, currency: str, quantity: int) -> int:
    """The commission on a line worth `amount`: rate of the amount, rounded half up, plus the
    fixed part per unit when it is in the line's currency; never more than the amount."""
    if rule is None:
        return 0
    rated = (amount * rule.rate_bps + 5000) // 10_000
    fixed = rule.fixed * quantity if rule.currency == currency else 0
    return min(amount, rated + fixed)


def share(amount: int, share_bps: int) -> int:
    """`share_bps` of `amount`, rounded half up."""
    return (amount * share_bps + 5000) // 10_000


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Splits `total` in proportion to `weights`, exactly (largest remainder): the parts sum to
    `total`, so a reversal of a part of a sale reverses each of its postings in proportion
    without losing or making a cent."""
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    base = [total * w // whole for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (total * weights[i] % whole, -i), reverse=True
    )
    for i in remainders[: total - sum(base)]:
        base[i] += 1
    return base


# --- payouts, plans, sponsored placement ---------------------------------------------------


class PayoutStatus(StrEnum):
    PENDING = "pending"  # taken from the payable, not yet accepted by the provider
    IN_TRANSIT = "in_transit"  # accepted by the provider, not yet settled
    PAID = "paid"
    FAILED = "failed"  # the money went back to the payable


PAYOUT_OPEN = frozenset({PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT})


class Schedule(StrEnum):
    MANUAL = "manual"  # on demand only
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class PayoutTrigger(StrEnum):
    SCHEDULE = "schedule"
    SUPPLIER = "supplier"
    OPERATOR = "operator"


class BidBasis(StrEnum):
    CLICK = "click"  # charged per click on a sponsored placement
    ORDER = "order"  # charged per accepted supplier order that followed such a click


class Placement(StrEnum):
    SPONSORED = "sponsored"
    ORGANIC = "organic"


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    supplier_id: str
    currency: str
    amount: int  # sent to the supplier
    netted: int  # of the payable, settled against what the supplier owed
    status: PayoutStatus
    trigger: PayoutTrigger
    destination: str
    reference: str | None
    failure_code: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PayoutSettings:
    supplier_id: str
    destination: str
    schedule: Schedule
    minimum: int  # minor units of whichever currency is paid out
    next_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    amount: int  # a month, in advance
    currency: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    supplier_id: str
    plan_id: str
    started_at: datetime
    ended_at: datetime | None
    billed_until: datetime  # the end of the last month billed


@dataclass(frozen=True, slots=True)
class Bid:
    id: str
    supplier_id: str
    category_id: str
    basis: BidBasis
    amount: int
    currency: str
    effective_from: datetime
    effective_to: datetime | None

    def in_force(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.effective_to is None or at < self.effective_to)


def add_months(at: datetime, months: int) -> datetime:
    """The same day and time `months` later, on the month's last day when it is shorter (a plan
    started on 31 January renews on 28 or 29 February, then 31 March)."""
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, _days_in(year, month)))


def _days_in(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def next_payout_run(schedule: Schedule, after: datetime) -> datetime | None:
    """When a schedule next pays out after `after` (None for manual)."""
    if schedule is Schedule.MANUAL:
        return None
    days = {Schedule.DAILY: 1, Schedule.WEEKLY: 7}.get(schedule)
    if days is not None:
        return after + timedelta(days=days)
    return add_months(after, 1)


def split_charge(amount: int, available: int) -> tuple[int, int]:
    """A charge to a supplier: the part taken from what the platform owes it (never more than
    that), and the rest, which the supplier then owes (its receivable)."""
    taken = min(amount, max(available, 0))
    return taken, amount - taken


def payout_amount(available: int, owed: int) -> tuple[int, int]:
    """What a payout sends and what it settles: what the supplier owes is netted first."""
    netted = min(max(owed, 0), max(available, 0))
    return available - netted, netted
