"""Order placement under load, next to the bare conditional decrement measured in the same run.

What it does, per configuration (SQLite with one `serve` process; PostgreSQL with one, and with
`--workers 2`), each on a fresh database:

1. `marketplane init`, `marketplane serve` on 127.0.0.1 (its feed worker on, as by default: it
   also sweeps orders; `MARKETPLANE_ORDER_HOLD_SECONDS` 86400 so no order expires during the run
   and none is released), a books category, an approved supplier and a client without markup
   (`bench/freshness.py`'s set-up), and `--offers` + 1 books of 10^9 units each through
   `POST /supply/v1/offers/batch`, 1,000 a request. The first is the hot offer, the others the
   spread.
2. **hot**: wrk places orders of 1 unit of the hot offer (`bench/orders.lua`: a unique
   `Idempotency-Key` a request), warm-up then `--connections` (16, 64) for `--duration` seconds
   each. **spread**: the same, each order 1 unit of an offer drawn uniformly from the spread.
   Orders stay placed (unpaid). After each wrk run, a wait until the server has finished what
   wrk left in flight; on PostgreSQL then `VACUUM (ANALYZE)` (not timed), as autovacuum would:
   it is off on this server.
3. The server stops; the database is checked directly: stock conserved, reserved units equal to
   the order lines, and to the 201s wrk counted (plus at most the requests still in flight when
   each wrk run stopped: the server finishes them, wrk never reads the answer).
4. **Baseline**, the server stopped, on the same database: the bare conditional decrement
   `UPDATE offers SET quantity = quantity - 1, reserved = reserved + 1 WHERE id = ? AND
   quantity >= 1`, one statement a transaction (autocommit), one connection, in a loop for
   `--baseline-duration` seconds: the hot offer each time, then a random spread offer each time.
   SQLite: the `sqlite3` module with the server's pragmas (WAL, synchronous=NORMAL, …).
   PostgreSQL: asyncpg on uvloop.

Lines: `meta`, then per configuration `orders-load`, `orders-baseline` (per case), `orders` (per
case and connection count: orders/s of 201s, latency, non-2xx, the baseline and `ratio`, CPU by
role), `profile` (with `--profile`) and `orders-check`. Exits 1 if a check fails.

The worker stays on because `serve` runs it: its order sweep finds nothing due (a partial index
on placed orders' `expires_at`, every 5 s), but on PostgreSQL every commit's NOTIFY wakes its
webhook loop; each line's `cpu.worker` shows what that costs (`--no-worker` leaves it out).

    .venv/bin/python bench/orders.py                     # SQLite, PostgreSQL 1 and 2 processes
    .venv/bin/python bench/orders.py --backends sqlite --duration 3 --warmup 1 --offers 1000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

from freshness import (
    BASE_PRICE,
    _children,
    _machine,
    _postgres_cpu,
    _proc_cpu,
    init,
    load_offers,
    setup_marketplace,
)
from marketplane.db.engine import SQLITE_PRAGMAS
from search import (
    BIN,
    LOGS,
    PG_SERVER,
    Output,
    Server,
    _pg_admin,
    ensure_wrk,
    finish_py_spy,
    free_port,
    git_commit,
    keep_profile,
    log,
    marketplane_env,
    running,
    src_hash,
    start_py_spy,
    wrk,
    wrk_version,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LUA = HERE / "orders.lua"
STOCK = 10**9
HOLD_SECONDS = 86_400
PG_DATABASE = "marketplane_bench_orders"
DECREMENT = (
    "UPDATE offers SET quantity = quantity - 1, reserved = reserved + 1 "
    "WHERE id = {} AND quantity >= 1"
)
CASES = ("hot", "spread")
_runs = itertools.count()


# --- the database ----------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, workdir: Path, keep: bool) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'orders.db'}"
        return
    drop = f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"
    asyncio.run(_pg_admin(drop, f"CREATE DATABASE {PG_DATABASE}"))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DATABASE}"
    finally:
        if not keep:
            asyncio.run(_pg_admin(drop))


def sqlite_path(url: str) -> str:
    return url.split("///", 1)[1]


async def pg_settings() -> dict[str, str]:
    """What bounds a commit-heavy load: durability settings, and whether autovacuum runs."""
    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        names = ("server_version", "autovacuum", "fsync", "synchronous_commit", "shared_buffers")
        return {name: str(await conn.fetchval(f"SHOW {name}")) for name in names}
    finally:
        await conn.close()


# --- CPU by role ------------------------------------------------------------------------------


def _roles(pid: int) -> dict[str, list[int]]:
    """The serve process and its children: the feed worker (`marketplane worker --parent`), and
    the rest (uvicorn's worker processes with --workers)."""
    found: dict[str, list[int]] = {"server": [pid], "worker": []}
    for child in _children(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        found["worker" if b"worker" in argv and b"--parent" in argv else "server"].append(child)
    return found


def cpu_snapshot(pid: int) -> dict[str, Any]:
    return {
        "at": time.perf_counter(),
        "roles": {role: sum(map(_proc_cpu, pids)) for role, pids in _roles(pid).items()},
        "wrk": resource.getrusage(resource.RUSAGE_CHILDREN),
        "postgres": _postgres_cpu(),
        "machine": _machine(),
    }


def cpu_used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds a second (1.0 = one core) over the interval, by role, and the whole machine's
    busy cores out of os.cpu_count()."""
    seconds = after["at"] - before["at"]
    wrk_cpu = sum(
        getattr(after["wrk"], f) - getattr(before["wrk"], f) for f in ("ru_utime", "ru_stime")
    )
    busy = after["machine"][0] - before["machine"][0]
    total = after["machine"][1] - before["machine"][1]
    return {
        **{
            role: round((after["roles"][role] - before["roles"][role]) / seconds, 2)
            for role in before["roles"]
        },
        "postgres": round((after["postgres"] - before["postgres"]) / seconds, 2),
        "wrk": round(wrk_cpu / seconds, 2),
        "machine_busy": round((os.cpu_count() or 1) * busy / total, 2) if total else None,
    }


# --- placing orders -------------------------------------------------------------------------


def write_plan(path: Path, client_key: str, offer_ids: list[str]) -> Path:
    """The plan file bench/orders.lua reads; a new Idempotency-Key prefix each time."""
    prefix = f"bench-{os.getpid()}-{next(_runs)}-{random.randrange(16**8):08x}"
    path.write_text("\n".join([client_key, prefix, str(BASE_PRICE), *offer_ids]) + "\n")
    return path


def place_one(base: str, client_key: str, offer_id: str) -> None:
    """One order before the load: a clear error now rather than a wall of non-2xx later."""
    response = httpx.post(
        f"{base}/store/v1/orders",
        json={
            "customer_ref": "bench-first",
            "lines": [
                {
                    "offer": offer_id,
                    "quantity": 1,
                    "unit_price": {"amount": BASE_PRICE, "currency": "EUR"},
                }
            ],
        },
        headers={"Authorization": f"Bearer {client_key}", "Idempotency-Key": "bench-first"},
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"placing one order: {response.status_code} {response.text[:500]}")


def placed(result: dict[str, Any]) -> int:
    return int(result["statuses"].get("201", 0))


def count_orders(backend: str, url: str) -> int:
    if backend == "sqlite":
        conn = sqlite3.connect(sqlite_path(url))
        try:
            return int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])
        finally:
            conn.close()

    async def count() -> int:
        conn = await asyncpg.connect(f"{PG_SERVER}/{PG_DATABASE}")
        try:
            return int(await conn.fetchval("SELECT count(*) FROM orders"))
        finally:
            await conn.close()

    return asyncio.run(count())


def drain(backend: str, url: str, limit: float = 60) -> float:
    """Waits until the server has finished the requests wrk left in flight (it completes them
    after wrk has gone): no new order for three polls in a row. Returns the seconds waited."""
    started = time.perf_counter()
    last, still = count_orders(backend, url), 0
    while still < 3 and time.perf_counter() - started < limit:
        time.sleep(0.25)
        now = count_orders(backend, url)
        still = still + 1 if now == last else 0
        last = now
    return round(time.perf_counter() - started, 2)


def run_wrk(
    server: Server, plan: Path, connections: int, duration: float, threads: int
) -> dict[str, Any]:
    before = cpu_snapshot(server.process.pid)
    result = wrk(server.base, plan, connections, duration, threads, script=LUA)
    result["cpu"] = cpu_used(before, cpu_snapshot(server.process.pid))
    return result


def profile_hot(
    server: Server, label: str, workdir: Path, client_key: str, hot: str, args: argparse.Namespace
) -> tuple[int, dict[str, Any] | None]:
    """One more hot c16 run with py-spy on the server process; returns the orders it placed and
    the `profile` line's figures (None without py-spy)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M")
    raw = RESULTS / f"profile-orders-{label}-hot-c16-{stamp}.txt"
    recorder = start_py_spy(server.process.pid, args.duration, raw)
    log(f"{label} hot: wrk c16 for {args.duration:g}s under py-spy")
    plan = write_plan(workdir / "plan-profile.txt", client_key, [hot])
    result = run_wrk(server, plan, 16, args.duration, args.threads)
    if recorder is None or finish_py_spy(recorder, args.duration, raw) is None:
        return placed(result), None
    return placed(result), {
        "case": "hot",
        "connections": 16,
        "orders_per_s": round(placed(result) / args.duration, 1),
        **keep_profile(raw),
    }


# --- the baseline: the bare statement ------------------------------------------------------


def _figures(times_ns: list[int], seconds: float) -> dict[str, Any]:
    cuts = statistics.quantiles(times_ns, n=100) if len(times_ns) > 1 else times_ns * 99
    return {
        "statements": len(times_ns),
        "per_s": round(len(times_ns) / seconds, 1),
        "p50_ms": round(cuts[49] / 1e6, 3),
        "p99_ms": round(cuts[98] / 1e6, 3),
        "max_ms": round(max(times_ns) / 1e6, 3),
    }


def baseline_sqlite(path: str, pick: Callable[[], str], seconds: float) -> dict[str, Any]:
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit: a transaction a statement
    try:
        for pragma in (*SQLITE_PRAGMAS, "PRAGMA mmap_size=0"):  # as the server's writer
            conn.execute(pragma)
        statement = DECREMENT.format("?")
        times: list[int] = []
        clock = time.perf_counter_ns
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            offer_id = pick()
            began = clock()
            if conn.execute(statement, (offer_id,)).rowcount != 1:
                raise RuntimeError(f"the decrement of {offer_id} changed no row")
            times.append(clock() - began)
        return _figures(times, time.perf_counter() - started)
    finally:
        conn.close()


async def _baseline_postgres(pick: Callable[[], str], seconds: float) -> dict[str, Any]:
    conn = await asyncpg.connect(f"{PG_SERVER}/{PG_DATABASE}")
    try:
        statement = await conn.prepare(DECREMENT.format("$1"))
        times: list[int] = []
        clock = time.perf_counter_ns
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            offer_id = pick()
            began = clock()
            await statement.fetch(offer_id)
            times.append(clock() - began)
            if statement.get_statusmsg() != "UPDATE 1":
                raise RuntimeError(f"the decrement of {offer_id} changed no row")
        return _figures(times, time.perf_counter() - started)
    finally:
        await conn.close()


def baseline_postgres(pick: Callable[[], str], seconds: float) -> dict[str, Any]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_baseline_postgres(pick, seconds))


def baseline(backend: str, url: str, case: str, ids: dict[str, Any], seconds: float) -> Any:
    if case == "hot":
        hot: str = ids["hot"]

        def pick() -> str:
            return hot
    else:
        spread: list[str] = ids["spread"]
        choose = random.Random(2026).choice

        def pick() -> str:
            return choose(spread)

    if backend == "sqlite":
        return baseline_sqlite(sqlite_path(url), pick, seconds)
    return baseline_postgres(pick, seconds)


# --- the check ------------------------------------------------------------------------------


STOCK_SQL = (
    "SELECT count(*), coalesce(sum(quantity), 0), coalesce(sum(reserved), 0), "
    "coalesce(sum(sold), 0) FROM offers WHERE id {}"
)
LINES_SQL = "SELECT count(*), coalesce(sum(quantity), 0) FROM order_lines WHERE offer_id {}"
ORDERS_SQL = "SELECT status, count(*) FROM orders GROUP BY status"


def _sqlite_counts(path: str, ids: dict[str, Any]) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        found: dict[str, Any] = {}
        for case, where, params in (
            ("hot", "= ?", [ids["hot"]]),
            ("spread", "!= ?", [ids["hot"]]),
        ):
            found[case] = {
                "offers": conn.execute(STOCK_SQL.format(where), params).fetchone(),
                "lines": conn.execute(LINES_SQL.format(where), params).fetchone(),
            }
        found["orders"] = dict(conn.execute(ORDERS_SQL).fetchall())
        return found
    finally:
        conn.close()


async def _pg_counts(ids: dict[str, Any]) -> dict[str, Any]:
    conn = await asyncpg.connect(f"{PG_SERVER}/{PG_DATABASE}")
    try:
        found: dict[str, Any] = {}
        for case, where in (("hot", "= $1"), ("spread", "!= $1")):
            found[case] = {
                "offers": tuple(await conn.fetchrow(STOCK_SQL.format(where), ids["hot"])),
                "lines": tuple(await conn.fetchrow(LINES_SQL.format(where), ids["hot"])),
            }
        found["orders"] = {r[0]: r[1] for r in await conn.fetch(ORDERS_SQL)}
        return found
    finally:
        await conn.close()


def check(
    backend: str, url: str, ids: dict[str, Any], counted: dict[str, int], unseen: dict[str, int]
) -> dict[str, Any]:
    """Conservation per case, read from the database once the server has stopped. `counted`:
    the 201s seen per case (wrk's and the first order's); `unseen`: how many requests at most
    were in flight when a wrk run stopped (the server completes them, wrk never counts them)."""
    counts = (
        _sqlite_counts(sqlite_path(url), ids)
        if backend == "sqlite"
        else asyncio.run(_pg_counts(ids))
    )
    line: dict[str, Any] = {"orders_by_status": counts["orders"]}
    ok = True
    for case in CASES:
        offers, quantity, reserved, sold = (int(v) for v in counts[case]["offers"])
        lines, line_units = (int(v) for v in counts[case]["lines"])
        given = offers * STOCK
        facts = {
            "offers": offers,
            "stock_given": given,
            "quantity": quantity,
            "reserved": reserved,
            "sold": sold,
            "order_lines": lines,
            "line_units": line_units,
            "created_seen": counted[case],
            "in_flight_at_stop_max": unseen[case],
        }
        facts["conserved"] = quantity + reserved + sold == given
        facts["reserved_is_lines"] = reserved == line_units == lines
        facts["reserved_vs_201"] = reserved - counted[case]
        facts["reserved_matches_201"] = 0 <= reserved - counted[case] <= unseen[case]
        ok = ok and facts["conserved"] and facts["reserved_is_lines"]
        ok = ok and facts["reserved_matches_201"]
        line[case] = facts
    total_lines = line["hot"]["order_lines"] + line["spread"]["order_lines"]
    line["orders_are_lines"] = sum(counts["orders"].values()) == total_lines
    line["all_placed"] = set(counts["orders"]) <= {"placed"}
    line["ok"] = ok and line["orders_are_lines"] and line["all_placed"]
    return line


def log_errors(path: Path) -> int:
    """Tracebacks and ERROR lines the server (and its worker) logged."""
    text = path.read_text(errors="replace")
    return sum(1 for line in text.splitlines() if "Traceback" in line or " ERROR" in line)


# --- a configuration ------------------------------------------------------------------------


def server_env(url: str, data_dir: Path, worker: bool) -> dict[str, str]:
    env = marketplane_env(url)
    env.update(
        MARKETPLANE_DATA_DIR=str(data_dir),
        # nothing expires (and is released) during the run: reserved stays what was ordered
        MARKETPLANE_ORDER_HOLD_SECONDS=str(HOLD_SECONDS),
        MARKETPLANE_FEED_WORKER="true" if worker else "false",
    )
    return env


def bench_config(backend: str, workers: int, args: argparse.Namespace, out: Output) -> bool:
    label = f"{backend}-{workers}p"
    common = {"backend": backend, "workers": workers}
    code_before = src_hash()
    connections = [int(c) for c in args.connections.split(",")]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    counted = dict.fromkeys(CASES, 0)
    profile_line: dict[str, Any] | None = None
    unseen = dict.fromkeys(CASES, 0)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orders-")))
        url = stack.enter_context(fresh_database(backend, workdir, args.keep))
        database = PG_DATABASE if backend == "postgres" else None
        env = server_env(url, workdir / "data", not args.no_worker)
        operator = init(env, workdir)
        port = free_port()
        argv = [str(BIN / "marketplane"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        log(f"{label}: starting {' '.join(argv[1:])}")
        with running(f"orders-{label}", argv, env, port) as server:
            keys = setup_marketplace(server.base, operator)
            log(f"{label}: loading {args.offers + 1:,} offers of {STOCK:,} units")
            offers, load_seconds, analyzed = load_offers(
                server.base, keys["supplier"], args.offers + 1, analyze=database, quantity=STOCK
            )
            ids = {"hot": offers[0].id.decode(), "spread": [o.id.decode() for o in offers[1:]]}
            out.emit(
                {
                    "bench": "orders-load",
                    **common,
                    "offers": len(offers),
                    "seconds": round(load_seconds, 1),
                    "offers_per_s": round(len(offers) / load_seconds, 1),
                    "path": "POST /supply/v1/offers/batch, 1,000 offers a request",
                    **({"analyze_during_load": analyzed} if database else {}),
                }
            )
            place_one(server.base, keys["client"], ids["hot"])
            counted["hot"] += 1
            for case in CASES:
                targets = [ids["hot"]] if case == "hot" else ids["spread"]
                runs = [(args.warmup, connections[0], None)] if args.warmup > 0 else []
                runs += [(args.duration, c, c) for c in connections]
                for duration, c, measured in runs:
                    plan = write_plan(workdir / f"plan-{case}.txt", keys["client"], targets)
                    what = f"c{c}" if measured else f"warm-up c{c}"
                    log(f"{label} {case}: wrk {what} for {duration:g}s")
                    result = run_wrk(server, plan, c, duration, args.threads)
                    counted[case] += placed(result)
                    unseen[case] += c
                    log(
                        f"{label} {case} {what}: {placed(result) / duration:,.0f} orders/s, "
                        f"p99 {result['p99_ms']} ms, statuses {result['statuses']}"
                    )
                    result["drain_s"] = drain(backend, url)
                    if measured:
                        results[case, c] = result
                    if set(result["statuses"]) != {"201"} or result["socket_errors"]:
                        log(f"{label} {case} {what}: NOT ONLY 201s; see {server.log_path}")
                    if database:
                        asyncio.run(_pg_admin("VACUUM (ANALYZE)", database=database))
            if args.profile and workers == 1:
                profiled, profile_line = profile_hot(
                    server, label, workdir, keys["client"], ids["hot"], args
                )
                counted["hot"] += profiled
                unseen["hot"] += 16
        log(f"{label}: server stopped; checking the database")
        checked = check(backend, url, ids, counted, unseen)
        checked["server_log_errors"] = log_errors(server.log_path)
        checked["ok"] = checked["ok"] and checked["server_log_errors"] == 0
        bases = {}
        for case in CASES:
            log(f"{label}: baseline {case} ({args.baseline_duration:g}s)")
            bases[case] = baseline(backend, url, case, ids, args.baseline_duration)
            out.emit(
                {
                    "bench": "orders-baseline",
                    **common,
                    "case": case,
                    **bases[case],
                    "statement": DECREMENT.format("?"),
                    "how": "one connection, autocommit (a transaction a statement), "
                    + ("sqlite3, the server's pragmas" if backend == "sqlite" else "asyncpg"),
                }
            )
    changed = src_hash() != code_before
    for (case, c), result in results.items():
        created = placed(result)
        two_xx = sum(n for s, n in result["statuses"].items() if s.startswith("2"))
        # created / wrk's own duration: its requests a second, times the share that were 201
        orders_per_s = round(result["rps"] * created / result["requests"], 1) if created else 0.0
        base = bases[case]
        out.emit(
            {
                "bench": "orders",
                **common,
                "case": case,
                "connections": c,
                "threads": args.threads,
                "duration_s": args.duration,
                "orders": created,
                "orders_per_s": orders_per_s,
                "p50_ms": result["p50_ms"],
                "p90_ms": result["p90_ms"],
                "p99_ms": result["p99_ms"],
                "max_ms": result["max_ms"],
                "requests": result["requests"],
                "non_2xx": result["requests"] - two_xx,
                "statuses": result["statuses"],
                "socket_errors": result["socket_errors"],
                "timeouts": result["timeouts"],
                "baseline_per_s": base["per_s"],
                "baseline_p99_ms": base["p99_ms"],
                "ratio": round(orders_per_s / base["per_s"], 5) if base["per_s"] else None,
                "cpu": result["cpu"],
                "drain_s": result["drain_s"],
                "offers": 1 if case == "hot" else args.offers,
                "src": code_before,
                **({"src_changed_during_run": True} if changed else {}),
            }
        )
    if profile_line:
        out.emit({"bench": "profile", **common, **profile_line})
    out.emit({"bench": "orders-check", **common, **checked})
    if not checked["ok"]:
        log(f"{label}: the conservation check FAILED: {json.dumps(checked)}")
    log(f"{label}: server log in {LOGS}/orders-{label}.log")
    return bool(checked["ok"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Order placement under wrk load (one hot offer; many offers), next to the "
        "bare conditional decrement on the same database."
    )
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="server processes on PostgreSQL, one configuration each (SQLite: always 1)",
    )
    parser.add_argument("--duration", type=float, default=15, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of wrk before each case")
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores here)")
    parser.add_argument("--offers", type=int, default=10_000, help="offers of the spread case")
    parser.add_argument(
        "--baseline-duration", type=float, default=5, help="seconds of each baseline loop"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the server in one more hot c16 run"
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="serve without its worker process (MARKETPLANE_FEED_WORKER=false)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--out", type=Path, help="JSON lines file (default bench/results/…)")
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if not set(backends) <= {"sqlite", "postgres"}:
        parser.error("--backends takes sqlite and/or postgres")
    if args.offers < 2:
        parser.error("--offers must be at least 2")
    chosen = [("sqlite", 1)] if "sqlite" in backends else []
    if "postgres" in backends:
        chosen += [("postgres", int(w)) for w in args.workers.split(",") if w]
    ensure_wrk()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    out = Output(args.out or RESULTS / f"orders-{stamp}.jsonl")
    out.emit(
        {
            "bench": "meta",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([".venv/bin/python", "bench/orders.py", *sys.argv[1:]]),
            "commit": git_commit(),
            "src": src_hash(),
            "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "asyncpg": asyncpg.__version__,
            "wrk": wrk_version(),
            "configs": [f"{b}:{w}p" for b, w in chosen],
            "offers": args.offers,
            "stock": STOCK,
            "order_hold_seconds": HOLD_SECONDS,
            "feed_worker": not args.no_worker,
            "note": "wrk, the server (and its worker) and PostgreSQL share the machine's cores: "
            "see each line's cpu",
            **({"postgres": asyncio.run(pg_settings())} if "postgres" in backends else {}),
        }
    )
    ok = True
    for backend, workers in chosen:
        ok = bench_config(backend, workers, args, out) and ok
    log(f"results: {out.path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
