"""Posting to the ledger: one balanced transaction per business key, in the caller's unit of
work (so it commits with the change it records, or not at all)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplane.db.uow import UnitOfWork
from marketplane.kernel.clock import utcnow
from marketplane.kernel.errors import Conflict
from marketplane.kernel.ids import new_id
from marketplane.money import store
from marketplane.money.model import AccountKey, Entry, KeyReused, Purpose

RUNNING_BALANCE = frozenset({Purpose.SUPPLIER_PAYABLE})


def fingerprint(entry: Entry) -> str:
    text = ";".join(
        f"{p.account.purpose}/{p.account.owner}/{p.account.currency}={p.amount}"
        for p in entry.postings
    )
    return hashlib.sha256(f"{entry.kind}|{text}".encode()).hexdigest()


async def post(
    uow: UnitOfWork, entry: Entry, *, floors: Mapping[AccountKey, int] | None = None
) -> str:
    """Posts `entry` once; returns its transaction id. The same key again with the same
    postings returns the first id (a retried change); with other postings it is refused
    (`ledger_key_reused`). `floors`: accounts whose raw balance may not pass a bound (a
    supplier's payable never below zero) — refused as `insufficient_balance` if it would."""
    conn = await uow.connection()
    print_ = fingerprint(entry)
    now = utcnow()
    transaction_id = new_id("ltx")
    # Claimed first, in one statement: a new key (the usual case) costs no lookup.
    transaction_pk = await store.insert_transaction(
        conn, transaction_id=transaction_id, entry=entry, fingerprint=print_, at=now
    )
    if transaction_pk is None:
        existing = await store.transaction_by_key(conn, entry.key)
        if existing.fingerprint != print_:
            raise KeyReused(
                f"the ledger key {entry.key!r} was posted with other amounts",
                extra={"transaction": existing.id},
            )
        return str(existing.id)
    pks = await store.account_pks(conn, [p.account for p in entry.postings], now)
    # Account rows in key order: two transactions touching the same accounts lock them alike.
    # Only accounts with a floor to keep keep a running balance: the platform's own accounts,
    # touched by every sale, would otherwise serialize every sale on one row.
    for posting in sorted(entry.postings, key=lambda p: pks[p.account]):
        if posting.account.purpose not in RUNNING_BALANCE:
            continue
        floor = (floors or {}).get(posting.account)
        if not await store.move_balance(conn, pks[posting.account], posting.amount, floor=floor):
            raise Conflict(
                f"the {posting.account.purpose} account of {posting.account.owner} does not hold "
                f"{abs(posting.amount)} {posting.account.currency}",
                code="insufficient_balance",
            )
    await store.insert_postings(
        conn, [(transaction_pk, pks[p.account], p.amount, now) for p in entry.postings]
    )
    return transaction_id


async def balances(
    uow: UnitOfWork, *, owner: str | None = None, at: datetime | None = None
) -> dict[AccountKey, int]:
    """Raw balances (debit positive) by account, now or as they stood at `at`."""
    rows = await store.balances(await uow.connection(), owner=owner, at=at)
    return {AccountKey(Purpose(r.purpose), r.owner, r.currency): int(r.balance) for r in rows}


@dataclass(frozen=True, slots=True)
class PostedTransaction:
    pk: int
    id: str
    key: str
    kind: str
    memo: Mapping[str, str]
    posted_at: datetime
    postings: list[Any]


async def transactions(
    uow: UnitOfWork, *, owner: str | None, before: int | None, limit: int
) -> list[PostedTransaction]:
    conn = await uow.connection()
    rows = await store.transactions(conn, owner=owner, before=before, limit=limit)
    postings = await store.postings_of(conn, [r.pk for r in rows])
    return [
        PostedTransaction(
            r.pk,
            r.id,
            r.key,
            r.kind,
            r.memo,
            r.posted_at,
            [p for p in postings if p.transaction_pk == r.pk],
        )
        for r in rows
    ]
