"""Payouts under contention, on both databases: many processes asking to pay one supplier at
once pay it once; a provider's answer applied from several places at once settles once."""

from __future__ import annotations

import asyncio

from marketplane.bootstrap import Platform, build
from marketplane.kernel.errors import Conflict
from marketplane.money import ledger, payouts
from marketplane.money.model import (
    PLATFORM,
    AccountKey,
    Payout,
    PayoutStatus,
    PayoutTrigger,
    Purpose,
    Schedule,
    credit,
    debit,
    entry,
)
from marketplane.money.payout_provider import PayoutOutcome

SUPPLIER = "sup_01contention"
PAYABLE = AccountKey(Purpose.SUPPLIER_PAYABLE, SUPPLIER, "EUR")
CASH = AccountKey(Purpose.CASH, PLATFORM, "EUR")
TRANSIT = AccountKey(Purpose.PAYOUTS_IN_TRANSIT, PLATFORM, "EUR")


async def owed(platform: Platform, amount: int, destination: str) -> None:
    """The supplier is owed `amount` (as a released sale would make it) and paid to
    `destination`."""
    async with platform.uow() as uow:
        await ledger.post(
            uow, entry("released:1", "test", [debit(CASH, amount), credit(PAYABLE, amount)])
        )
        await payouts.configure(
            uow, platform.payouts, supplier_id=SUPPLIER, destination=destination,
            schedule=Schedule.MANUAL, minimum=1,
        )  # fmt: skip
        await uow.commit()


async def everywhere(platform: Platform, job: object, times: int = 6) -> list[object]:
    """Runs `job(platform)` `times` at once, and twice on a second engine, as another process
    would."""
    other = build(platform.settings)
    try:
        return list(
            await asyncio.gather(
                *(job(platform) for _ in range(times)),  # type: ignore[operator]
                *(job(other) for _ in range(2)),  # type: ignore[operator]
                return_exceptions=True,
            )
        )
    finally:
        await other.close()


async def test_concurrent_payouts_for_one_supplier_pay_once(platform: Platform) -> None:
    # given
    await owed(platform, 5000, "acct_test_ok")

    async def pay_out(on: Platform) -> Payout:
        async with on.uow() as uow:
            payout = await payouts.open_payout(
                uow, supplier_id=SUPPLIER, currency="EUR", trigger=PayoutTrigger.SUPPLIER
            )
            await uow.commit()
        return await payouts.send(on.uow, on.payouts, payout)

    # when: eight payouts asked for at once, from two engines
    results = await everywhere(platform, pay_out)
    # then: one paid the whole balance; the others were refused, none half-done
    paid = [r for r in results if isinstance(r, Payout)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(paid) == 1 and len(refused) == len(results) - 1, results
    assert {r.code for r in refused} <= {"insufficient_balance", "below_minimum"}
    assert (paid[0].status, paid[0].amount) == (PayoutStatus.PAID, 5000)
    async with platform.uow(write=False) as uow:
        books = await ledger.balances(uow)
        listed = await payouts.list_payouts(uow, supplier_id=SUPPLIER, before=None, limit=100)
    assert books[PAYABLE] == 0 and books[TRANSIT] == 0 and books[CASH] == 0
    assert [p.id for p in listed] == [paid[0].id]


async def test_a_provider_answer_applied_everywhere_at_once_settles_once(
    platform: Platform,
) -> None:
    # given: a payout in transit
    await owed(platform, 3000, "acct_test_pending")
    async with platform.uow() as uow:
        payout = await payouts.open_payout(
            uow, supplier_id=SUPPLIER, currency="EUR", trigger=PayoutTrigger.OPERATOR
        )
        await uow.commit()
    sent = await payouts.send(platform.uow, platform.payouts, payout)
    assert sent.status is PayoutStatus.IN_TRANSIT

    async def fail(on: Platform) -> Payout | None:
        async with on.uow() as uow:
            settled = await payouts.settle(
                uow, payout.id, outcome=PayoutOutcome.FAILED, reference=None,
                failure_code="account_closed",
            )  # fmt: skip
            await uow.commit()
        return settled

    # when: its failure recorded eight times at once
    results = await everywhere(platform, fail)
    # then: once; the money is back in the payable once
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len([r for r in results if r is not None]) == 1
    async with platform.uow(write=False) as uow:
        books = await ledger.balances(uow)
    assert books[PAYABLE] == -3000 and books[TRANSIT] == 0
