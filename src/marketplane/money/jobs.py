"""The money jobs: bill subscriptions, run scheduled payouts, send payouts a stopped process
left unsent. Each is safe in several processes at once (conditional updates and ledger keys)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from marketplane.money import billing, payouts
from marketplane.money.payout_provider import PayoutProvider
from marketplane.money.payouts import NewUnitOfWork

log = logging.getLogger("marketplane.money")


async def sweep(new_uow: NewUnitOfWork, provider: PayoutProvider) -> int:
    """One pass of every job; returns how much it did."""
    return (
        await billing.bill_due(new_uow)
        + await payouts.run_schedules(new_uow, provider)
        + await payouts.resend(new_uow, provider)
    )


async def work(
    new_uow: NewUnitOfWork, provider: PayoutProvider, *, stop: asyncio.Event, every: float
) -> None:
    """Sweeps until `stop` is set."""
    while not stop.is_set():
        try:
            await sweep(new_uow, provider)
        except Exception:  # the database may be briefly away: say so, try again next pass
            log.exception("a money sweep failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
