"""Ledger postings per second for order-capture transactions, next to the raw insert of the
same rows measured in the same run.

What it does, per backend (SQLite: a file in a temporary directory, one writer; PostgreSQL on
127.0.0.1:5432: one connection, then `--concurrency` at once), each measurement on a fresh
database migrated to head:

1. **ledger**: N captures (`--transactions`, default 20,000) through
   `money.service.record_capture`, which `ledger.post`s one transaction of 3 postings (cash,
   payment_fees, customer_funds; the platform's EUR accounts, opened by the first one). Each in
   its own UnitOfWork, committed, as a payment's capture commits with the payment. Sequential
   on one connection; on PostgreSQL also from `--concurrency` asyncio tasks (a pooled
   connection each). Payment ids, amounts and fees are drawn before the clock starts; each
   transaction is timed from opening its unit of work to leaving it after the commit. The SQL
   statements the engine sends are counted (BEGIN on SQLite is one; COMMIT, and BEGIN on
   PostgreSQL, go through the driver's own calls and are not).
2. The books are checked on the database: N transactions, 3N postings, every transaction and
   all postings together summing to zero.
3. **baseline**: the same rows (each ledger_transactions row and its 3 ledger_postings rows,
   the same account pks), read back from that database (not timed), inserted with the bare
   driver into a second fresh database migrated the same way (same indexes and triggers) and
   given the same ledger_accounts rows first: per capture one transaction, the transaction row
   (its pk back) then its postings by executemany, at the same concurrency. SQLite: the
   `sqlite3` module with the server writer's pragmas (WAL, synchronous=NORMAL, …), BEGIN
   IMMEDIATE … COMMIT. PostgreSQL: asyncpg, a connection per task. Checked the same way.

`ratio` = ledger postings/s ÷ baseline postings/s. Both sides run on uvloop, as the server does.

Lines: `meta` (commit, src hash, machine, versions, PostgreSQL's durability settings), then one
`ledger` per backend and concurrency: transactions/s, postings/s, p50/p99/max per transaction,
this process's CPU per transaction (PostgreSQL's own is not in it), statements per
transaction, the baseline's figures (`baseline_*`) and `ratio`, and the checks. Printed, and
with `--save` appended to bench/results/ledger-<date>.jsonl. Exits 1 if a check fails.

    .venv/bin/python bench/ledger.py --save     # 20,000 captures: SQLite; PostgreSQL c1 and c8
    .venv/bin/python bench/ledger.py --transactions 500 --backends sqlite   # a quick one

PostgreSQL: a server that lets `postgres` in without a password; the databases
marketplane_bench_ledger and marketplane_bench_ledger_raw are dropped and created for each
measurement, and dropped at the end (`--keep` leaves the last ones).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy
import uvloop
from sqlalchemy import event

from marketplane.db import migrate
from marketplane.db.engine import SQLITE_PRAGMAS, connect
from marketplane.db.uow import UnitOfWork
from marketplane.kernel.ids import new_id
from marketplane.money import service as money
from search import PG_SERVER, ROOT, Output, _pg_admin, git_commit, log, src_hash

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PG_DATABASE = "marketplane_bench_ledger"
PG_RAW_DATABASE = f"{PG_DATABASE}_raw"
CURRENCY = "EUR"
POSTINGS = 3  # a capture's: cash, payment_fees, customer_funds

# The baseline's statements: the rows exactly as read back, every column but the pks the
# database assigns (a transaction's, its postings').
ACCOUNT_COLUMNS = "pk, purpose, owner, currency, type, balance, created_at"
TRANSACTION_COLUMNS = "id, key, kind, fingerprint, memo, posted_at"
POSTING_COLUMNS = "transaction_pk, account_pk, amount, posted_at"
SQLITE_SQL = {
    "account": f"INSERT INTO ledger_accounts ({ACCOUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "transaction": f"INSERT INTO ledger_transactions ({TRANSACTION_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?)",
    "posting": f"INSERT INTO ledger_postings ({POSTING_COLUMNS}) VALUES (?, ?, ?, ?)",
}
PG_SQL = {
    "account": f"INSERT INTO ledger_accounts ({ACCOUNT_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)",
    "transaction": f"INSERT INTO ledger_transactions ({TRANSACTION_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6) RETURNING pk",
    "posting": f"INSERT INTO ledger_postings ({POSTING_COLUMNS}) VALUES ($1, $2, $3, $4)",
}
BASELINE_METHOD = {
    "sqlite": "sqlite3, the server writer's pragmas; BEGIN IMMEDIATE, INSERT transaction "
    "(lastrowid), executemany postings, COMMIT",
    "postgres": "asyncpg; BEGIN, INSERT transaction RETURNING pk, executemany postings, COMMIT",
}
# Every transaction, all postings, and each transaction alone must sum to zero.
CHECK_SQL = (
    "SELECT (SELECT count(*) FROM ledger_transactions), "
    "(SELECT count(*) FROM ledger_postings), "
    "(SELECT coalesce(sum(amount), 0) FROM ledger_postings), "
    "(SELECT count(*) FROM ledger_accounts), "
    "(SELECT count(*) FROM (SELECT transaction_pk FROM ledger_postings "
    "GROUP BY transaction_pk HAVING sum(amount) != 0) AS off)"
)


@dataclass(frozen=True, slots=True)
class Capture:
    payment_id: str
    amount: int
    fee: int


def captures(count: int, seed: int = 2026) -> list[Capture]:
    """Card payments of 5 to 300 EUR; the provider keeps 1.4% + 0.25 (never zero: 3 postings)."""
    draw = random.Random(seed).randint
    made = []
    for _ in range(count):
        amount = draw(500, 30_000)
        made.append(Capture(new_id("pay"), amount, (amount * 14 + 500) // 1000 + 25))
    return made


# --- the databases ----------------------------------------------------------------------------


def _dsn(database: str) -> str:
    return f"{PG_SERVER}/{database}"


@asynccontextmanager
async def fresh_databases(backend: str, keep: bool) -> AsyncIterator[tuple[str, str]]:
    """Two empty databases, migrated to head: the ledger's and the baseline's (URLs)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ledger-") as workdir:
            urls = tuple(f"sqlite+aiosqlite:///{workdir}/{name}.db" for name in ("ledger", "raw"))
            for url in urls:
                await migrated(url)
            yield urls[0], urls[1]
        return
    names = (PG_DATABASE, PG_RAW_DATABASE)
    drops = [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in names]
    await _pg_admin(*drops, *(f"CREATE DATABASE {name}" for name in names))
    try:
        urls = tuple(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}" for name in names)
        for url in urls:
            await migrated(url)
        yield urls[0], urls[1]
    finally:
        if not keep:
            await _pg_admin(*drops)


