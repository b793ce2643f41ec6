"""Store search under load, next to a bare FastAPI ceiling measured in the same run.

What it does, for each backend asked for (SQLite, PostgreSQL or both):

1. Builds a marketplace of N offers (default 1,000,000) through the real service path:
   `catalog.upsert_offers` in batches of 1000, one unit of work each, as `marketplane demo`
   does, with the demo's generators and shape (four suppliers, three approved and one pending,
   books and stays, a web shop client and a travel affiliate restricted to stays with a 5%
   markup). The result is cached (SQLite: bench/.cache/sqlite-N.db; PostgreSQL: the database
   marketplane_bench_N) with the keys it needs in bench/.cache/<backend>-N.json, so a re-run
   skips the load. The load rate is its own JSON line.
2. Starts `marketplane serve` on 127.0.0.1, builds the request mix from the API itself (first
   pages, and second pages from their `next_cursor`: see bench/search.lua), times each request
   alone (per-kind lines), warms up, then runs wrk at 16 and 64 connections.
3. Starts bench/ceiling.py (a bare FastAPI endpoint returning a stored 20-item page taken from
   the API, same uvicorn options) and runs the same wrk command, same script, against it.
4. Prints one JSON object per measurement; each search line carries its ceiling and the ratio.

    .venv/bin/python bench/search.py                          # 1M offers, SQLite and PostgreSQL
    .venv/bin/python bench/search.py --offers 50000 --duration 5 --backend sqlite

Targets (the issue's): on SQLite at 16 connections, p99 ≤ 10 ms and rps ≥ 0.5 x the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
LOGS = CACHE / "logs"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
LUA = HERE / "search.lua"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
BATCH = 1000
TARGET_P99_MS = 10.0
TARGET_RATIO = 0.5


def tree_hash(*folders: Path) -> str:
    """A short hash of the .py files under the folders, or of the files, given (what code and
    schema were measured)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*.py")) if folder.is_dir() else [folder]:
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def schema_hash() -> str:
    """The cache key's schema and data part: the migrations (0001 may still be edited in place)
    and the demo generators the offers come from."""
    src = ROOT / "src" / "marketplane"
    return tree_hash(src / "db" / "migrations" / "versions", src / "demo" / "data.py")


