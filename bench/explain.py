"""Where a search request's time goes in the database: each request of the mix as SQL alone.

For every line of the request list the last bench/search.py run wrote, it calls the real
`catalog.service.search_offers` once (the client's view from its key, as the API does) and
records the SQL it sends, through SQLAlchemy's `before_cursor_execute` on every engine of the
platform. Then it times those statements straight on the database, with their parameters, on a
bare driver connection (sqlite3, or asyncpg with the statement prepared once as the server's
statement cache does): no HTTP, no event loop work, no SQLAlchemy. Per kind it prints the median
SQL time of a request (all its statements, in order) as a JSON line, and on stderr the query
plan of the slowest request's slowest statement.

    .venv/bin/python bench/explain.py --backend sqlite --offers 1000000
    .venv/bin/python bench/explain.py --backend postgres --offers 1000000 --kind word
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA)", re.IGNORECASE)


async def capture(platform: Any, lines: list[str]) -> list[list[tuple[str, tuple[Any, ...]]]]:
    """The statements (and parameters) the service sends for each request line."""
    from sqlalchemy import event

    from marketplane.catalog import service
    from marketplane.catalog.model import SearchRequest, parse_search

    engines = {platform.db.reader.sync_engine, platform.db.writer.sync_engine}
    if getattr(platform.db, "inline", None) is not None:
        engines.add(platform.db.inline)
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def listener(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not _CONTROL.match(statement):
            sent.append((statement, tuple(params or ())))

    for engine in engines:
        event.listen(engine, "before_cursor_execute", listener)
    found = []
    try:
        for line in lines:
            token, target = line.split(" ", 1)
            principal = await platform.auth.authenticate(token)
            parsed = parse_search(parse_qsl(urlsplit(target).query))
            assert isinstance(parsed, SearchRequest), parsed
            sent.clear()
            async with platform.uow(write=False) as uow:
                await service.search_offers(uow, view=principal.client, request=parsed)
            # A read run again off the loop after an inline overrun counts once.
            found.append(list(dict.fromkeys(sent)))
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", listener)
    return found


class Sqlite:
    explain = "EXPLAIN QUERY PLAN "

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        for pragma in ("cache_size=-65536", "mmap_size=1073741824", "temp_store=MEMORY"):
            self.conn.execute(f"PRAGMA {pragma}")

    async def run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    async def plan(self, sql: str, params: tuple[Any, ...]) -> list[str]:
        return [row[3] for row in self.conn.execute(self.explain + sql, params)]


class Postgres:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.prepared: dict[str, Any] = {}

    async def run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        statement = self.prepared.get(sql)
        if statement is None:
            statement = self.prepared[sql] = await self.conn.prepare(sql)
        return list(await statement.fetch(*params))

    async def plan(self, sql: str, params: tuple[Any, ...]) -> list[str]:
        rows = await self.conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params)
        return [row[0] for row in rows]


async def main_async(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from marketplane.bootstrap import build
    from marketplane.settings import Settings
    from search import Output, cache_name, git_commit, src_hash

    name = cache_name(args.backend, args.offers)
    requests = CACHE / f"requests-{name}.txt"
    kinds = json.loads(requests.with_suffix(".kinds.json").read_text())
    pairs = dict(zip(requests.read_text().splitlines(), kinds, strict=True))
    if args.kind:
        pairs = {line: kind for line, kind in pairs.items() if kind == args.kind}
    lines = list(pairs)
    if args.backend == "sqlite":
        path = CACHE / f"{name}.db"
        url = f"sqlite+aiosqlite:///{path}"
        database: Any = Sqlite(path)
    else:
        import asyncpg

        db_name = f"marketplane_bench_{args.offers}_{name.rsplit('-', 1)[1]}"
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db_name}"
        database = Postgres(
            await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{db_name}")
        )
    platform = build(Settings(database_url=url))
    try:
        captured = await capture(platform, lines)
    finally:
        await platform.close()

    out = Output(args.out or HERE / "results" / f"search-sql-{time.strftime('%Y-%m-%d')}.jsonl")
    common = {"backend": args.backend, "offers": args.offers, "commit": git_commit()}
    common["src"] = src_hash()
    by_kind: dict[str, list[tuple[float, str, list[float], list[tuple[str, tuple[Any, ...]]]]]] = {}
    for line, statements in zip(lines, captured, strict=True):
        per_statement: list[list[float]] = [[] for _ in statements]
        deadline = time.perf_counter() + args.seconds
        rounds = 0
        while rounds == 0 or (time.perf_counter() < deadline and rounds < 50):
            for index, (sql, params) in enumerate(statements):
                started = time.perf_counter()
                await database.run(sql, params)
                per_statement[index].append((time.perf_counter() - started) * 1000)
            rounds += 1
        medians = [statistics.median(samples) for samples in per_statement]
        target = line.split(" ", 1)[1]
        by_kind.setdefault(pairs[line], []).append((sum(medians), target, medians, statements))

    for kind, timed in sorted(by_kind.items()):
        values = sorted(total for total, _, _, _ in timed)
        slowest = max(timed, key=lambda item: item[0])
        out.emit(
            {
                "bench": "search-sql",
                **common,
                "kind": kind,
                "requests": len(values),
                "statements_per_request": round(
                    statistics.mean(len(statements) for _, _, _, statements in timed), 2
                ),
                "median_ms": round(statistics.median(values), 3),
                "p90_ms": round(values[int(0.9 * (len(values) - 1))], 3),
                "max_ms": round(slowest[0], 3),
                "slowest": slowest[1],
                "slowest_statements_ms": [round(ms, 3) for ms in slowest[2]],
            }
        )
        if slowest[3]:
            worst = max(range(len(slowest[3])), key=lambda i: slowest[2][i])
            sql, params = slowest[3][worst]
            print(f"== {kind}: {slowest[1]} (statement {worst + 1})", file=sys.stderr)
            for row in await database.plan(sql, params):
                print(f"    {row}", file=sys.stderr)
            if args.show_sql:
                print("    " + re.sub(r"\s+", " ", sql), params, file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--offers", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=0.2, help="time spent per request")
    parser.add_argument("--kind", help="only this kind")
    parser.add_argument("--show-sql", action="store_true")
    parser.add_argument("--out", type=Path, help="JSON lines file (default bench/results/…)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
