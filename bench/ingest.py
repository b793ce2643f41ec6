"""Feed import, next to the raw limit of writing the same rows measured in the same run.

What it does:

1. Generates N book offers (default 1,000,000) for one supplier with the demo's generators
   (`data.books` over a `data.book_pool`) and writes them, streaming, as a JSON Lines feed
   (objects shaped like the supply API's offer body) and a CSV feed (`attr.*` columns, the
   price in major units). Cached in bench/.cache/feed-books-N-<hash of demo/data.py>.{jsonl,csv}.
2. For each backend and format: a fresh database, migrated, with the demo marketplace's
   owner, categories, suppliers and clients (`create_marketplace`); then the real import, a
   subprocess `marketplane feed import FILE --supplier ID --json`, timed from start to exit,
   its peak RSS from `os.wait4` (in a launcher that forks it: see MEASURE); then the same
   command on the same file again (an unchanged re-import: every row must count as unchanged).
3. The raw limit, per backend, on another fresh database migrated the same way (same table,
   triggers and indexes): the same offers as `offers` rows, built in memory (not timed), written
   with no parsing or validation, in transactions of as many rows as the import's (its batch
   size, `feeds.service.BATCH`). SQLite: the stdlib driver's `executemany` of an
   `INSERT … ON CONFLICT (supplier_id, sku) DO UPDATE`, the app's pragmas. PostgreSQL: asyncpg
   `copy_records_to_table`, one COPY a transaction. Only the database work is timed.
4. Prints one JSON object per measurement and appends it to bench/results/ingest-<date>.jsonl.

    .venv/bin/python bench/ingest.py                        # 1M rows, both backends and formats
    .venv/bin/python bench/ingest.py --rows 20000           # a quick one

Targets (the issue's): SQLite ≥ 0.4 x raw, PostgreSQL ≥ 0.5 x COPY, peak RSS < 300 MB. The
script reports them; it exits 0 whether they are met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from search import Output, git_commit, log, postgres_cpu, src_hash, tree_hash

if TYPE_CHECKING:
    from marketplane.catalog.model import Category, OfferDraft

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
LOGS = CACHE / "logs"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
DATA_PY = ROOT / "src" / "marketplane" / "demo" / "data.py"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SUPPLIER = "Paper Lane Books"
FORMATS = ("jsonl", "csv")
CSV_HEADER = (
    "sku",
    "title",
    "description",
    "category",
    "price",
    "currency",
    "quantity",
    "attr.isbn",
    "attr.author",
    "attr.year",
    "attr.language",
)
RAW_BATCH = 5000  # rows a raw transaction writes: the import's batch size (checked in main)
TARGET_RATIO = {"sqlite": 0.4, "postgres": 0.5}
TARGET_RSS_MB = 300.0
RAW_METHOD = {"sqlite": "executemany upsert", "postgres": "COPY"}
_ONLY = f"per {RAW_BATCH:,} rows only (row building excluded)"
RAW_TIMED = {
    "sqlite": f"executemany + BEGIN IMMEDIATE/COMMIT {_ONLY}",
    "postgres": f"copy_records_to_table + transaction {_ONLY}",
}
# `offers` columns a raw row fills: every NOT NULL one (pk and, on PostgreSQL, the generated
# search_tsv are left to the database).
RAW_COLUMNS = (
    "id",
    "supplier_id",
    "sku",
    "category_id",
    "title",
    "description",
    "attributes",
    "price_amount",
    "currency",
    "quantity",
    "status",
    "live",
    "gtin",
    "product_id",
    "source",
    "content_hash",
    "version",
    "search_title",
    "search_body",
    "created_at",
    "updated_at",
)
UPSERT_SET = [c for c in RAW_COLUMNS if c not in ("id", "supplier_id", "sku", "created_at")]
SQLITE_UPSERT = (
    f"INSERT INTO offers ({', '.join(RAW_COLUMNS)}) VALUES ({', '.join('?' * len(RAW_COLUMNS))}) "
    f"ON CONFLICT (supplier_id, sku) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in UPSERT_SET)
)


# --- the feeds -----------------------------------------------------------------------------------


def data_hash() -> str:
    return tree_hash(DATA_PY)


def drafts(rows: int) -> Iterator[OfferDraft]:
    """The benchmark's offers: one supplier's books, from the demo generators (deterministic)."""
    from marketplane.demo import data

    pool = data.book_pool(7, max(1000, rows // 20))
    return data.books(1, rows, pool=pool, prefix="PLB")


def major_units(amount: int) -> str:
    """1299 → "12.99" (EUR: two digits)."""
    return f"{amount // 100}.{amount % 100:02d}"


def jsonl_line(draft: OfferDraft) -> bytes:
    assert draft.price_amount is not None
    body = {
        "sku": draft.sku,
        "category": draft.category,
        "title": draft.title,
        "description": draft.description,
        "price": {"amount": draft.price_amount, "currency": draft.price_currency},
        "quantity": draft.quantity,
        "attributes": draft.attributes,
    }
    return orjson.dumps(body) + b"\n"


def csv_cells(draft: OfferDraft) -> list[Any]:
    assert draft.price_amount is not None
    attrs = draft.attributes
    return [
        draft.sku,
        draft.title,
        draft.description,
        draft.category,
        major_units(draft.price_amount),
        draft.price_currency,
        draft.quantity,
        attrs["isbn"],
        attrs["author"],
        attrs["year"],
        attrs["language"],
    ]


def feed_path(rows: int, fmt: str) -> Path:
    return CACHE / f"feed-books-{rows}-{data_hash()}.{fmt}"


def _open_feed(stack: ExitStack, fmt: str, path: Path) -> Callable[[OfferDraft], object]:
    """Opens a feed file for writing; returns what writes one offer to it."""
    if fmt == "jsonl":
        binary = stack.enter_context(path.open("wb"))
        return lambda draft: binary.write(jsonl_line(draft))
    text = stack.enter_context(path.open("w", newline="", encoding="utf-8"))
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    return lambda draft: writer.writerow(csv_cells(draft))


def write_feeds(rows: int, paths: dict[str, Path]) -> None:
    """Writes the feeds in one pass over the generated offers, each to a .part file first."""
    started = time.perf_counter()
    parts = {fmt: path.with_name(path.name + ".part") for fmt, path in paths.items()}
    with ExitStack() as stack:
        writers = [_open_feed(stack, fmt, part) for fmt, part in parts.items()]
        for draft in drafts(rows):
            for write in writers:
                write(draft)
    for fmt, part in parts.items():
        os.replace(part, paths[fmt])
    log(f"feeds written in {time.perf_counter() - started:,.1f}s: {', '.join(map(str, paths))}")


def ensure_feeds(rows: int, formats: list[str]) -> dict[str, Path]:
    """The feed files, generated if missing (older ones of this size, from another data.py, go)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = {fmt: feed_path(rows, fmt) for fmt in formats}
    for fmt, path in paths.items():
        for stale in CACHE.glob(f"feed-books-{rows}-*.{fmt}*"):
            if stale != path:
                stale.unlink()
    missing = {fmt: path for fmt, path in paths.items() if not path.exists()}
    if missing:
        log(f"generating {rows:,} offers as {', '.join(missing)}")
        write_feeds(rows, missing)
    return paths


