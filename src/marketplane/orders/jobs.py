"""The order jobs: expire unpaid orders, reject orders past their acceptance deadline, send
owed refunds, release the suppliers' money once the hold after fulfilment has passed. Each is
safe to run in several processes at once: every order is moved by a conditional update (of two
processes one moves it, the other finds it moved and goes on), a refund is sent with its own id
as the provider's idempotency key and settled only from pending, and money is released once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import Conflict
from marketplane.money import service as money
from marketplane.orders import decisions, store
from marketplane.orders.model import OrderKind, OrderStatus, RefundStatus, SupplierOrderStatus
from marketplane.orders.payments import Outcome, PaymentProvider
from marketplane.orders.service import NewUnitOfWork
from marketplane.orders.transitions import SYSTEM

log = logging.getLogger("marketplane.orders")
BATCH = 100


async def expire_unpaid(new_uow: NewUnitOfWork) -> int:
    """Expires placed orders whose hold has passed; returns how many this call expired."""
    async with new_uow() as uow:
        due = await store.due(
            await uow.connection(), OrderKind.ORDER, status=OrderStatus.PLACED,
            column="expires_at", now=utcnow(), limit=BATCH,
        )  # fmt: skip
    done = 0
    for order_id in due:
        async with new_uow() as uow:
            try:
                await decisions.expire_order(uow, order_id=order_id)
            except Conflict:
                continue  # paid, cancelled or expired by another process meanwhile
            await uow.commit()
            done += 1
    return done


async def enforce_deadlines(new_uow: NewUnitOfWork) -> int:
    """Rejects supplier orders not accepted in time: stock back on sale, customer refunded."""
    async with new_uow() as uow:
        due = await store.due(
            await uow.connection(), OrderKind.SUPPLIER_ORDER,
            status=SupplierOrderStatus.AWAITING_ACCEPTANCE, column="accept_by",
            now=utcnow(), limit=BATCH,
        )  # fmt: skip
    done = 0
    for part_id in due:
        async with new_uow() as uow:
            try:
                await decisions.reject(
                    uow, supplier_id=None, supplier_order_id=part_id,
                    reason="not accepted before its deadline", actor=SYSTEM,
                )  # fmt: skip
            except Conflict:
                continue
            await uow.commit()
            done += 1
    return done


async def send_refunds(new_uow: NewUnitOfWork, provider: PaymentProvider) -> int:
    """Sends pending refunds to the provider and records its answers; returns how many were
    settled. A refund the provider refuses is marked failed, for an operator to act on."""
    async with new_uow() as uow:
        conn = await uow.connection()
        pending = await store.pending_refunds(conn, BATCH)
        references = {}
        for refund in pending:
            payment = await store.payment_by_id(conn, refund.payment_id)
            assert payment is not None
            references[refund.id] = payment.reference
    settled = 0
    for refund in pending:
        reference = references[refund.id]
        if reference is None:
            continue  # a refund is owed only from a captured payment, which has a reference
        answer = await provider.refund(
            refund_id=refund.id, reference=reference, amount=refund.amount, currency=refund.currency
        )
        status = (
            RefundStatus.SUCCEEDED if answer.outcome is Outcome.SUCCEEDED else RefundStatus.FAILED
        )
        async with new_uow() as uow:
            conn = await uow.connection()
            await store.order_by_id(conn, refund.order_id, lock=True)  # the order's lock first
            earned_before = (
                await store.earned_refunded(conn, refund.supplier_order_id)
                if refund.earned and refund.supplier_order_id
                else 0
            )
            if not await store.settle_refund(
                conn, refund.id, status=status,
                reference=answer.reference, failure_code=answer.failure_code, at=utcnow(),
            ):  # fmt: skip
                continue  # another process settled it
            if status is RefundStatus.SUCCEEDED:
                await money.record_refund(
                    uow, refund_id=refund.id, supplier_order_id=refund.supplier_order_id,
                    amount=refund.amount, currency=refund.currency, earned=refund.earned,
                    earned_before=earned_before,
                )  # fmt: skip
            await uow.commit()
            settled += 1
    return settled


async def release_funds(new_uow: NewUnitOfWork, *, hold_seconds: float) -> int:
    """Moves the supplier's share of each sale fulfilled at least `hold_seconds` ago from
    pending to payable (available to pay out), less what refunds took back of it; a sale with
    a refund still owed waits until it is sent."""
    now = utcnow()
    async with new_uow() as uow:
        due = await store.releasable(
            await uow.connection(), fulfilled_before=now - timedelta(seconds=hold_seconds),
            limit=BATCH,
        )  # fmt: skip
    done = 0
    for part in due:
        async with new_uow() as uow:
            conn = await uow.connection()
            await store.order_by_id(conn, part.order_id, lock=True)  # as refunds do: no race
            if await store.refunds_owed(conn, part.id):
                continue  # released once the customer has its money back, at a later pass
            if not await store.mark_released(conn, part.id, utcnow()):
                continue  # another process released it
            await money.record_release(
                uow, supplier_order_id=part.id, currency=part.currency,
                earned_refunded=await store.earned_refunded(conn, part.id),
            )  # fmt: skip
            await uow.commit()
            done += 1
    return done


async def sweep(new_uow: NewUnitOfWork, provider: PaymentProvider, *, hold_seconds: float) -> int:
    """One pass of every job."""
    return (
        await expire_unpaid(new_uow)
        + await enforce_deadlines(new_uow)
        + await send_refunds(new_uow, provider)
        + await release_funds(new_uow, hold_seconds=hold_seconds)
    )


async def work(
    new_uow: NewUnitOfWork,
    provider: PaymentProvider,
    *,
    stop: asyncio.Event,
    every: float,
    hold_seconds: float,
) -> None:
    """Sweeps until `stop` is set."""
    while not stop.is_set():
        try:
            await sweep(new_uow, provider, hold_seconds=hold_seconds)
        except Exception:  # the database may be briefly away: say so, try again next pass
            log.exception("an order sweep failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
