"""Supplier statements: every posting on a supplier's accounts in a period, in its own terms,
each naming the ledger transaction it comes from, so the statement reconciles to the ledger
line by line: opening balance + the lines = closing balance = the ledger's balances then. (A
posting is stamped when its change is made and seen when it commits: a statement ending less
than a moment ago may still gain a line.)

A supplier has three accounts per currency: `pending` (its share of sales, held until the hold
after fulfilment passes), `available` (payable: what a payout takes) and `owed` (what it owes
the platform: fees, advertising, refunds after a payout). Amounts are in the supplier's favour:
a sale is positive, a fee or a payout negative; `balance` is the running net (pending +
available − owed) after each line.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

from marketplane.db.uow import UnitOfWork
from marketplane.kernel.clock import rfc3339
from marketplane.money import store
from marketplane.money.model import Purpose

ACCOUNTS = {
    Purpose.SUPPLIER_PENDING: "pending",
    Purpose.SUPPLIER_PAYABLE: "available",
    Purpose.SUPPLIER_RECEIVABLE: "owed",
}
REFERENCES = ("supplier_order", "refund", "payout", "subscription", "click")
CSV_COLUMNS = (
    "posted_at", "transaction", "kind", "reference", "account", "amount", "currency", "balance",
)  # fmt: skip


async def _positions(
    uow: UnitOfWork, supplier_id: str, currency: str, at: datetime | None
) -> dict[str, int]:
    """What each account holds at `at` (inclusive), in the supplier's favour."""
    found = dict.fromkeys(ACCOUNTS.values(), 0)
    if at is None:
        return found
    rows = await store.balances(
        await uow.connection(), owner=supplier_id, purposes=list(ACCOUNTS), at=at
    )
    for row in rows:
        if row.currency == currency:
            found[ACCOUNTS[Purpose(row.purpose)]] = -int(row.balance)
    return found


def _net(positions: dict[str, int]) -> int:
    return sum(positions.values())


def _reference(memo: dict[str, Any]) -> str | None:
    return next((str(memo[k]) for k in REFERENCES if k in memo), None)


async def statement(
    uow: UnitOfWork,
    *,
    supplier_id: str,
    currency: str,
    since: datetime | None,
    until: datetime,
) -> dict[str, Any]:
    """The statement of a supplier's accounts in one currency from `since` (the beginning when
    None) to `until`, both inclusive."""
    opening = await _positions(
        uow, supplier_id, currency, since - timedelta(microseconds=1) if since else None
    )
    rows = await store.statement_rows(
        await uow.connection(), owner=supplier_id, currency=currency,
        purposes=list(ACCOUNTS), since=since, until=until,
    )  # fmt: skip
    running = _net(opening)
    lines = []
    for row in rows:
        amount = -int(row.amount)  # a credit to the supplier's accounts is in its favour
        running += amount
        lines.append(
            {
                "posted_at": rfc3339(row.posted_at),
                "transaction": row.transaction_id,
                "kind": row.kind,
                "reference": _reference(row.memo),
                "account": ACCOUNTS[Purpose(row.purpose)],
                "amount": amount,
                "balance": running,
            }
        )
    closing = dict(opening)  # opening + the lines: one statement, whatever commits meanwhile
    for line in lines:
        closing[line["account"]] += line["amount"]
    return {
        "supplier": supplier_id,
        "currency": currency,
        "since": rfc3339(since) if since else None,
        "until": rfc3339(until),
        "opening": {**opening, "net": _net(opening)},
        "lines": lines,
        "closing": {**closing, "net": _net(closing)},
    }


def as_csv(found: dict[str, Any]) -> str:
    """The statement's lines as CSV, after an opening line and before a closing one. Text
    cells are written as they are: none comes from free input a spreadsheet could run."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    currency = found["currency"]
    writer.writerow([found["since"] or "", "", "opening", "", "", "", currency,
                     found["opening"]["net"]])  # fmt: skip
    for line in found["lines"]:
        writer.writerow(
            [line["posted_at"], line["transaction"], line["kind"], line["reference"] or "",
             line["account"], line["amount"], currency, line["balance"]]
        )  # fmt: skip
    writer.writerow([found["until"], "", "closing", "", "", "", currency, found["closing"]["net"]])
    return out.getvalue()