# --- fresh databases ---------------------------------------------------------------------------


def _sqlite_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


async def _pg_admin(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_database(backend: str, label: str, keep: bool) -> Iterator[str]:
    """An empty database (its SQLAlchemy URL), removed afterwards unless `keep`."""
    name = f"ingest_{os.getpid()}_{label}"
    if backend == "sqlite":
        path = CACHE / f"{name}.db"
        for file in _sqlite_files(path):
            file.unlink(missing_ok=True)
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            if not keep:
                for file in _sqlite_files(path):
                    file.unlink(missing_ok=True)
        return
    database = f"marketplane_{name}"
    asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}"))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    finally:
        if not keep:
            asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


@dataclass(frozen=True)
class Marketplace:
    supplier_id: str
    books: Category


async def _prepare(url: str) -> Marketplace:
    from marketplane.bootstrap import migrated
    from marketplane.catalog import service as catalog
    from marketplane.demo.build import create_marketplace
    from marketplane.settings import Settings

    platform = await migrated(Settings(database_url=url))
    try:
        async with platform.uow() as uow:
            summary = await create_marketplace(uow)
            books = await catalog.get_category(uow, ref="books")
            await uow.commit()
    finally:
        await platform.close()
    return Marketplace(summary.supplier_ids[SUPPLIER], books)