def src_hash() -> str:
    return tree_hash(ROOT / "src")


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Output:
    """JSON lines to stdout and to the results file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.file: TextIO = path.open("a")

    def emit(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"))
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


# --- building the marketplace -----------------------------------------------------------------


async def build_marketplace(url: str, offers: int) -> dict[str, Any]:
    """Creates the marketplace through the services; returns the keys and the load timings.

    On PostgreSQL it runs ANALYZE each time the table has doubled (from 2,000 offers), as
    autovacuum would: the server here has autovacuum off (conf.d/90-ci.conf), and without
    statistics the planner reads the sku lookup of every batch (`store.existing_offers`) through
    ix_offers_supplier_pk, filtering all the supplier's offers against 1000 parameters, so the
    load slows down with every batch (1,036 offers/s over the first 50,000, 726 by 100,000).
    The ANALYZE time is part of the load time.
    """
    from marketplane.bootstrap import migrated
    from marketplane.catalog import service as catalog
    from marketplane.demo.build import chunks, create_marketplace, offer_plan
    from marketplane.settings import Settings

    started = time.perf_counter()
    platform = await migrated(Settings(database_url=url))
    try:
        async with platform.uow() as uow:
            market = await create_marketplace(uow)
            await uow.commit()
        setup_seconds = time.perf_counter() - started

        loaded = 0
        analyzed_at, analyze_count, analyze_seconds = 1000, 0, 0.0
        load_started = time.perf_counter()
        report_every = max(BATCH, offers // 20)
        for name, drafts in offer_plan(offers):
            for chunk in chunks(drafts, BATCH):
                async with platform.uow() as uow:
                    results = await catalog.upsert_offers(
                        uow, supplier_id=market.supplier_ids[name], drafts=chunk, source="bench"
                    )
                    await uow.commit()
                failed = [r for r in results if r.outcome != "created"]
                if failed:
                    raise RuntimeError(f"offer not created: {failed[0]}")
                loaded += len(chunk)
                if platform.db.dialect == "postgresql" and loaded >= 2 * analyzed_at:
                    analyze_started = time.perf_counter()
                    async with platform.db.writer.connect() as conn:
                        await conn.exec_driver_sql("ANALYZE")
                        await conn.commit()
                    analyzed_at, analyze_count = loaded, analyze_count + 1
                    analyze_seconds += time.perf_counter() - analyze_started
                if loaded % report_every < BATCH:
                    elapsed = time.perf_counter() - load_started
                    log(f"  loaded {loaded:,}/{offers:,} ({loaded / elapsed:,.0f} offers/s)")
        load_seconds = time.perf_counter() - load_started
    finally:
        await platform.close()
    return {
        "offers": loaded,
        "keys": {
            "web": market.client_keys["web shop (secret)"],
            "travel": market.client_keys["travel affiliate (secret)"],
        },
        "setup_seconds": round(setup_seconds, 2),
        "load_seconds": round(load_seconds, 2),
        "analyze_during_load": {"count": analyze_count, "seconds": round(analyze_seconds, 2)},
    }


def _sqlite_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def cache_name(backend: str, offers: int) -> str:
    """Cached data is keyed by backend, offer count and schema."""
    return f"{backend}-{offers}-{schema_hash()}"


def prepare_sqlite(offers: int, rebuild: bool) -> tuple[str, dict[str, Any], bool]:
    name = cache_name("sqlite", offers)
    path = CACHE / f"{name}.db"
    meta_path = CACHE / f"{name}.json"
    if path.exists() and meta_path.exists() and not rebuild:
        return f"sqlite+aiosqlite:///{path}", json.loads(meta_path.read_text()), True
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"{name}.building.db"
    # Older builds of this size (another schema) go: a million offers take over a gigabyte.
    stale = [p for p in CACHE.glob(f"sqlite-{offers}-*") if p.suffix in (".db", ".json")]
    for file in [*_sqlite_files(tmp), *_sqlite_files(path), meta_path, *stale]:
        file.unlink(missing_ok=True)
    log(f"building SQLite marketplane with {offers:,} offers in {tmp}")
    meta = asyncio.run(build_marketplace(f"sqlite+aiosqlite:///{tmp}", offers))
    started = time.perf_counter()
    with sqlite3.connect(tmp) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    meta["finish_seconds"] = round(time.perf_counter() - started, 2)
    meta["finish"] = "wal_checkpoint(TRUNCATE)"
    for src, dst in zip(_sqlite_files(tmp), _sqlite_files(path), strict=True):
        if src.exists():
            os.replace(src, dst)
    meta["bytes"] = path.stat().st_size
    meta_path.write_text(json.dumps(meta, indent=2))
    return f"sqlite+aiosqlite:///{path}", meta, False


async def _pg_offer_count(database: str) -> int | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(f"{PG_SERVER}/{database}")
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        return int(await conn.fetchval("SELECT count(*) FROM offers"))
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def _pg_admin(*statements: str, database: str = "postgres") -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG_SERVER}/{database}")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _pg_databases(prefix: str) -> list[str]:
    """Bench databases of this size: `prefix` itself and `prefix_<schema>`."""
    import asyncpg

    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database")
    finally:
        await conn.close()
    names = [r["datname"] for r in rows]
    return [n for n in names if n == prefix or n.startswith(prefix + "_")]


async def _pg_size(database: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(f"{PG_SERVER}/{database}")
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


def prepare_postgres(offers: int, rebuild: bool) -> tuple[str, dict[str, Any], bool]:
    name = cache_name("postgres", offers)
    database = f"marketplane_bench_{offers}_{name.rsplit('-', 1)[1]}"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    meta_path = CACHE / f"{name}.json"
    if meta_path.exists() and not rebuild and asyncio.run(_pg_offer_count(database)) == offers:
        return url, json.loads(meta_path.read_text()), True
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"postgres-{offers}*.json"):
        stale.unlink()
    older = asyncio.run(_pg_databases(f"marketplane_bench_{offers}"))
    asyncio.run(
        _pg_admin(
            *(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)" for db in {*older, database}),
            f"CREATE DATABASE {database}",
        )
    )
    log(f"building PostgreSQL marketplane with {offers:,} offers in database {database}")
    meta = asyncio.run(build_marketplace(url, offers))
    # Settle the statistics and the visibility map now rather than leave it to autovacuum
    # sometime during the measurement.
    started = time.perf_counter()
    asyncio.run(_pg_admin("VACUUM (ANALYZE)", database=database))
    meta["finish_seconds"] = round(time.perf_counter() - started, 2)
    meta["finish"] = "VACUUM (ANALYZE)"
    meta["bytes"] = asyncio.run(_pg_size(database))
    meta_path.write_text(json.dumps(meta, indent=2))
    return url, meta, False


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server subprocess on 127.0.0.1, ready once `/readyz` answers 200."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def running(name: str, argv: list[str], env: dict[str, str], port: int) -> Iterator[Server]:
    server = Server(name, argv, env, port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def marketplane_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLANE_")}
    env.update(
        MARKETPLANE_DATABASE_URL=url,
        MARKETPLANE_WORKERS="1",
        MARKETPLANE_LOG_LEVEL="warning",
        MARKETPLANE_ACCESS_LOG="false",
    )
    return env


# --- the request mix ----------------------------------------------------------------------------


def first_pages(seed: int = 20_240) -> list[tuple[str, str, dict[str, str]]]:
    """(kind, client, query) for the first pages of the mix; see bench/search.lua."""
    from marketplane.demo import data

    rng = random.Random(seed)
    adjectives = [a.title() for a in data.ADJECTIVES]
    nouns = [n.title() for n in data.NOUNS]

    def author() -> str:
        return f"{rng.choice(data.FIRST)} {rng.choice(data.LAST)}"

    pages: list[tuple[str, str, dict[str, str]]] = []
    for _ in range(24):
        pages += [
            ("text", "web", {"q": f"{rng.choice(adjectives)} {rng.choice(nouns)}"}),
            ("word", "web", {"q": rng.choice(nouns + data.CITIES)}),
            ("author", "web", {"q": author()}),
            (
                "text+cat",
                "web",
                {"q": rng.choice(nouns), "category": "books", "sort": "newest"},
            ),
            ("browse", "web", {"category": rng.choice(("books", "stays"))}),
            (
                "cat+price",
                "web",
                rng.choice(
                    (
                        {"category": "stays", "sort": "price"},
                        {"category": "books", "sort": "-price"},
                    )
                ),
            ),
            (
                "price",
                "web",
                {
                    "category": "books",
                    "price_min": str(low := rng.randrange(500, 4000, 100)),
                    "price_max": str(low + 500),
                    "sort": "price",
                },
            ),
            ("attr", "web", {"category": "books", "attr.author": author()}),
            (
                "attr+range",
                "web",
                {
                    "category": "stays",
                    "attr.city": rng.choice(data.CITIES),
                    "attr.nights_min": "3",
                    "sort": "price",
                },
            ),
            (
                "text+attr",
                "web",
                {"q": rng.choice(data.STAY_KINDS), "attr.city": rng.choice(data.CITIES)},
            ),
            (
                "restricted",
                "travel",
                rng.choice(
                    (
                        {"q": rng.choice(data.CITIES)},
                        {
                            "attr.city": rng.choice(data.CITIES),
                            "price_max": str(rng.randrange(20_000, 200_000, 10_000)),
                            "sort": "price",
                        },
                    )
                ),
            ),
        ]
    return pages


def build_mix(base: str, keys: dict[str, str], path: Path) -> dict[str, Any]:
    """Asks the API for every first page, adds about half of the second pages, writes wrk's list.

    Returns a summary of the mix and a real 20-item page for the ceiling.
    """
    rng = random.Random(7)
    entries: list[tuple[str, str, str]] = []  # kind, client, target
    empty = 0
    page20: dict[str, Any] | None = None
    with httpx.Client(base_url=base, timeout=60) as client:
        for kind, who, query in first_pages():
            target = f"/store/v1/offers?{urlencode(query)}"
            response = client.get(target, headers={"Authorization": f"Bearer {keys[who]}"})
            if response.status_code != 200:
                raise RuntimeError(f"{target}: {response.status_code} {response.text[:300]}")
            body = response.json()
            entries.append((kind, who, target))
            empty += not body["data"]
            if page20 is None and kind == "browse" and len(body["data"]) == 20:
                page20 = body
            if body["next_cursor"] and rng.random() < 0.5:
                following = f"{target}&{urlencode({'cursor': body['next_cursor']})}"
                check = client.get(following, headers={"Authorization": f"Bearer {keys[who]}"})
                if check.status_code != 200:
                    raise RuntimeError(f"{following}: {check.status_code} {check.text[:300]}")
                entries.append(("next", who, following))
    if page20 is None:
        raise RuntimeError("no 20-item page came back for the ceiling")
    rng.shuffle(entries)
    path.write_text("".join(f"{keys[who]} {target}\n" for _, who, target in entries))
    # The kind of each line, for bench/explain.py.
    path.with_suffix(".kinds.json").write_text(json.dumps([kind for kind, _, _ in entries]))
    kinds: dict[str, int] = {}
    for kind, _, _ in entries:
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"entries": entries, "kinds": kinds, "empty_first_pages": empty, "page20": page20}


def reuse_mix(path: Path) -> dict[str, Any]:
    """The request list a previous run wrote (its cursors stay valid on the same data)."""
    tokens = {}
    kinds = json.loads(path.with_suffix(".kinds.json").read_text())
    entries = []
    for line, kind in zip(path.read_text().splitlines(), kinds, strict=True):
        token, target = line.split(" ", 1)
        who = tokens.setdefault(token, f"key{len(tokens)}")
        entries.append((kind, who, target))
    counts: dict[str, int] = {}
    for kind, _, _ in entries:
        counts[kind] = counts.get(kind, 0) + 1
    return {"entries": entries, "kinds": counts, "keys": {v: k for k, v in tokens.items()}}


def only_kinds(mix: dict[str, Any], kinds: list[str], labels: dict[str, str]) -> dict[str, Any]:
    """The mix cut down to some kinds, in a request list of its own (e.g. the cheap queries
    alone, to see the cost of the request path without the database)."""
    unknown = set(kinds) - set(mix["kinds"])
    if unknown:
        raise SystemExit(f"unknown kinds {sorted(unknown)}; known: {', '.join(mix['kinds'])}")
    entries = [e for e in mix["entries"] if e[0] in kinds]
    path = CACHE / f"requests-only-{'+'.join(sorted(kinds))}.txt"
    path.write_text("".join(f"{labels[who]} {target}\n" for _, who, target in entries))
    counts = {k: v for k, v in mix["kinds"].items() if k in kinds}
    return {**mix, "entries": entries, "kinds": counts, "path": path}


def time_each(
    base: str, keys: dict[str, str], entries: list[tuple[str, str, str]], repeat: int
) -> dict[str, list[tuple[float, str]]]:
    """Each request of the mix alone on one connection: the median of `repeat` runs, by kind."""
    by_kind: dict[str, list[tuple[float, str]]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for kind, who, target in entries:
            headers = {"Authorization": f"Bearer {keys[who]}"}
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                client.get(target, headers=headers).raise_for_status()
                samples.append((time.perf_counter() - started) * 1000)
            by_kind.setdefault(kind, []).append((statistics.median(samples), target))
    return by_kind


def time_ceiling(base: str, count: int = 200) -> float:
    with httpx.Client(base_url=base, timeout=60) as client:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            client.get("/store/v1/offers").raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


# --- a supplier writing while the store reads --------------------------------------------------

VARIANTS = ("cache", "no-cache", "cache+writes")
WRITER = "Paper Lane Books"


async def writer_setup(url: str, offers: int, per_second: float) -> dict[str, Any]:
    """A new supply key for one supplier and bodies of offers it already has (the load's first
    ones, regenerated by the same plan), for `writing`."""
    from marketplane.access import service as access
    from marketplane.bootstrap import build
    from marketplane.demo.build import offer_plan
    from marketplane.settings import Settings

    platform = build(Settings(database_url=url))
    try:
        async with platform.uow() as uow:
            found = await access.list_suppliers(uow, status=None, before=None, limit=100)
            supplier = next(s for s in found if s.name == WRITER)
            _, key = await access.issue_key(uow, owner_type="supplier", owner_id=supplier.id)
            await uow.commit()
    finally:
        await platform.close()
    drafts = next(d for n, d in offer_plan(offers) if n == WRITER)
    bodies = []
    for draft in itertools.islice(drafts, 200):
        bodies.append(
            (
                draft.sku,
                {
                    "category": draft.category,
                    "title": draft.title,
                    "description": draft.description,
                    "price": {"amount": draft.price_amount, "currency": draft.price_currency},
                    "quantity": draft.quantity,
                    "attributes": draft.attributes,
                },
            )
        )
    return {"key": key, "bodies": bodies, "per_second": per_second}


@contextmanager
def writing(base: str, writer: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """While the block runs, a thread changes one offer's price `per_second` times a second
    through the supply API: every write commits, so every write ends what the cache holds."""
    counts: dict[str, Any] = {"per_second": writer["per_second"], "done": 0, "failed": 0}
    stop = threading.Event()

    def run() -> None:
        headers = {"Authorization": f"Bearer {writer['key']}"}
        interval = 1 / writer["per_second"]
        step = 0
        with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
            next_at = time.monotonic()
            while not stop.is_set():
                sku, body = writer["bodies"][step % len(writer["bodies"])]
                price = dict(body["price"], amount=body["price"]["amount"] + 1 + step % 7)
                response = client.put(f"/supply/v1/offers/{sku}", json=dict(body, price=price))
                counts["done" if response.status_code < 300 else "failed"] += 1
                step += 1
                next_at += interval
                stop.wait(max(0.0, next_at - time.monotonic()))

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join()
        counts["achieved_per_s"] = round(counts["done"] / (time.monotonic() - started), 1)


# --- wrk ----------------------------------------------------------------------------------------


def wrk(
    base: str,
    requests: Path,
    connections: int,
    duration: float,
    threads: int,
    script: Path = LUA,
) -> dict[str, Any]:
    """One wrk run of `script` with `requests` as its argument (bench/orders.py uses its own
    script, whose counts by status come back as `statuses`)."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
        "--",
        str(requests),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    found = [line for line in done.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if not found:
        raise RuntimeError(f"wrk printed no figures:\n{done.stdout}\n{done.stderr}")
    raw: dict[str, Any] = json.loads(found[-1][len("WRK_JSON ") :])
    seconds = raw["duration_us"] / 1e6
    socket_errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors"))
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "mean_ms": round(raw["mean_us"] / 1000, 2),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "p999_ms": round(raw["p999_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "non_2xx": raw["status_errors"],
        "socket_errors": socket_errors,
        "timeouts": raw["timeouts"],
        "mb_per_s": round(raw["bytes"] / seconds / 1e6, 2),
        **({"statuses": raw["statuses"]} if "statuses" in raw else {}),
    }


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).split("Copyright")[0].strip()


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    log("wrk is missing: installing the Debian package")
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)