async def migrated(url: str) -> None:
    db = connect(url, null_pool=True)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


def sqlite_path(url: str) -> str:
    return url.split("///", 1)[1]


def sqlite_writer(path: str) -> sqlite3.Connection:
    """A connection set up as the server's writer (autocommit: transactions are explicit)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (*SQLITE_PRAGMAS, "PRAGMA mmap_size=0"):
        conn.execute(pragma)
    return conn


async def check(backend: str, url: str, transactions: int) -> dict[str, Any]:
    """The books, read from the database: every capture there once, and balanced."""
    if backend == "sqlite":
        conn = sqlite3.connect(sqlite_path(url))
        try:
            found = tuple(conn.execute(CHECK_SQL).fetchone())
        finally:
            conn.close()
    else:
        database = sqlalchemy.make_url(url).database or ""
        pg = await asyncpg.connect(_dsn(database))
        try:
            found = tuple(await pg.fetchrow(CHECK_SQL))
        finally:
            await pg.close()
    count, postings, total, accounts, unbalanced = (int(v) for v in found)
    facts: dict[str, Any] = {
        "transactions": count,
        "postings": postings,
        "sum": total,
        "accounts": accounts,
        "unbalanced_transactions": unbalanced,
    }
    facts["ok"] = (
        count == transactions
        and postings == POSTINGS * transactions
        and total == 0
        and unbalanced == 0
        and accounts == POSTINGS
    )
    return facts


# --- timing -----------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """This process's CPU time, all threads (aiosqlite's included; not PostgreSQL's)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def figures(times_ns: list[int], seconds: float, cpu: float) -> dict[str, Any]:
    cuts = (
        statistics.quantiles(times_ns, n=100, method="inclusive")
        if len(times_ns) > 1
        else times_ns * 99
    )
    return {
        "seconds": round(seconds, 3),
        "transactions_per_s": round(len(times_ns) / seconds, 1),
        "postings_per_s": round(POSTINGS * len(times_ns) / seconds, 1),
        "p50_ms": round(cuts[49] / 1e6, 3),
        "p99_ms": round(cuts[98] / 1e6, 3),
        "max_ms": round(max(times_ns) / 1e6, 3),
        "cpu_ms_per_transaction": round(1000 * cpu / len(times_ns), 3),
    }


# --- the ledger -------------------------------------------------------------------------------


