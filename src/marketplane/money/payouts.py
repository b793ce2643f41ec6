"""Payouts: a supplier's available balance (its payable) sent to its destination, on demand
or on its schedule.

Opening a payout takes the whole payable in one posting checked against its floor, so of two
payouts racing for one supplier's money one is refused (`insufficient_balance`): nothing is
ever paid twice. What the supplier owes the platform (its receivable: fees, advertising,
refunds after an earlier payout) is settled from it first; the rest goes in transit. The
provider is asked after commit, with the payout's id as its idempotency key; paid, the money
leaves cash; failed, it returns to the payable, to go out with the next payout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from marketplane.db.uow import UnitOfWork
from marketplane.events import service as events
from marketplane.events.model import EventType, NewEvent
from marketplane.kernel.clock import rfc3339, utcnow
from marketplane.kernel.errors import Conflict, NotFound
from marketplane.kernel.ids import new_id
from marketplane.money import ledger, payout_store, store
from marketplane.money.model import (
    PAYOUT_OPEN,
    PLATFORM,
    AccountKey,
    Payout,
    PayoutSettings,
    PayoutStatus,
    PayoutTrigger,
    Purpose,
    Schedule,
    credit,
    debit,
    entry,
    next_payout_run,
    payout_amount,
)
from marketplane.money.payout_provider import PayoutAnswer, PayoutOutcome, PayoutProvider

NewUnitOfWork = Callable[[], UnitOfWork]
BATCH = 100
RESEND_AFTER = timedelta(minutes=1)  # a payout not answered by then was left by a stopped process


def present(payout: Payout) -> dict[str, Any]:
    return {
        "id": payout.id,
        "supplier": payout.supplier_id,
        "status": str(payout.status),
        "amount": {"amount": payout.amount, "currency": payout.currency},
        "netted": {"amount": payout.netted, "currency": payout.currency},
        "trigger": str(payout.trigger),
        "destination": payout.destination,
        "reference": payout.reference,
        "failure_code": payout.failure_code,
        "created_at": rfc3339(payout.created_at),
        "updated_at": rfc3339(payout.updated_at),
    }


async def _emit(uow: UnitOfWork, payout: Payout) -> None:
    await events.emit(
        uow,
        NewEvent(
            type=EventType(f"payout.{payout.status}"),
            object_id=payout.id,
            version=1 + [*PayoutStatus].index(payout.status),
            payload=present(payout),
            supplier_id=payout.supplier_id,
        ),
    )


# --- settings --------------------------------------------------------------------------------


async def configure(
    uow: UnitOfWork,
    provider: PayoutProvider,
    *,
    supplier_id: str,
    destination: str,
    schedule: Schedule,
    minimum: int,
) -> PayoutSettings:
    """Where and how often a supplier is paid, and the smallest payout it wants."""
    provider.check_destination(destination)
    now = utcnow()
    next_run = next_payout_run(schedule, now)
    found = PayoutSettings(supplier_id, destination, schedule, minimum, next_run)
    await payout_store.save_settings(await uow.connection(), found, now)
    return found


async def settings_of(uow: UnitOfWork, supplier_id: str) -> PayoutSettings | None:
    return await payout_store.settings_of(await uow.connection(), supplier_id)


# --- balances ---------------------------------------------------------------------------------


async def position(uow: UnitOfWork, supplier_id: str) -> dict[str, dict[str, int]]:
    """Per currency, what the supplier's accounts hold: `pending` (held until released),
    `available` (payable), `owed` (its receivable), `in_transit` (in payouts not settled)."""
    conn = await uow.connection()
    names = {
        Purpose.SUPPLIER_PENDING: "pending",
        Purpose.SUPPLIER_PAYABLE: "available",
        Purpose.SUPPLIER_RECEIVABLE: "owed",
    }
    empty = dict.fromkeys(("pending", "available", "owed", "in_transit"), 0)
    found: dict[str, dict[str, int]] = {}
    for row in await store.balances(conn, owner=supplier_id, purposes=list(names)):
        sign = 1 if row.purpose == Purpose.SUPPLIER_RECEIVABLE else -1
        found.setdefault(row.currency, dict(empty))[names[Purpose(row.purpose)]] = sign * int(
            row.balance
        )
    for currency, amount in (await payout_store.in_transit(conn, supplier_id)).items():
        found.setdefault(currency, dict(empty))["in_transit"] = amount
    return found


# --- opening, sending, settling --------------------------------------------------------------


async def open_payout(
    uow: UnitOfWork, *, supplier_id: str, currency: str, trigger: PayoutTrigger
) -> Payout:
    """Takes the supplier's available balance into a new payout (refused below its minimum)."""
    conn = await uow.connection()
    found = await payout_store.settings_of(conn, supplier_id)
    if found is None:
        raise Conflict(
            "this supplier has no payout destination yet: set its payout settings first",
            code="payout_settings_missing",
        )
    payable = AccountKey(Purpose.SUPPLIER_PAYABLE, supplier_id, currency)
    receivable = AccountKey(Purpose.SUPPLIER_RECEIVABLE, supplier_id, currency)
    # The payable locked first: what it owes is read and netted by one payout at a time.
    available = -(await store.running_balance(conn, payable, lock=True))
    owed = sum(
        int(r.balance)
        for r in await store.balances(conn, owner=supplier_id, purposes=[receivable.purpose])
        if r.currency == currency
    )
    amount, netted = payout_amount(available, owed)
    if amount < found.minimum:
        raise Conflict(
            f"{amount} {currency} is available to pay out, less than the minimum of "
            f"{found.minimum}",
            code="below_minimum",
            extra={"available": available, "owed": owed, "minimum": found.minimum},
        )
    now = utcnow()
    payout = Payout(
        id=new_id("po"), supplier_id=supplier_id, currency=currency, amount=amount,
        netted=netted, status=PayoutStatus.PENDING, trigger=trigger,
        destination=found.destination, reference=None, failure_code=None,
        created_at=now, updated_at=now,
    )  # fmt: skip
    await payout_store.insert_payout(conn, payout)
    in_transit = AccountKey(Purpose.PAYOUTS_IN_TRANSIT, PLATFORM, currency)
    await ledger.post(
        uow,
        entry(
            f"payout:{payout.id}:opened",
            "payout_opened",
            [debit(payable, available), credit(receivable, netted), credit(in_transit, amount)],
            payout=payout.id,
            supplier=supplier_id,
        ),
        floors={payable: 0},  # of two payouts racing for this money, the second is refused
    )
    await _emit(uow, payout)
    return payout