def prepare(url: str) -> Marketplace:
    """Migrates the database and creates the demo marketplace, without offers."""
    return asyncio.run(_prepare(url))


# --- the import --------------------------------------------------------------------------------


# The import runs in a child forked from this small process, which reports the child's peak
# memory: the kernel's high-water mark (ru_maxrss from wait4) and, sampled every 0.2 s from
# /proc, the most anonymous and file-backed memory it held (on SQLite the database is
# memory-mapped, and mapped pages count as RSS), and the most the import and every process it
# started (the one preparing a large file's rows) held together (`tree_kb`: their proportional
# set sizes summed, so pages they share count once). Not measured from the benchmark process:
# a child that subprocess starts there (vfork, then exec) inherits the benchmark's own
# high-water mark in ru_maxrss, which after the raw SQLite run is ~1 GB.
MEASURE = """
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)

def status(p):
    found = {}
    with open(f"/proc/{p}/status") as status_file:
        for line in status_file:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmRSS"):
                found[key] = int(value.split()[0])
    return found

def pss(p):
    with open(f"/proc/{p}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0

def tree(p):
    found = [p]
    for task in os.listdir(f"/proc/{p}/task"):
        with open(f"/proc/{p}/task/{task}/children") as children:
            for child in children.read().split():
                found.extend(tree(int(child)))
    return found

peak = {"RssAnon": 0, "RssFile": 0, "tree": 0}
while True:
    done, exit_status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    try:
        own = status(pid)
        for key in ("RssAnon", "RssFile"):
            peak[key] = max(peak[key], own.get(key, 0))
        total = 0
        for p in tree(pid):
            try:
                total += pss(p)
            except OSError:
                pass
        peak["tree"] = max(peak["tree"], total)
    except OSError:
        pass
    time.sleep(0.2)
with open(report, "w") as out:
    json.dump({"maxrss_kb": usage.ru_maxrss, "anon_kb": peak["RssAnon"],
               "file_kb": peak["RssFile"], "tree_kb": peak["tree"],
               "cpu_s": usage.ru_utime + usage.ru_stime}, out)
sys.exit(os.waitstatus_to_exitcode(exit_status))
"""


@dataclass(frozen=True)
class Imported:
    seconds: float
    exit_code: int
    run: dict[str, Any] | None
    memory: dict[str, float]  # maxrss_kb, anon_kb, file_kb, cpu_s (empty if the launcher failed)
    server_cpu: float | None  # CPU seconds PostgreSQL used meanwhile (None on SQLite)
    stderr: Path
    src: str  # the hash of src/ when the import started (the code it loaded)
    commit: str | None  # the checked-out commit then
    src_changed: bool  # src/ differed when it ended (others edit the tree meanwhile)


def import_env(url: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLANE_")}
    env.update(
        MARKETPLANE_DATABASE_URL=url,
        MARKETPLANE_DATA_DIR=data_dir,
        MARKETPLANE_LOG_LEVEL="warning",
    )
    return env


def _last_json(path: Path) -> dict[str, Any] | None:
    lines = path.read_text().strip().splitlines() if path.exists() else []
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None


def run_import(url: str, file: Path, supplier_id: str, *, label: str, dry_run: bool) -> Imported:
    """`marketplane feed import` as a subprocess (under MEASURE): wall time from start to exit,
    peak memory, and the run it prints."""
    argv = [str(BIN / "marketplane"), "feed", "import", str(file), "--supplier", supplier_id]
    argv += ["--json", *(["--dry-run"] if dry_run else [])]
    LOGS.mkdir(parents=True, exist_ok=True)
    out_path, err_path = LOGS / f"ingest-{label}.out", LOGS / f"ingest-{label}.err"
    memory_path = LOGS / f"ingest-{label}.memory.json"
    memory_path.unlink(missing_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="marketplane-ingest-") as data_dir,
        out_path.open("wb") as out,
        err_path.open("wb") as err,
    ):
        code, commit = src_hash(), git_commit()
        server_before = postgres_cpu() if url.startswith("postgres") else None
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", MEASURE, str(memory_path), *argv],
            env=import_env(url, data_dir),
            stdout=out,
            stderr=err,
            cwd=ROOT,
        )
        _, status, _ = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        server_cpu = None
        if server_before is not None:
            time.sleep(0.5)  # the import's connections end and their processes are reaped
            server_cpu = postgres_cpu() - server_before
    memory = _last_json(memory_path) or {}
    run = _last_json(out_path)
    changed = src_hash() != code
    return Imported(
        seconds, process.returncode, run, memory, server_cpu, err_path, code, commit, changed
    )