# --- profiling ----------------------------------------------------------------------------------


def profile(
    server: Server, base: str, requests: Path, duration: float, out: Path, script: Path = LUA
) -> Path | None:
    """py-spy (if installed) on the server during one c16 run; raw collapsed stacks to `out`."""
    recorder = start_py_spy(server.process.pid, duration, out)
    if recorder is None:
        return None
    wrk(base, requests, 16, duration, 1, script=script)
    return finish_py_spy(recorder, duration, out)


def start_py_spy(pid: int, duration: float, out: Path) -> subprocess.Popen[str] | None:
    """py-spy recording `pid` for `duration` seconds (raw stacks to `out`), started a second
    ago; None when it is not installed."""
    py_spy = shutil.which("py-spy") or (str(BIN / "py-spy") if (BIN / "py-spy").exists() else None)
    if py_spy is None:
        log("py-spy is not installed (.venv/bin/pip install py-spy): no profile")
        return None
    recorder = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--threads",
            "--nonblocking",
            "--duration",
            str(int(duration)),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    return recorder


def finish_py_spy(recorder: subprocess.Popen[str], duration: float, out: Path) -> Path | None:
    _, err = recorder.communicate(timeout=duration + 60)
    if recorder.returncode != 0 or not out.exists():
        log(f"py-spy failed: {err.strip()[-500:]}")
        return None
    return out


