"""The ledger on both databases: idempotent by business key, balanced, final, and guarded
floors that concurrent postings cannot pass together."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from marketplane.bootstrap import Platform
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import Conflict
from marketplane.money import ledger
from marketplane.money import store as tables
from marketplane.money.model import PLATFORM, AccountKey, KeyReused, Purpose, credit, debit, entry

CASH = AccountKey(Purpose.CASH, PLATFORM, "EUR")
FUNDS = AccountKey(Purpose.CUSTOMER_FUNDS, PLATFORM, "EUR")
PAYABLE = AccountKey(Purpose.SUPPLIER_PAYABLE, "sup_a", "EUR")
TRANSIT = AccountKey(Purpose.PAYOUTS_IN_TRANSIT, PLATFORM, "EUR")
COMMISSION = AccountKey(Purpose.COMMISSION, PLATFORM, "EUR")


async def post(platform: Platform, key: str, *postings: object, **floors: int) -> str:
    async with platform.uow() as uow:
        floor = {PAYABLE: floors["payable_floor"]} if "payable_floor" in floors else None
        made = await ledger.post(uow, entry(key, "test", postings), floors=floor)  # type: ignore[arg-type]
        await uow.commit()
    return made


async def balances(platform: Platform, at: datetime | None = None) -> dict[AccountKey, int]:
    async with platform.uow(write=False) as uow:
        return await ledger.balances(uow, at=at)


async def test_a_business_key_posts_once(platform: Platform) -> None:
    # given
    first = await post(platform, "capture:pay_1", debit(CASH, 1000), credit(FUNDS, 1000))
    # when: the same change recorded again, and a different one under the same key
    again = await post(platform, "capture:pay_1", debit(CASH, 1000), credit(FUNDS, 1000))
    with pytest.raises(KeyReused) as reused:
        await post(platform, "capture:pay_1", debit(CASH, 999), credit(FUNDS, 999))
    # then
    assert again == first
    assert reused.value.code == "ledger_key_reused"
    assert await balances(platform) == {CASH: 1000, FUNDS: -1000}


async def test_every_balance_in_a_currency_sums_to_zero(platform: Platform) -> None:
    # given: a sale earned and partly refunded
    await post(platform, "k1", debit(CASH, 1000), credit(FUNDS, 1000))
    await post(platform, "k2", debit(FUNDS, 1000), credit(PAYABLE, 880), credit(COMMISSION, 120))
    await post(platform, "k3", debit(PAYABLE, 88), debit(COMMISSION, 12), credit(CASH, 100))
    # then
    found = await balances(platform)
    assert sum(found.values()) == 0
    assert found[PAYABLE] == -792 and found[COMMISSION] == -108 and found[CASH] == 900


async def test_any_past_balance_can_be_told(platform: Platform) -> None:
    # given
    await post(platform, "k1", debit(CASH, 1000), credit(FUNDS, 1000))
    between = utcnow()
    await post(platform, "k2", debit(CASH, 500), credit(FUNDS, 500))
    # then
    assert (await balances(platform, at=between))[CASH] == 1000
    assert (await balances(platform))[CASH] == 1500


async def test_concurrent_payouts_never_take_a_payable_below_zero(platform: Platform) -> None:
    # given: 100 owed to the supplier
    await post(platform, "sale", debit(CASH, 100), credit(PAYABLE, 100))

    async def pay_out(n: int) -> str | Conflict:
        try:
            # a payable is a liability: its raw balance (debits positive) may not pass zero
            return await post(
                platform, f"payout:{n}", debit(PAYABLE, 60), credit(TRANSIT, 60), payable_floor=0
            )
        except Conflict as refused:
            return refused

    # when: ten payouts of 60 at once
    results = await asyncio.gather(*(pay_out(n) for n in range(10)))
    # then: one goes through, nine are refused, and the books agree with the running balance
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(refused) == 9 and {r.code for r in refused} == {"insufficient_balance"}
    assert (await balances(platform))[PAYABLE] == -40
    async with platform.uow(write=False) as uow:
        assert await tables.running_balance(await uow.connection(), PAYABLE) == -40


@pytest.mark.parametrize("table", ["ledger_postings", "ledger_transactions"])
async def test_the_database_refuses_to_change_or_remove_a_posted_entry(
    platform: Platform, table: str
) -> None:
    # given
    await post(platform, "k1", debit(CASH, 1000), credit(FUNDS, 1000))
    column = "amount" if table == "ledger_postings" else "kind"
    value = "0" if table == "ledger_postings" else "'changed'"

    async def run(statement: str) -> None:
        async with platform.uow() as uow:
            await (await uow.connection()).execute(sa.text(statement))
            await uow.commit()

    for statement in (f"UPDATE {table} SET {column} = {value}", f"DELETE FROM {table}"):
        # when
        with pytest.raises(DBAPIError) as refused:
            await run(statement)
        # then
        assert "never changed or removed" in str(refused.value)
    assert await balances(platform) == {CASH: 1000, FUNDS: -1000}