# --- the raw limit -----------------------------------------------------------------------------


def raw_batches(
    market: Marketplace, rows: int, size: int, *, dialect: str
) -> Iterator[list[tuple[Any, ...]]]:
    """The offers as `offers` rows (RAW_COLUMNS), `size` at a time. The row contents (search
    text, content hash, GTIN) are the model's, so triggers and indexes get the same work."""
    from marketplane.catalog.checks import schema_check
    from marketplane.catalog.model import ValidOffer, validate_offer
    from marketplane.currency import precision
    from marketplane.demo.build import chunks
    from marketplane.kernel.ids import new_id

    category, check = market.books, schema_check(market.books)
    moment = datetime.now(UTC)
    # What the app's column types send: ISO text without zone on SQLite, aware on PostgreSQL.
    now: Any = moment.replace(tzinfo=None).isoformat(sep=" ") if dialect == "sqlite" else moment
    for chunk in chunks(drafts(rows), size):
        batch = []
        for draft in chunk:
            offer = validate_offer(
                draft,
                category=category,
                precision=precision(draft.price_currency),
                check_attributes=check,
            )
            assert isinstance(offer, ValidOffer), offer
            batch.append(
                (
                    new_id("off"),
                    market.supplier_id,
                    offer.sku,
                    category.id,
                    offer.title,
                    offer.description,
                    orjson.dumps(offer.attributes).decode(),
                    offer.price_amount,
                    offer.currency,
                    offer.quantity,
                    "active",
                    1,
                    offer.gtin,
                    None,
                    "raw",
                    offer.content_hash,
                    1,
                    offer.search_title,
                    offer.search_body,
                    now,
                    now,
                )
            )
        yield batch


def raw_sqlite(url: str, market: Marketplace, rows: int) -> float:
    """Seconds spent in executemany upserts and commits, RAW_BATCH rows a transaction."""
    from marketplane.db.engine import SQLITE_PRAGMAS

    conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        timed = 0.0
        for batch in raw_batches(market, rows, RAW_BATCH, dialect="sqlite"):
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(SQLITE_UPSERT, batch)
            conn.execute("COMMIT")
            timed += time.perf_counter() - started
        count = conn.execute("SELECT count(*) FROM offers").fetchone()[0]
    finally:
        conn.close()
    if count != rows:
        raise RuntimeError(f"raw SQLite: {count} offers, not {rows}")
    return timed