async def settle(
    uow: UnitOfWork,
    payout_id: str,
    *,
    outcome: PayoutOutcome,
    reference: str | None,
    failure_code: str | None,
) -> Payout | None:
    """Records the provider's answer once; None when it changes nothing (already settled)."""
    conn = await uow.connection()
    payout = await payout_store.payout_by_id(conn, payout_id)
    if payout is None:
        raise NotFound(f"no payout {payout_id}")
    now = utcnow()
    target = {
        PayoutOutcome.PAID: PayoutStatus.PAID,
        PayoutOutcome.FAILED: PayoutStatus.FAILED,
        PayoutOutcome.PENDING: PayoutStatus.IN_TRANSIT,
    }[outcome]
    current = {PayoutStatus.PENDING} if target is PayoutStatus.IN_TRANSIT else PAYOUT_OPEN
    if not await payout_store.move_payout(
        conn, payout_id, current=current, target=target, at=now,
        reference=reference, failure_code=failure_code,
    ):  # fmt: skip
        return None
    in_transit = AccountKey(Purpose.PAYOUTS_IN_TRANSIT, PLATFORM, payout.currency)
    if target is PayoutStatus.PAID:
        cash = AccountKey(Purpose.CASH, PLATFORM, payout.currency)
        postings = [debit(in_transit, payout.amount), credit(cash, payout.amount)]
    elif target is PayoutStatus.FAILED:
        payable = AccountKey(Purpose.SUPPLIER_PAYABLE, payout.supplier_id, payout.currency)
        postings = [debit(in_transit, payout.amount), credit(payable, payout.amount)]
    else:
        postings = []
    if postings:
        await ledger.post(
            uow,
            entry(f"payout:{payout.id}:{target}", f"payout_{target}", postings,
                  payout=payout.id, supplier=payout.supplier_id),
        )  # fmt: skip
    settled = replace(
        payout, status=target, updated_at=now,
        reference=reference or payout.reference, failure_code=failure_code,
    )  # fmt: skip
    await _emit(uow, settled)
    return settled