async def run_ledger(
    url: str, planned: list[Capture], concurrency: int
) -> tuple[dict[str, Any], Counter[str]]:
    """Every capture through record_capture, a unit of work each, from `concurrency` tasks;
    the figures and the SQL statements sent, by first word."""
    db = connect(url, pool_size=concurrency)
    sent: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent[statement.split(None, 1)[0].lower()] += 1

    event.listen(db.writer.sync_engine, "before_cursor_execute", count)
    times: list[int] = []
    clock = time.perf_counter_ns
    pending = iter(planned)  # shared: each task takes the next capture

    async def capture_all() -> None:
        for capture in pending:
            began = clock()
            async with UnitOfWork(db) as uow:
                await money.record_capture(
                    uow,
                    payment_id=capture.payment_id,
                    amount=capture.amount,
                    fee=capture.fee,
                    currency=CURRENCY,
                )
                await uow.commit()
            times.append(clock() - began)

    try:
        started, cpu = time.perf_counter(), cpu_seconds()
        await asyncio.gather(*(capture_all() for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    finally:
        await db.dispose()
    return figures(times, seconds, cpu), sent


# --- the baseline -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """What the ledger wrote, as the driver reads it back: accounts (with their pks), and per
    transaction its row without pk and its postings as (account_pk, amount, posted_at)."""

    accounts: list[tuple[Any, ...]]
    transactions: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]


def _grouped(
    transactions: list[tuple[Any, ...]], postings: list[tuple[Any, ...]]
) -> list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Transactions are (pk, …), postings (transaction_pk, account_pk, amount, posted_at)."""
    by_transaction: dict[int, list[tuple[Any, ...]]] = {}
    for transaction_pk, *rest in postings:
        by_transaction.setdefault(transaction_pk, []).append(tuple(rest))
    return [(tuple(row[1:]), by_transaction[row[0]]) for row in transactions]


async def written_rows(backend: str, url: str) -> Rows:
    queries = (
        f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts ORDER BY pk",
        f"SELECT pk, {TRANSACTION_COLUMNS} FROM ledger_transactions ORDER BY pk",
        f"SELECT {POSTING_COLUMNS} FROM ledger_postings ORDER BY pk",
    )
    if backend == "sqlite":
        conn = sqlite3.connect(sqlite_path(url))
        try:
            accounts, transactions, postings = [conn.execute(q).fetchall() for q in queries]
        finally:
            conn.close()
    else:
        pg = await asyncpg.connect(_dsn(sqlalchemy.make_url(url).database or ""))
        try:
            accounts, transactions, postings = [
                [tuple(r) for r in await pg.fetch(query)] for query in queries
            ]
        finally:
            await pg.close()
    return Rows([tuple(a) for a in accounts], _grouped(transactions, postings))


def raw_sqlite(url: str, rows: Rows) -> dict[str, Any]:
    conn = sqlite_writer(sqlite_path(url))
    try:
        conn.executemany(SQLITE_SQL["account"], rows.accounts)  # autocommit, not timed
        insert_transaction, insert_posting = SQLITE_SQL["transaction"], SQLITE_SQL["posting"]
        times: list[int] = []
        clock = time.perf_counter_ns
        started, cpu = time.perf_counter(), cpu_seconds()
        for transaction, postings in rows.transactions:
            began = clock()
            conn.execute("BEGIN IMMEDIATE")
            pk = conn.execute(insert_transaction, transaction).lastrowid
            conn.executemany(insert_posting, [(pk, *posting) for posting in postings])
            conn.execute("COMMIT")
            times.append(clock() - began)
        return figures(times, time.perf_counter() - started, cpu_seconds() - cpu)
    finally:
        conn.close()


async def raw_postgres(url: str, rows: Rows, concurrency: int) -> dict[str, Any]:
    dsn = _dsn(sqlalchemy.make_url(url).database or "")
    conns = [await asyncpg.connect(dsn) for _ in range(concurrency)]
    try:
        await conns[0].executemany(PG_SQL["account"], rows.accounts)  # not timed
        insert_transaction, insert_posting = PG_SQL["transaction"], PG_SQL["posting"]
        times: list[int] = []
        clock = time.perf_counter_ns
        pending = iter(rows.transactions)

        async def insert_all(conn: asyncpg.Connection) -> None:
            for transaction, postings in pending:
                began = clock()
                async with conn.transaction():
                    pk = await conn.fetchval(insert_transaction, *transaction)
                    await conn.executemany(insert_posting, [(pk, *posting) for posting in postings])
                times.append(clock() - began)

        started, cpu = time.perf_counter(), cpu_seconds()
        await asyncio.gather(*(insert_all(conn) for conn in conns))
        return figures(times, time.perf_counter() - started, cpu_seconds() - cpu)
    finally:
        for conn in conns:
            await conn.close()


async def run_baseline(backend: str, url: str, rows: Rows, concurrency: int) -> dict[str, Any]:
    if backend == "sqlite":
        return raw_sqlite(url, rows)
    return await raw_postgres(url, rows, concurrency)


# --- one measurement --------------------------------------------------------------------------


async def measure(
    backend: str, concurrency: int, args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]
) -> bool:
    n = args.transactions
    label = f"{backend} c{concurrency}"
    code_before = src_hash()
    planned = captures(n)
    async with fresh_databases(backend, args.keep) as (ledger_url, raw_url):
        log(f"{label}: {n:,} captures through record_capture")
        ledger, sent = await run_ledger(ledger_url, planned, concurrency)
        ledger_check = await check(backend, ledger_url, n)
        log(
            f"{label}: ledger {ledger['postings_per_s']:,.0f} postings/s, "
            f"p99 {ledger['p99_ms']} ms, books {'ok' if ledger_check['ok'] else 'WRONG'}"
        )
        rows = await written_rows(backend, ledger_url)
        log(f"{label}: baseline, the same {len(rows.transactions):,} transactions' rows")
        raw = await run_baseline(backend, raw_url, rows, concurrency)
        raw_check = await check(backend, raw_url, n)
        log(f"{label}: baseline {raw['postings_per_s']:,.0f} postings/s, p99 {raw['p99_ms']} ms")
    ok = bool(ledger_check["ok"] and raw_check["ok"])
    emit(
        {
            "bench": "ledger",
            "backend": backend,
            "concurrency": concurrency,
            "transactions": n,
            "postings": POSTINGS * n,
            **ledger,
            "statements_per_transaction": round(sum(sent.values()) / n, 2),
            "statements": {kind: round(k / n, 2) for kind, k in sorted(sent.items())},
            "baseline_method": BASELINE_METHOD[backend],
            **{f"baseline_{name}": value for name, value in raw.items()},
            "ratio": round(ledger["postings_per_s"] / raw["postings_per_s"], 4),
            "check": ledger_check,
            "baseline_check": raw_check,
            "ok": ok,
            "load": round(os.getloadavg()[0], 2),
            "src": code_before,
            **({"src_changed_during_run": True} if src_hash() != code_before else {}),
        }
    )
    if not ok:
        log(f"{label}: the books do NOT balance: {ledger_check} / baseline {raw_check}")
    return ok


# --- the run ----------------------------------------------------------------------------------


def src_modified() -> list[str]:
    """Files under src/ that differ from the commit (what was measured is not the commit)."""
    done = subprocess.run(
        ["git", "--no-optional-locks", "status", "--porcelain", "--", "src"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return [line[3:] for line in done.stdout.splitlines()]


async def pg_settings() -> dict[str, str]:
    """What bounds a commit-heavy load: durability settings, and whether autovacuum runs."""
    conn = await asyncpg.connect(_dsn("postgres"))
    try:
        names = ("server_version", "fsync", "synchronous_commit", "shared_buffers", "autovacuum")
        return {name: str(await conn.fetchval(f"SHOW {name}")) for name in names}
    finally:
        await conn.close()


def plan(backends: list[str], concurrency: int) -> Iterator[tuple[str, int]]:
    for backend in backends:
        yield backend, 1
        if backend == "postgres" and concurrency > 1:
            yield backend, concurrency


async def run(args: argparse.Namespace, backends: list[str]) -> bool:
    out = Output(RESULTS / f"ledger-{datetime.now(UTC):%Y-%m-%d}.jsonl") if args.save else None

    def emit(record: dict[str, Any]) -> None:
        if out is not None:
            out.emit(record)
        else:
            print(json.dumps(record, separators=(",", ":")), flush=True)

    chosen = list(plan(backends, args.concurrency))
    emit(
        {
            "bench": "meta",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([".venv/bin/python", "bench/ledger.py", *sys.argv[1:]]),
            "commit": git_commit(),
            "src": src_hash(),
            "src_modified": src_modified(),
            "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sqlalchemy.__version__,
            "asyncpg": asyncpg.__version__,
            "uvloop": version("uvloop"),
            "configs": [f"{backend}:c{c}" for backend, c in chosen],
            "transactions": args.transactions,
            "postings_per_transaction": POSTINGS,
            "note": "the benchmark, its driver threads and PostgreSQL share the machine's cores",
            **({"postgres": await pg_settings()} if "postgres" in backends else {}),
        }
    )
    ok = True
    for backend, concurrency in chosen:
        ok = await measure(backend, concurrency, args, emit) and ok
    if out is not None:
        log(f"results: {out.path}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Ledger postings per second for order captures (record_capture, a unit of "
        "work each), next to the raw insert of the same rows with the bare driver."
    )
    parser.add_argument("--transactions", type=int, default=20_000, help="captures a run")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="tasks at once on PostgreSQL, after 1"
    )
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases")
    parser.add_argument(
        "--save", action="store_true", help="append the lines to bench/results/ledger-<date>.jsonl"
    )
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if not backends or not set(backends) <= {"sqlite", "postgres"}:
        parser.error("--backends takes sqlite and/or postgres")
    if args.transactions < 2 or args.concurrency < 1:
        parser.error("--transactions must be at least 2, --concurrency at least 1")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        ok = runner.run(run(args, backends))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
