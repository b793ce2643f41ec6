"""Payout tables and their SQL. A payout's status moves by a conditional update (`WHERE status
IN …`), so of two processes settling one payout exactly one does."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplane.db import upsert
from marketplane.db.metadata import metadata
from marketplane.db.types import UtcDateTime
from marketplane.money.model import (
    PAYOUT_OPEN,
    Payout,
    PayoutSettings,
    PayoutStatus,
    PayoutTrigger,
    Schedule,
)

Id = sa.String(40)

payout_settings = sa.Table(
    "payout_settings",
    metadata,
    sa.Column("supplier_id", Id, primary_key=True),
    sa.Column("destination", sa.String(200), nullable=False),
    sa.Column("schedule", sa.String(10), nullable=False),
    sa.Column("minimum", sa.BigInteger, nullable=False),
    sa.Column("next_run_at", UtcDateTime, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
payouts = sa.Table(
    "payouts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("netted", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("trigger", sa.String(20), nullable=False),
    sa.Column("destination", sa.String(200), nullable=False),
    sa.Column("reference", sa.String(200), nullable=True),
    sa.Column("failure_code", sa.String(60), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
payout_callbacks = sa.Table(
    "payout_callbacks",
    metadata,
    sa.Column("provider", sa.String(40), primary_key=True),
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
)


def _settings(row: Any) -> PayoutSettings:
    return PayoutSettings(
        supplier_id=row.supplier_id,
        destination=row.destination,
        schedule=Schedule(row.schedule),
        minimum=row.minimum,
        next_run_at=row.next_run_at,
    )


def _payout(row: Any) -> Payout:
    """`payouts` has a column for each of Payout's fields, by the same names."""
    return Payout(
        **{
            **row._mapping,
            "status": PayoutStatus(row.status),
            "trigger": PayoutTrigger(row.trigger),
        }
    )


async def save_settings(conn: AsyncConnection, found: PayoutSettings, at: datetime) -> None:
    values = {
        "supplier_id": found.supplier_id, "destination": found.destination,
        "schedule": str(found.schedule), "minimum": found.minimum,
        "next_run_at": found.next_run_at, "updated_at": at,
    }  # fmt: skip
    statement = upsert.insert(conn, payout_settings).values(values)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["supplier_id"],
            set_={k: statement.excluded[k] for k in values if k != "supplier_id"},
        )
    )


async def settings_of(conn: AsyncConnection, supplier_id: str) -> PayoutSettings | None:
    row = (
        await conn.execute(
            payout_settings.select().where(payout_settings.c.supplier_id == supplier_id)
        )
    ).first()
    return _settings(row) if row else None


async def due_settings(conn: AsyncConnection, now: datetime, limit: int) -> list[PayoutSettings]:
    rows = await conn.execute(
        payout_settings.select()
        .where(payout_settings.c.next_run_at <= now)
        .order_by(payout_settings.c.next_run_at)
        .limit(limit)
    )
    return [_settings(r) for r in rows]


async def advance_run(
    conn: AsyncConnection, supplier_id: str, *, seen: datetime, to: datetime | None
) -> bool:
    """Moves a schedule's next run on, only from the run this process saw (one process runs
    each scheduled payout)."""
    result = await conn.execute(
        payout_settings.update()
        .where(payout_settings.c.supplier_id == supplier_id, payout_settings.c.next_run_at == seen)
        .values(next_run_at=to)
    )
    return bool(result.rowcount)


async def insert_payout(conn: AsyncConnection, payout: Payout) -> None:
    values = {**asdict(payout), "status": str(payout.status), "trigger": str(payout.trigger)}
    await conn.execute(payouts.insert().values(values))


async def move_payout(
    conn: AsyncConnection,
    payout_id: str,
    *,
    current: Collection[PayoutStatus],
    target: PayoutStatus,
    at: datetime,
    reference: str | None = None,
    failure_code: str | None = None,
) -> bool:
    values: dict[str, Any] = {"status": str(target), "updated_at": at}
    if reference is not None:
        values["reference"] = reference
    if failure_code is not None:
        values["failure_code"] = failure_code
    result = await conn.execute(
        payouts.update()
        .where(payouts.c.id == payout_id, payouts.c.status.in_([str(s) for s in current]))
        .values(**values)
    )
    return bool(result.rowcount)


async def payout_by_id(conn: AsyncConnection, payout_id: str) -> Payout | None:
    row = (await conn.execute(payouts.select().where(payouts.c.id == payout_id))).first()
    return _payout(row) if row else None


async def list_payouts(
    conn: AsyncConnection, *, supplier_id: str | None, before: str | None, limit: int | None
) -> list[Payout]:
    query = payouts.select().order_by(payouts.c.id.desc()).limit(limit)
    if supplier_id is not None:
        query = query.where(payouts.c.supplier_id == supplier_id)
    if before is not None:
        query = query.where(payouts.c.id < before)
    return [_payout(r) for r in await conn.execute(query)]


async def in_transit(conn: AsyncConnection, supplier_id: str) -> dict[str, int]:
    """Per currency, what the supplier's payouts not yet settled hold."""
    rows = await conn.execute(
        sa.select(payouts.c.currency, sa.func.sum(payouts.c.amount).label("amount"))
        .where(
            payouts.c.supplier_id == supplier_id,
            payouts.c.status.in_([str(s) for s in PAYOUT_OPEN]),
        )
        .group_by(payouts.c.currency)
    )
    return {r.currency: int(r.amount) for r in rows}


async def unsent(conn: AsyncConnection, *, older_than: datetime, limit: int) -> list[Payout]:
    """Payouts recorded but never answered by the provider (a process stopped in between)."""
    rows = await conn.execute(
        payouts.select()
        .where(payouts.c.status == str(PayoutStatus.PENDING), payouts.c.created_at <= older_than)
        .order_by(payouts.c.created_at)
        .limit(limit)
    )
    return [_payout(r) for r in rows]


async def note_callback(conn: AsyncConnection, provider: str, event_id: str, at: datetime) -> bool:
    """True the first time a provider's callback is seen."""
    result = await conn.execute(
        upsert.insert(conn, payout_callbacks)
        .values(provider=provider, event_id=event_id, received_at=at)
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount)
