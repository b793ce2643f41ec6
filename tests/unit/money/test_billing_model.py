"""The rules of billing and payouts: months counted from the start, payout schedules, what a
charge takes from the payable, what a payout sends and settles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplane.money.model import (
    Schedule,
    add_months,
    next_payout_run,
    payout_amount,
    split_charge,
)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2026, 1, 31, 9, tzinfo=UTC), 1, datetime(2026, 2, 28, 9, tzinfo=UTC)),
        (datetime(2028, 1, 31, 9, tzinfo=UTC), 1, datetime(2028, 2, 29, 9, tzinfo=UTC)),
        (datetime(2026, 1, 31, 9, tzinfo=UTC), 2, datetime(2026, 3, 31, 9, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),
        (datetime(2026, 3, 31, tzinfo=UTC), -1, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2026, 12, 15, tzinfo=UTC), 1, datetime(2027, 1, 15, tzinfo=UTC)),
        (datetime(2100, 2, 28, tzinfo=UTC), 12, datetime(2101, 2, 28, tzinfo=UTC)),
        (datetime(2000, 1, 29, tzinfo=UTC), 1, datetime(2000, 2, 29, tzinfo=UTC)),
    ],
)
def test_a_month_later_is_the_same_day_or_the_month_s_last(
    start: datetime, months: int, expected: datetime
) -> None:
    assert add_months(start, months) == expected


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(0, 60),
)
def test_months_counted_from_the_start_always_move_forward(start: datetime, n: int) -> None:
    this, following = add_months(start, n), add_months(start, n + 1)
    assert this < following
    assert timedelta(days=28) <= following - this <= timedelta(days=31)
    assert (following.year * 12 + following.month) - (start.year * 12 + start.month) == n + 1


def test_payout_schedules() -> None:
    at = datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert next_payout_run(Schedule.MANUAL, at) is None
    assert next_payout_run(Schedule.DAILY, at) == at + timedelta(days=1)
    assert next_payout_run(Schedule.WEEKLY, at) == at + timedelta(days=7)
    assert next_payout_run(Schedule.MONTHLY, at) == datetime(2026, 2, 28, 12, tzinfo=UTC)


@given(st.integers(1, 10**9), st.integers(-(10**9), 10**9))
def test_a_charge_takes_what_the_payable_holds_and_the_rest_is_owed(
    amount: int, available: int
) -> None:
    taken, owed = split_charge(amount, available)
    assert taken + owed == amount
    assert 0 <= taken <= max(available, 0)
    assert owed == 0 or taken == max(available, 0)


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_a_payout_settles_what_is_owed_first_and_sends_the_rest(available: int, owed: int) -> None:
    sent, netted = payout_amount(available, owed)
    assert sent + netted == available  # the whole payable leaves it
    assert netted == min(available, owed)
    assert sent >= 0