def keep_profile(path: Path) -> dict[str, Any]:
    """Summarises py-spy's raw stacks next to them and gzips them (for a flame graph); returns
    the figures and paths for the `profile` line."""
    summary = summarise_profile(path)
    summary_path = path.with_suffix(".summary.json")
    summary_path.write_text(json.dumps(summary, indent=2))
    packed = path.with_suffix(".txt.gz")
    packed.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return {
        "samples": summary["samples"],
        "threads": summary["threads"],
        "raw": str(packed.relative_to(ROOT)),
        "summary": str(summary_path.relative_to(ROOT)),
    }


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Where the samples went: per thread, and inclusive shares of the frames that matter."""
    threads: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    self_time: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = _thread_role(frames)
        threads[thread] = threads.get(thread, 0) + count
        total += count
        seen = set()
        for frame in frames[1:]:
            name = frame.split(" (")[0] + " " + _module_of(frame)
            if name not in seen:
                seen.add(name)
                inclusive[name] = inclusive.get(name, 0) + count
        if len(frames) > 1:
            leaf = frames[-1].split(" (")[0] + " " + _module_of(frames[-1])
            self_time[leaf] = self_time.get(leaf, 0) + count

    def share(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda item: -item[1])[:top]
        return [(name, round(100 * count / total, 1)) for name, count in ranked]

    return {
        "samples": total,
        "threads": {k: round(100 * v / total, 1) for k, v in threads.items()},
        "inclusive": share(inclusive),
        "self": share(self_time),
    }


def _thread_role(frames: list[str]) -> str:
    """event loop, aiosqlite worker running SQL / waiting for work, or another thread."""
    joined = ";".join(frames)
    if "MainThread" in frames[0]:
        return "event loop"
    if "_connection_worker_thread (aiosqlite/core.py:59)" in joined:
        return "aiosqlite worker: waiting"
    if "_connection_worker_thread" in joined:
        return "aiosqlite worker: running"
    return "other"


def _module_of(frame: str) -> str:
    start = frame.find("(")
    if start < 0:
        return ""
    where = frame[start + 1 :].rstrip(")")
    parts = where.split("/")
    return "(" + "/".join(parts[-2:]) + ")"


# --- the run ------------------------------------------------------------------------------------


def postgres_cpu() -> float:
    """CPU seconds the PostgreSQL server's processes have used, the ones that ended included
    (the postmaster's reaped children): a difference of two readings is the server's work in
    between, connections that closed meanwhile counted."""
    total = 0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() != "postgres":
                continue
            fields = (comm.parent / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def git_commit() -> str | None:
    """The checked-out commit, read from .git (no git command is run)."""
    head = ROOT / ".git" / "HEAD"
    if not head.exists():
        return None
    ref = head.read_text().strip()
    if not ref.startswith("ref: "):
        return ref
    name = ref[5:]
    loose = ROOT / ".git" / name
    if loose.exists():
        return loose.read_text().strip()
    packed = ROOT / ".git" / "packed-refs"
    if packed.exists():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + name):
                return line.split(" ")[0]
    return None


def bench_backend(backend: str, args: argparse.Namespace, out: Output) -> list[dict[str, Any]]:
    started = time.perf_counter()
    prepare = prepare_sqlite if backend == "sqlite" else prepare_postgres
    url, meta, cached = prepare(args.offers, args.rebuild)
    out.emit(
        {
            "bench": "load",
            "backend": backend,
            "offers": meta["offers"],
            "cached": cached,
            "load_seconds": meta["load_seconds"],
            "offers_per_s": round(meta["offers"] / meta["load_seconds"], 1),
            "setup_seconds": meta["setup_seconds"],
            "analyze_during_load": meta.get("analyze_during_load"),
            "finish": meta["finish"],
            "finish_seconds": meta["finish_seconds"],
            "database_mb": round(meta["bytes"] / 1e6, 1),
            "batch": BATCH,
            "path": "catalog.service.upsert_offers in platform.uow(), one commit per batch",
        }
    )
    if args.load_only:
        return []
    keys = meta["keys"]
    name = cache_name(backend, args.offers)
    requests = CACHE / f"requests-{name}.txt"
    page_path = CACHE / f"page-20-{name}.json"
    code_before = src_hash()
    connections = [int(c) for c in args.connections.split(",")]
    search: dict[tuple[str, int], dict[str, Any]] = {}
    writes: dict[str, dict[str, Any]] = {}
    ceiling: dict[int, dict[str, Any]] = {}
    by_kind: dict[str, list[tuple[float, str]]] = {}
    mix: dict[str, Any] = {}
    writer = None
    if args.writes_per_s:
        writer = asyncio.run(writer_setup(url, args.offers, args.writes_per_s))
    profile_path = None
    for variant in VARIANTS:
        if variant == "cache+writes" and writer is None:
            continue
        port = free_port()
        argv = [str(BIN / "marketplane"), "serve", "--port", str(port)]
        env = marketplane_env(url)
        if variant == "no-cache":
            env["MARKETPLANE_STORE_CACHE_MB"] = "0"
        log(f"{backend} [{variant}]: starting {' '.join(argv[1:])} on 127.0.0.1:{port}")
        with running(f"marketplane-{backend}-{variant}", argv, env, port) as server:
            if not mix:
                if args.reuse_mix and requests.exists() and page_path.exists():
                    mix = reuse_mix(requests)
                else:
                    mix = build_mix(server.base, keys, requests)
                    page_path.write_bytes(json.dumps(mix["page20"]).encode())
                labels = mix.get("keys", keys)
                if args.kinds:
                    mix = only_kinds(mix, args.kinds.split(","), labels)
                    requests = mix["path"]
                log(f"{backend}: mix of {len(mix['entries'])} requests {mix['kinds']}")
            if variant == "no-cache" and args.repeat:
                # Alone, each request computed (a cached answer would time the cache).
                by_kind = time_each(server.base, labels, mix["entries"], args.repeat)
            log(f"{backend} [{variant}]: warming up ({args.warmup:g}s)")
            wrk(server.base, requests, connections[0], args.warmup, args.threads)
            for c in connections:
                log(f"{backend} [{variant}]: wrk -c{c} for {args.duration:g}s")
                if variant == "cache+writes":
                    assert writer is not None
                    with writing(server.base, writer) as counts:
                        search[variant, c] = wrk(
                            server.base, requests, c, args.duration, args.threads
                        )
                    writes[f"{variant}/{c}"] = counts
                else:
                    search[variant, c] = wrk(server.base, requests, c, args.duration, args.threads)
                log(f"{backend} [{variant}]: c{c} {search[variant, c]}")
            if args.profile and variant == "no-cache":
                label = "".join(f"-{value.replace(',', '+')}" for value in (args.kinds,) if value)
                when = datetime.now(UTC).strftime("%Y-%m-%dT%H%M")
                raw_path = RESULTS / f"profile-{backend}-{args.offers}{label}-{when}.txt"
                log(f"{backend}: py-spy during one more c16 run")
                profile_path = profile(server, server.base, requests, args.duration, raw_path)
    ceiling_port = free_port()
    ceiling_argv = [
        sys.executable,
        str(HERE / "ceiling.py"),
        "--page",
        str(page_path),
        "--port",
        str(ceiling_port),
    ]
    log(f"{backend}: starting the ceiling on 127.0.0.1:{ceiling_port}")
    with running(f"ceiling-{backend}", ceiling_argv, dict(os.environ), ceiling_port) as server:
        ceiling_alone_ms = time_ceiling(server.base) if by_kind else 0.0
        wrk(server.base, requests, connections[0], min(args.warmup, 3), args.threads)
        for c in connections:
            ceiling[c] = wrk(server.base, requests, c, args.duration, args.threads)
            log(f"{backend}: ceiling c{c} {ceiling[c]}")

    common: dict[str, Any] = {"backend": backend, "offers": args.offers}
    if args.kinds:
        common["kinds"] = args.kinds
    if src_hash() != code_before:
        log(f"{backend}: src/ changed during the run: these figures may mix two versions")
        common["src_changed_during_run"] = True
    records = []
    for c in connections:
        out.emit(
            {
                "bench": "ceiling",
                **common,
                "connections": c,
                "threads": args.threads,
                "duration_s": args.duration,
                **ceiling[c],
            }
        )
    for (variant, c), mine in search.items():
        top = ceiling[c]
        ratio = round(mine["rps"] / top["rps"], 3)
        record = {
            "bench": "search",
            **common,
            "variant": variant,
            "store_cache": variant != "no-cache",
            "connections": c,
            "threads": args.threads,
            "duration_s": args.duration,
            "rps": mine["rps"],
            "p50_ms": mine["p50_ms"],
            "p90_ms": mine["p90_ms"],
            "p99_ms": mine["p99_ms"],
            "max_ms": mine["max_ms"],
            "mean_ms": mine["mean_ms"],
            "requests": mine["requests"],
            "distinct_requests": len(mix["entries"]),
            "errors": mine["non_2xx"] + mine["socket_errors"] + mine["timeouts"],
            "non_2xx": mine["non_2xx"],
            "ceiling_rps": top["rps"],
            "ceiling_p50_ms": top["p50_ms"],
            "ceiling_p99_ms": top["p99_ms"],
            "ratio": ratio,
        }
        if f"{variant}/{c}" in writes:
            record["writes"] = writes[f"{variant}/{c}"]
        if c == 16:
            record["target"] = {"p99_ms": TARGET_P99_MS, "ratio": TARGET_RATIO}
            record["target_met"] = mine["p99_ms"] <= TARGET_P99_MS and ratio >= TARGET_RATIO
        out.emit(record)
        records.append(record)
    for kind, timed in sorted(by_kind.items()):
        values = sorted(ms for ms, _ in timed)
        slowest = max(timed)
        out.emit(
            {
                "bench": "search-alone",
                **common,
                "kind": kind,
                "distinct_requests": len(values),
                "share": round(mix["kinds"][kind] / len(mix["entries"]), 3),
                "median_ms": round(statistics.median(values), 2),
                "p90_ms": round(values[int(0.9 * (len(values) - 1))], 2),
                "max_ms": round(slowest[0], 2),
                "slowest": slowest[1],
                "ceiling_ms": round(ceiling_alone_ms, 2),
                "ratio": round(statistics.median(values) / ceiling_alone_ms, 1),
            }
        )
    if profile_path is not None:
        out.emit({"bench": "profile", **common, **keep_profile(profile_path)})
    log(f"{backend}: done in {time.perf_counter() - started:,.0f}s")
    return records


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Store search under wrk load, next to a bare FastAPI ceiling."
    )
    parser.add_argument("--offers", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--duration", type=float, default=15, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of wrk before measuring")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores here)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="times each request is timed alone (0: skip)"
    )
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached marketplace")
    parser.add_argument("--load-only", action="store_true", help="build (or check) and stop")
    parser.add_argument("--profile", action="store_true", help="py-spy the server (extra run)")
    parser.add_argument(
        "--reuse-mix", action="store_true", help="replay the request list of the last run"
    )
    parser.add_argument(
        "--kinds", help="only these kinds of the mix, e.g. browse,price,cat+price (see search.lua)"
    )
    parser.add_argument(
        "--writes-per-s",
        type=float,
        default=10,
        help="offer changes a second during the cache+writes run (0: skip that run)",
    )
    parser.add_argument("--out", type=Path, help="JSON lines file (default bench/results/…)")
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    out = Output(args.out or RESULTS / f"search-{stamp}.jsonl")
    ensure_wrk()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    out.emit(
        {
            "bench": "meta",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([".venv/bin/python", "bench/search.py", *sys.argv[1:]]),
            "commit": git_commit(),
            "src": src_hash(),
            "schema": schema_hash(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "wrk": wrk_version(),
            "offers": args.offers,
            "backends": backends,
        }
    )
    for backend in backends:
        for record in bench_backend(backend, args, out):
            if backend == "sqlite" and "target_met" in record:
                verdict = "met" if record["target_met"] else "missed"
                log(f"SQLite c16 [{record['variant']}]: target {verdict}")
    log(f"results: {out.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