async def send(new_uow: NewUnitOfWork, provider: PayoutProvider, payout: Payout) -> Payout:
    """Asks the provider to pay (outside any transaction) and records its answer."""
    answer: PayoutAnswer = await provider.pay(
        payout_id=payout.id, destination=payout.destination, amount=payout.amount,
        currency=payout.currency,
    )  # fmt: skip
    async with new_uow() as uow:
        settled = await settle(
            uow, payout.id, outcome=answer.outcome, reference=answer.reference,
            failure_code=answer.failure_code,
        )  # fmt: skip
        await uow.commit()
    if settled is not None:
        return settled
    async with new_uow() as uow:
        current = await payout_store.payout_by_id(await uow.connection(), payout.id)
    assert current is not None
    return current


async def handle_callback(
    uow: UnitOfWork, provider: PayoutProvider, *, headers: Mapping[str, str], body: bytes
) -> bool:
    """Applies a provider's callback once; False for a repeat."""
    found = provider.callback(headers=dict(headers), body=body)
    if not await payout_store.note_callback(
        await uow.connection(), provider.name, found.event_id, utcnow()
    ):
        return False
    await settle(
        uow, found.payout_id, outcome=found.outcome, reference=None,
        failure_code=found.failure_code,
    )  # fmt: skip
    return True


async def payout_of(uow: UnitOfWork, payout_id: str, *, supplier_id: str | None) -> Payout:
    payout = await payout_store.payout_by_id(await uow.connection(), payout_id)
    if payout is None or (supplier_id is not None and payout.supplier_id != supplier_id):
        raise NotFound(f"no payout {payout_id}")
    return payout


async def list_payouts(
    uow: UnitOfWork, *, supplier_id: str | None, before: str | None, limit: int
) -> list[Payout]:
    return await payout_store.list_payouts(
        await uow.connection(), supplier_id=supplier_id, before=before, limit=limit
    )


# --- jobs -------------------------------------------------------------------------------------


async def run_schedules(new_uow: NewUnitOfWork, provider: PayoutProvider) -> int:
    """Opens and sends the payouts whose schedule is due, one per currency with enough to pay;
    returns how many were opened. Each schedule runs in one process: the first to move its
    next run on."""
    now = utcnow()
    async with new_uow() as uow:
        due = await payout_store.due_settings(await uow.connection(), now, BATCH)
    opened: list[Payout] = []
    for found in due:
        assert found.next_run_at is not None
        async with new_uow() as uow:
            conn = await uow.connection()
            ahead = next_payout_run(found.schedule, max(found.next_run_at, now))
            if not await payout_store.advance_run(
                conn, found.supplier_id, seen=found.next_run_at, to=ahead
            ):
                continue
            await uow.commit()
        async with new_uow() as uow:
            payables = await store.balances(
                await uow.connection(), owner=found.supplier_id,
                purposes=[Purpose.SUPPLIER_PAYABLE],
            )  # fmt: skip
        for row in payables:
            async with new_uow() as uow:
                try:
                    payout = await open_payout(
                        uow, supplier_id=found.supplier_id, currency=row.currency,
                        trigger=PayoutTrigger.SCHEDULE,
                    )  # fmt: skip
                except Conflict:
                    continue  # below the minimum, or taken by a payout on demand meanwhile
                await uow.commit()
            opened.append(payout)
    for payout in opened:
        await send(new_uow, provider, payout)
    return len(opened)


async def resend(new_uow: NewUnitOfWork, provider: PayoutProvider) -> int:
    """Sends payouts a stopped process opened but never sent (the provider pays each id once)."""
    async with new_uow() as uow:
        left = await payout_store.unsent(
            await uow.connection(), older_than=utcnow() - RESEND_AFTER, limit=BATCH
        )
    for payout in left:
        await send(new_uow, provider, payout)
    return len(left)
