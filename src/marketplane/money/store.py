"""Ledger tables and their SQL. Postings are only ever inserted: the database refuses an UPDATE
or DELETE of one (a trigger, on both databases). Each account keeps its running balance, moved
in the same statement that checks a floor, so two payouts racing for one payable cannot both
pass."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplane.db import bulk, upsert
from marketplane.db.metadata import metadata
from marketplane.db.types import BigPk, Json, UtcDateTime
from marketplane.money.model import AccountKey, CommissionRule, Entry, Purpose

Id = sa.String(40)

ledger_accounts = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
    sa.Column("purpose", sa.String(30), nullable=False),
    sa.Column("owner", Id, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("type", sa.String(10), nullable=False),
    sa.Column("balance", sa.BigInteger, nullable=False),  # debit positive, as postings
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("purpose", "owner", "currency", name="uq_ledger_accounts_key"),
)
ledger_transactions = sa.Table(
    "ledger_transactions",
    metadata,
    sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("memo", Json, nullable=False),
    sa.Column("posted_at", UtcDateTime, nullable=False),
)
ledger_postings = sa.Table(
    "ledger_postings",
    metadata,
    sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
    sa.Column("transaction_pk", sa.BigInteger, nullable=False),
    sa.Column("account_pk", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("posted_at", UtcDateTime, nullable=False),
)


commission_rules = sa.Table(
    "commission_rules",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("supplier_id", Id, nullable=True),
    sa.Column("category_id", Id, nullable=True),
    sa.Column("rate_bps", sa.Integer, nullable=False),
    sa.Column("fixed", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("effective_from", UtcDateTime, nullable=False),
    sa.Column("effective_to", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
revenue_shares = sa.Table(
    "revenue_shares",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("client_id", Id, nullable=False),
    sa.Column("share_bps", sa.Integer, nullable=False),
    sa.Column("effective_from", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)


def _rule(row: Any) -> CommissionRule:
    return CommissionRule(
        id=row.id,
        supplier_id=row.supplier_id,
        category_id=row.category_id,
        rate_bps=row.rate_bps,
        fixed=row.fixed,
        currency=row.currency,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
    )


async def insert_rule(conn: AsyncConnection, rule: CommissionRule, at: datetime) -> None:
    await conn.execute(
        commission_rules.insert().values(
            id=rule.id,
            supplier_id=rule.supplier_id,
            category_id=rule.category_id,
            rate_bps=rule.rate_bps,
            fixed=rule.fixed,
            currency=rule.currency,
            effective_from=rule.effective_from,
            effective_to=rule.effective_to,
            created_at=at,
        )
    )


async def rules_for(conn: AsyncConnection, supplier_id: str | None) -> list[CommissionRule]:
    """The rules that could apply to a supplier (its own and everyone's); all when None."""
    query = commission_rules.select().order_by(commission_rules.c.effective_from)
    if supplier_id is not None:
        query = query.where(
            sa.or_(
                commission_rules.c.supplier_id.is_(None),
                commission_rules.c.supplier_id == supplier_id,
            )
        )
    return [_rule(r) for r in await conn.execute(query)]


async def insert_share(
    conn: AsyncConnection, *, share_id: str, client_id: str, share_bps: int, start: datetime,
    at: datetime,
) -> None:  # fmt: skip
    await conn.execute(
        revenue_shares.insert().values(
            id=share_id,
            client_id=client_id,
            share_bps=share_bps,
            effective_from=start,
            created_at=at,
        )
    )


async def shares_of(conn: AsyncConnection, client_id: str | None) -> list[Any]:
    query = revenue_shares.select().order_by(revenue_shares.c.effective_from, revenue_shares.c.id)
    if client_id is not None:
        query = query.where(revenue_shares.c.client_id == client_id)
    return list(await conn.execute(query))


async def account_pks(
    conn: AsyncConnection, keys: Sequence[AccountKey], at: datetime
) -> dict[AccountKey, int]:
    """The accounts' keys, opening those that do not exist yet. Accounts are found first and
    opened only when missing: after its first days a ledger opens few accounts, and a found
    one costs one cached statement where opening costs an insert compiled afresh."""
    wanted = sorted(set(keys))
    found = await _account_pks(conn, wanted)
    missing = [k for k in wanted if k not in found]
    if missing:
        await conn.execute(
            upsert.insert(conn, ledger_accounts)
            .values(
                [
                    {
                        "purpose": str(k.purpose), "owner": k.owner, "currency": k.currency,
                        "type": str(k.type), "balance": 0, "created_at": at,
                    }
                    for k in missing
                ]
            )
            .on_conflict_do_nothing()
        )  # fmt: skip
        found.update(await _account_pks(conn, missing))
    return found


async def _account_pks(conn: AsyncConnection, keys: Sequence[AccountKey]) -> dict[AccountKey, int]:
    rows = await conn.execute(
        sa.select(
            ledger_accounts.c.pk,
            ledger_accounts.c.purpose,
            ledger_accounts.c.owner,
            ledger_accounts.c.currency,
        ).where(
            sa.tuple_(
                ledger_accounts.c.purpose, ledger_accounts.c.owner, ledger_accounts.c.currency
            ).in_([(str(k.purpose), k.owner, k.currency) for k in keys])
        )
    )
    return {AccountKey(Purpose(r.purpose), r.owner, r.currency): r.pk for r in rows}


async def transaction_by_key(conn: AsyncConnection, key: str) -> Any:
    return (
        await conn.execute(ledger_transactions.select().where(ledger_transactions.c.key == key))
    ).first()


async def insert_transaction(
    conn: AsyncConnection, *, transaction_id: str, entry: Entry, fingerprint: str, at: datetime
) -> int | None:
    """The new transaction's key; None when its business key was posted before."""
    result = await conn.execute(
        upsert.insert(conn, ledger_transactions)
        .values(
            id=transaction_id,
            key=entry.key,
            kind=entry.kind,
            fingerprint=fingerprint,
            memo=dict(entry.memo),
            posted_at=at,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(ledger_transactions.c.pk)
    )
    found = result.scalar()
    return None if found is None else int(found)


async def insert_postings(
    conn: AsyncConnection, rows: list[tuple[int, int, int, datetime]]
) -> None:
    await bulk.insert_values(
        conn, ledger_postings, ("transaction_pk", "account_pk", "amount", "posted_at"), rows
    )


async def move_balance(
    conn: AsyncConnection, account_pk: int, amount: int, *, floor: int | None = None
) -> bool:
    """Adds `amount` to an account's running balance; with `floor`, only if the balance stays
    at or below it (a credit-normal account's "not below zero" is raw balance ≤ 0)."""
    query = ledger_accounts.update().where(ledger_accounts.c.pk == account_pk)
    if floor is not None:
        query = query.where(ledger_accounts.c.balance + amount <= floor)
    result = await conn.execute(query.values(balance=ledger_accounts.c.balance + amount))
    return bool(result.rowcount)


async def balances(
    conn: AsyncConnection,
    *,
    owner: str | None = None,
    purposes: Sequence[Purpose] | None = None,
    at: datetime | None = None,
) -> list[Any]:
    """Each account's balance (debit positive) as the sum of its postings, up to `at`
    inclusive when given: any past balance is the postings up to then."""
    total = sa.func.coalesce(sa.func.sum(ledger_postings.c.amount), 0).label("balance")
    joined = ledger_accounts.outerjoin(
        ledger_postings,
        sa.and_(
            ledger_postings.c.account_pk == ledger_accounts.c.pk,
            sa.true() if at is None else ledger_postings.c.posted_at <= at,
        ),
    )
    query = (
        sa.select(
            ledger_accounts.c.pk,
            ledger_accounts.c.purpose,
            ledger_accounts.c.owner,
            ledger_accounts.c.currency,
            total,
        )
        .select_from(joined)
        .group_by(
            ledger_accounts.c.pk,
            ledger_accounts.c.purpose,
            ledger_accounts.c.owner,
            ledger_accounts.c.currency,
        )
        .order_by(ledger_accounts.c.pk)
    )
    if owner is not None:
        query = query.where(ledger_accounts.c.owner == owner)
    if purposes is not None:
        query = query.where(ledger_accounts.c.purpose.in_([str(p) for p in purposes]))
    return list(await conn.execute(query))


async def running_balance(conn: AsyncConnection, key: AccountKey, *, lock: bool = False) -> int:
    """An account's running balance; `lock`: held until commit (PostgreSQL), so what is read
    stays true while the caller posts against it."""
    query = sa.select(ledger_accounts.c.balance).where(
        ledger_accounts.c.purpose == str(key.purpose),
        ledger_accounts.c.owner == key.owner,
        ledger_accounts.c.currency == key.currency,
    )
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return int(row.balance) if row else 0


async def transactions(
    conn: AsyncConnection, *, owner: str | None, before: int | None, limit: int
) -> list[Any]:
    """Transactions newest first (those touching `owner`'s accounts, when given)."""
    query = sa.select(ledger_transactions).order_by(ledger_transactions.c.pk.desc()).limit(limit)
    if owner is not None:
        touching = (
            sa.select(ledger_postings.c.transaction_pk)
            .join(ledger_accounts, ledger_accounts.c.pk == ledger_postings.c.account_pk)
            .where(ledger_accounts.c.owner == owner)
        )
        query = query.where(ledger_transactions.c.pk.in_(touching))
    if before is not None:
        query = query.where(ledger_transactions.c.pk < before)
    return list(await conn.execute(query))


async def postings_of(conn: AsyncConnection, transaction_pks: Sequence[int]) -> list[Any]:
    if not transaction_pks:
        return []
    rows = await conn.execute(
        sa.select(
            ledger_postings.c.transaction_pk,
            ledger_postings.c.amount,
            ledger_accounts.c.purpose,
            ledger_accounts.c.owner,
            ledger_accounts.c.currency,
        )
        .join(ledger_accounts, ledger_accounts.c.pk == ledger_postings.c.account_pk)
        .where(ledger_postings.c.transaction_pk.in_(list(transaction_pks)))
        .order_by(ledger_postings.c.pk)
    )
    return list(rows)


async def statement_rows(
    conn: AsyncConnection,
    *,
    owner: str,
    currency: str,
    purposes: Sequence[Purpose],
    since: datetime | None,
    until: datetime | None,
) -> list[Any]:
    """The postings on an owner's accounts (of these purposes, in one currency) posted in
    [since, until], oldest first, with their transactions."""
    query = (
        sa.select(
            ledger_postings.c.pk,
            ledger_postings.c.amount,
            ledger_postings.c.posted_at,
            ledger_accounts.c.purpose,
            ledger_transactions.c.id.label("transaction_id"),
            ledger_transactions.c.key,
            ledger_transactions.c.kind,
            ledger_transactions.c.memo,
        )
        .select_from(
            ledger_postings.join(
                ledger_accounts, ledger_accounts.c.pk == ledger_postings.c.account_pk
            ).join(
                ledger_transactions, ledger_transactions.c.pk == ledger_postings.c.transaction_pk
            )
        )
        .where(
            ledger_accounts.c.owner == owner,
            ledger_accounts.c.currency == currency,
            ledger_accounts.c.purpose.in_([str(p) for p in purposes]),
        )
        .order_by(ledger_postings.c.pk)
    )
    if since is not None:
        query = query.where(ledger_postings.c.posted_at >= since)
    if until is not None:
        query = query.where(ledger_postings.c.posted_at <= until)
    return list(await conn.execute(query))