async def raw_postgres(url: str, market: Marketplace, rows: int) -> float:
    """Seconds spent in COPYs and commits, RAW_BATCH rows a transaction."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        timed = 0.0
        for batch in raw_batches(market, rows, RAW_BATCH, dialect="postgresql"):
            started = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table("offers", records=batch, columns=RAW_COLUMNS)
            timed += time.perf_counter() - started
        count = await conn.fetchval("SELECT count(*) FROM offers")
    finally:
        await conn.close()
    if count != rows:
        raise RuntimeError(f"raw PostgreSQL: {count} offers, not {rows}")
    return timed


def measure_raw(backend: str, rows: int, keep: bool) -> dict[str, Any]:
    with fresh_database(backend, "raw", keep) as url:
        market = prepare(url)
        log(f"{backend}: raw {RAW_METHOD[backend]} of {rows:,} rows")
        server_cpu = None
        if backend == "sqlite":
            seconds = raw_sqlite(url, market, rows)
        else:
            before = postgres_cpu()
            seconds = asyncio.run(raw_postgres(url, market, rows))
            time.sleep(0.5)
            server_cpu = postgres_cpu() - before
    return {
        "bench": "raw",
        "backend": backend,
        "method": RAW_METHOD[backend],
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "timed": RAW_TIMED[backend],
        "writes": "offers only (the import also writes offer_attrs and products)",
        # PostgreSQL's CPU over the whole raw run (its COPYs and commits; the rows are built
        # between them, untimed): the server's share of the work
        **({} if server_cpu is None else {"postgres_cpu_s": round(server_cpu, 2)}),
        "load": round(os.getloadavg()[0], 2),
    }


# --- records -----------------------------------------------------------------------------------


def _mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def ingest_record(
    kind: str, backend: str, fmt: str, rows: int, done: Imported, raw: dict[str, Any]
) -> dict[str, Any]:
    run = done.run or {}
    # The import's own high-water mark, or what it and its helper held at once, if more.
    peak_mb = max(
        filter(None, (_mb(done.memory.get(k)) for k in ("maxrss_kb", "tree_kb"))), default=None
    )
    rows_per_s = rows / done.seconds
    ratio = round(rows_per_s / raw["rows_per_s"], 3)
    status = run.get("status", "no output")
    target = {"ratio": TARGET_RATIO[backend], "peak_rss_mb": TARGET_RSS_MB}
    record: dict[str, Any] = {
        "bench": kind,
        "backend": backend,
        "format": fmt,
        "rows": rows,
        "seconds": round(done.seconds, 2),
        "rows_per_s": round(rows_per_s),
        "run_seconds": run.get("seconds"),
        "run_rows_per_s": run.get("rows_per_s") and round(run["rows_per_s"]),
        "peak_rss_mb": peak_mb,
        "peak_rss_own_mb": _mb(done.memory.get("maxrss_kb")),
        "peak_rss_tree_mb": _mb(done.memory.get("tree_kb")),
        "peak_rss_anon_mb": _mb(done.memory.get("anon_kb")),
        "peak_rss_file_mb": _mb(done.memory.get("file_kb")),
        "exit_code": done.exit_code,
        "status": status,
        "counts": run.get("counts"),
        "error": run.get("error"),
        "raw_method": raw["method"],
        "raw_rows_per_s": raw["rows_per_s"],
        "ratio": ratio,
        # The run's own rate (from its first to its last row: no interpreter start, no
        # migration check) to raw.
        "run_ratio": run.get("rows_per_s") and round(run["rows_per_s"] / raw["rows_per_s"], 3),
        **cpu_figures(rows, done, raw),
    }
    if kind == "ingest-dry-run":
        record.pop("ratio")
        record["ratio_to_raw"] = ratio
    else:
        record["target"] = target
        record["target_met"] = (
            status == "complete"
            and ratio >= target["ratio"]
            and peak_mb is not None
            and peak_mb < TARGET_RSS_MB
        )
    if kind == "ingest-reimport":
        record["all_unchanged"] = (run.get("counts") or {}).get("unchanged") == rows
    record["load"] = round(os.getloadavg()[0], 2)
    record["commit"] = done.commit
    record["src"] = done.src
    if done.src_changed:
        record["src_changed_during_run"] = True
    return record


def cpu_figures(rows: int, done: Imported, raw: dict[str, Any]) -> dict[str, Any]:
    """CPU the import process used and, on PostgreSQL, the server meanwhile. Were every core
    busy all the time, the import would take their sum over the cores: `floor_seconds`, and
    `ratio_ceiling` the ratio to raw that this much work could reach here at best."""
    cpu = {"import": done.memory.get("cpu_s"), "postgres": done.server_cpu}
    used = {name: round(value, 2) for name, value in cpu.items() if value is not None}
    if not used:
        return {}
    floor = sum(used.values()) / (os.cpu_count() or 1)
    return {
        "cpu_s": used,
        "cpu_us_per_row": {name: round(value * 1e6 / rows) for name, value in used.items()},
        "floor_seconds": round(floor, 2),
        "ratio_ceiling": round(rows / floor / raw["rows_per_s"], 3),
    }


def describe(record: dict[str, Any]) -> str:
    return (
        f"{record['bench']} {record['backend']}/{record['format']}: {record['status']}, "
        f"{record['rows_per_s']:,} rows/s ({record['seconds']:,.1f}s, "
        f"x{record.get('ratio', record.get('ratio_to_raw'))} of raw), "
        f"peak RSS {record['peak_rss_mb']} MB (anon {record['peak_rss_anon_mb']}, "
        f"file {record['peak_rss_file_mb']}), counts {record['counts']}"
    )


def bench_format(
    backend: str, fmt: str, file: Path, raw: dict[str, Any], args: argparse.Namespace, out: Output
) -> None:
    rows = args.rows
    with fresh_database(backend, fmt, args.keep) as url:
        market = prepare(url)
        passes = [("ingest-dry-run", True)] if args.dry_run_too else []
        passes += [("ingest", False), ("ingest-reimport", False)]
        for kind, dry_run in passes:
            log(f"{backend}/{fmt}: {kind} of {file.name}")
            label = f"{backend}-{fmt}-{kind}"
            done = run_import(url, file, market.supplier_id, label=label, dry_run=dry_run)
            record = ingest_record(kind, backend, fmt, rows, done, raw)
            if done.exit_code != 0 or done.run is None:
                record["stderr"] = done.stderr.read_text()[-2000:]
            out.emit(record)
            log(describe(record))
            if kind == "ingest-reimport" and not record["all_unchanged"]:
                log(f"{backend}/{fmt}: the unchanged re-import did not count every row unchanged")


def meta(args: argparse.Namespace, backends: list[str], feeds: dict[str, Path]) -> dict[str, Any]:
    import asyncpg

    record: dict[str, Any] = {
        "bench": "meta",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/ingest.py", *sys.argv[1:]]),
        "commit": git_commit(),
        "src": src_hash(),
        "data": data_hash(),
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "asyncpg": asyncpg.__version__,
        "rows": args.rows,
        "backends": backends,
        "formats": {fmt: sorted(where & set(backends)) for fmt, where in args.plan.items()},
        "feeds": {fmt: {"file": p.name, "bytes": p.stat().st_size} for fmt, p in feeds.items()},
    }
    if "postgres" in backends:
        record["postgres"] = asyncio.run(_pg_settings())
    return record


async def _pg_settings() -> dict[str, str]:
    """The server's version, and whether autovacuum (hence ANALYZE of the growing table) runs."""
    import asyncpg

    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        return {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("server_version", "autovacuum")
        }
    finally:
        await conn.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Feed import (CLI subprocess) next to a raw write of the same rows."
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help="jsonl,csv; a backend may be named: jsonl,sqlite:csv (csv on SQLite only)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--dry-run-too",
        action="store_true",
        help="also time `--dry-run` imports (parse, map, validate, no writes) first",
    )
    parser.add_argument("--out", type=Path, help="JSON lines file (default bench/results/…)")
    args = parser.parse_args()
    args.plan = {}
    for item in args.formats.split(","):
        where, _, fmt = item.rpartition(":")
        if fmt not in FORMATS or where not in ("", "sqlite", "postgres"):
            parser.error(f"unknown format {item!r}")
        args.plan[fmt] = args.plan.get(fmt, set()) | ({where} if where else {"sqlite", "postgres"})
    args.formats = list(args.plan)
    return args


def main() -> int:
    from marketplane.feeds.service import BATCH

    if BATCH != RAW_BATCH:
        raise SystemExit(f"RAW_BATCH ({RAW_BATCH}) must be the import's batch size ({BATCH})")
    args = parse_args()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    out = Output(args.out or RESULTS / f"ingest-{stamp}.jsonl")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    feeds = ensure_feeds(args.rows, args.formats)
    out.emit(meta(args, backends, feeds))
    for backend in backends:
        raw = measure_raw(backend, args.rows, args.keep)
        out.emit(raw)
        log(f"{backend}: raw {raw['rows_per_s']:,} rows/s ({raw['seconds']:,.1f}s)")
        for fmt, file in feeds.items():
            if backend in args.plan[fmt]:
                bench_format(backend, fmt, file, raw, args, out)
    log(f"results: {out.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
