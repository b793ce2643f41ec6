"""The ledger's rules: balanced entries, exact proportional allocation, commission terms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplane.money.model import (
    PLATFORM,
    AccountKey,
    CommissionRule,
    Purpose,
    Unbalanced,
    allocate,
    commission,
    credit,
    debit,
    entry,
    normal_balance,
    pick_rule,
)

CASH = AccountKey(Purpose.CASH, PLATFORM, "EUR")
FUNDS = AccountKey(Purpose.CUSTOMER_FUNDS, PLATFORM, "EUR")
PAYABLE = AccountKey(Purpose.SUPPLIER_PAYABLE, "sup_a", "EUR")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_an_entry_balances_per_currency_or_is_refused() -> None:
    usd_cash = AccountKey(Purpose.CASH, PLATFORM, "USD")
    usd_funds = AccountKey(Purpose.CUSTOMER_FUNDS, PLATFORM, "USD")
    made = entry("k", "capture", [debit(CASH, 100), credit(FUNDS, 100), debit(usd_cash, 5),
                                  credit(usd_funds, 5)])  # fmt: skip
    assert len(made.postings) == 4
    with pytest.raises(Unbalanced) as one_sided:
        entry("k", "x", [debit(CASH, 100)])
    assert one_sided.value.code == "unbalanced_transaction"
    with pytest.raises(Unbalanced) as off:
        entry("k", "x", [debit(CASH, 100), credit(FUNDS, 99)])
    assert "+1 EUR" in str(off.value)
    with pytest.raises(Unbalanced):  # balanced in sum, not per currency: no conversion
        entry("k", "x", [debit(CASH, 100), credit(usd_funds, 100)])


def test_an_entry_merges_an_accounts_postings_and_drops_zeros() -> None:
    made = entry("k", "x", [debit(CASH, 70), debit(CASH, 30), credit(FUNDS, 100),
                            debit(PAYABLE, 0)])  # fmt: skip
    assert [(p.account, p.amount) for p in made.postings] == [(CASH, 100), (FUNDS, -100)]


def test_what_an_account_holds_follows_its_type() -> None:
    assert normal_balance(CASH, 500) == 500  # an asset holds its debits
    assert normal_balance(PAYABLE, -500) == 500  # a liability holds its credits


@given(
    total=st.integers(min_value=0, max_value=10**12),
    weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=8),
)
def test_allocation_is_exact_and_proportional(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        exact = total * weight / sum(weights)
        assert abs(part - exact) < 1 + 1e-9 * max(1, exact)


def rule(supplier: str | None, category: str | None, bps: int, **more: object) -> CommissionRule:
    values: dict[str, object] = {
        "id": f"cr_{supplier}_{category}_{bps}",
        "supplier_id": supplier,
        "category_id": category,
        "rate_bps": bps,
        "fixed": 0,
        "currency": None,
        "effective_from": T0,
        "effective_to": None,
    }
    values.update(more)
    return CommissionRule(**values)  # type: ignore[arg-type]


def test_the_most_specific_rule_in_force_wins() -> None:
    rules = [
        rule(None, None, 1000),
        rule(None, "cat_books", 1200),
        rule("sup_a", None, 800),
        rule("sup_a", "cat_books", 500),
        rule("sup_a", "cat_books", 300, effective_from=T0 + timedelta(days=10)),
    ]
    at = T0 + timedelta(days=1)
    assert pick_rule(rules, supplier_id="sup_a", category_id="cat_books", at=at) == rules[3]
    assert pick_rule(rules, supplier_id="sup_a", category_id="cat_stays", at=at) == rules[2]
    assert pick_rule(rules, supplier_id="sup_b", category_id="cat_books", at=at) == rules[1]
    assert pick_rule(rules, supplier_id="sup_b", category_id="cat_stays", at=at) == rules[0]
    later = T0 + timedelta(days=11)
    assert pick_rule(rules, supplier_id="sup_a", category_id="cat_books", at=later) == rules[4]
    ended = [rule(None, None, 1000, effective_to=T0 + timedelta(days=1))]
    assert pick_rule(ended, supplier_id="sup_a", category_id="c", at=later) is None


def test_commission_rounds_half_up_adds_its_fixed_part_and_never_passes_the_amount() -> None:
    assert commission(rule(None, None, 1250), 1001, "EUR", 1) == 125  # 125.125
    assert commission(rule(None, None, 1250), 1004, "EUR", 1) == 126  # 125.5
    fixed = rule(None, None, 1000, fixed=30, currency="EUR")
    assert commission(fixed, 2000, "EUR", 2) == 200 + 60
    assert commission(fixed, 2000, "USD", 2) == 200  # the fixed part is in euros only
    assert commission(rule(None, None, 10_000, fixed=50, currency="EUR"), 40, "EUR", 1) == 40
    assert commission(None, 2000, "EUR", 1) == 0
