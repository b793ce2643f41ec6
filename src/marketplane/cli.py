"""The `marketplane` command."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from marketplane.settings import Settings, get_settings

app = typer.Typer(help="marketplane: the back end of a marketplace business.", no_args_is_help=True)
console = Console(stderr=True)


async def _init(settings: Settings) -> str | None:
    from marketplane.access import service as access
    from marketplane.bootstrap import migrated

    platform = await migrated(settings)
    try:
        async with platform.uow() as uow:
            created = await access.bootstrap_owner(uow)
            await uow.commit()
    finally:
        await platform.close()
    return created[1] if created else None


@app.command()
def init(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Migrate the database and create the first operator key (printed once)."""
    key = asyncio.run(_init(get_settings()))
    if as_json:
        typer.echo(json.dumps({"operator_key": key}))
    elif key:
        typer.echo(f"Operator key (shown once, keep it safe):\n{key}")
    else:
        typer.echo("Already initialised: the database is migrated and has an operator.")


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION.")] = False,
) -> None:
    """Apply (or with --down, revert) database migrations."""
    from marketplane.db import migrate as migrations
    from marketplane.db.engine import connect

    async def run() -> None:
        db = connect(get_settings().database_url)
        try:
            if down:
                await migrations.downgrade(db, revision if revision != "head" else "base")
            else:
                await migrations.upgrade(db, revision)
        finally:
            await db.dispose()

    asyncio.run(run())


def _tune_interpreter() -> None:
    """Everything loaded so far lives as long as the server: keep it out of collections, and
    collect young objects less often. Measured under load: full collections paused requests for
    up to 0.1 s and took 3% of the time.

    And hand the interpreter lock over after 0.5 ms instead of 5: on SQLite each statement runs
    on aiosqlite's thread, which needs the lock to start and to hand its rows back, and waited
    for it a whole interval while the loop wrote to 1,000 event streams. Measured on SQLite
    with 1,000 streams (bench/freshness.py, same hour): 25 changes/s went through where 19 had,
    and load (a)'s p99 went from 1,016 ms to 193 ms."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(0.0005)


def run_server(settings: Settings) -> None:
    from marketplane.bootstrap import migrated

    async def prepare() -> None:
        platform = await migrated(settings)
        await platform.close()

    asyncio.run(prepare())
    with _feed_worker(settings):
        _serve(settings)


@contextmanager
def _feed_worker(settings: Settings) -> Iterator[None]:
    """A `marketplane worker` process beside the server, for feed runs (their parsing would
    otherwise share the event loop with requests); stopped with the server."""
    if not settings.feed_worker:
        yield
        return
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        env[f"MARKETPLANE_{name.upper()}"] = str(value)
    argv = [sys.executable, "-m", "marketplane", "worker", "--parent", str(os.getpid())]
    worker = subprocess.Popen(argv, env=env)  # noqa: S603 (our own interpreter and arguments)
    try:
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def _serve(settings: Settings) -> None:
    import uvicorn

    if settings.workers > 1 and settings.is_sqlite:
        console.print("[yellow]SQLite serves from one process; use PostgreSQL for --workers.[/]")
        settings = settings.model_copy(update={"workers": 1})
    options = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": settings.log_level,
        "access_log": settings.access_log,
    }
    if settings.workers == 1:
        from marketplane.http.app import create_app

        app = create_app(settings)
        _tune_interpreter()
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    # Worker processes build their own app: hand them these settings through the environment.
    for name, value in settings.model_dump().items():
        os.environ[f"MARKETPLANE_{name.upper()}"] = str(value)
    uvicorn.run("marketplane.http.app:factory", factory=True, workers=settings.workers, **options)  # type: ignore[arg-type]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (PostgreSQL).")] = None,
) -> None:
    """Run the API (migrating first)."""
    overrides = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    run_server(get_settings().model_copy(update=overrides))


@app.command()
def worker(
    parent: Annotated[
        int | None, typer.Option(help="Stop when this process (the server) is gone.")
    ] = None,
) -> None:
    """Run feed runs (uploaded, scheduled URLs), webhook deliveries, the order jobs (expiring
    unpaid orders, acceptance deadlines, refunds, releasing suppliers' money after the hold) and
    the money jobs (subscriptions, scheduled payouts) until stopped; several may run at once."""
    from marketplane.bootstrap import migrated
    from marketplane.events import service as events
    from marketplane.events import webhooks
    from marketplane.feeds.service import worker_name
    from marketplane.feeds.worker import work
    from marketplane.money import jobs as money_jobs
    from marketplane.orders import jobs as order_jobs
    from marketplane.outbound import parse_allow

    async def watch(stop: asyncio.Event) -> None:
        while not stop.is_set() and os.getppid() == parent:
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1)
        stop.set()  # a server killed outright leaves no worker behind

    async def run() -> None:
        settings = get_settings()
        platform = await migrated(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        watching = asyncio.create_task(watch(stop)) if parent is not None else None
        wake = asyncio.Event()  # another process committed events (PostgreSQL NOTIFY)
        unlisten = await platform.db.listen(events.CHANNEL, wake.set)
        allow = parse_allow(p for p in settings.allow_private_targets.split(",") if p.strip())
        try:
            await asyncio.gather(
                work(platform.uow, settings, stop=stop),
                webhooks.work(
                    platform.uow,
                    worker=worker_name(),
                    allow=allow,
                    stop=stop,
                    poll=settings.webhook_poll_seconds,
                    wake=wake,
                    attempt_seconds=settings.webhook_timeout_seconds,
                    lease=settings.webhook_lease_seconds,
                ),
                order_jobs.work(
                    platform.uow,
                    platform.payments,
                    stop=stop,
                    every=settings.order_sweep_seconds,
                    hold_seconds=settings.payout_hold_hours * 3600,
                ),
                money_jobs.work(
                    platform.uow, platform.payouts, stop=stop, every=settings.billing_sweep_seconds
                ),
            )
        finally:
            if unlisten is not None:
                await unlisten()
            if watching is not None:
                await watching
            await platform.close()

    asyncio.run(run())


feed = typer.Typer(help="Supply feeds: import a file, validate one offline.", no_args_is_help=True)
app.add_typer(feed, name="feed")


@feed.command("import")
def feed_import(
    file: Annotated[Path, typer.Argument(help="CSV, JSON Lines or JSON; may be gzipped.")],
    supplier: Annotated[str, typer.Option(help="Supplier id.")],
    mode: Annotated[str, typer.Option(help="delta or full.")] = "delta",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and count only.")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, jsonl or json.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Import a feed file for a supplier, with a progress bar; prints the run."""
    from marketplane.feeds.cli import import_file, local_file

    if not file.is_file():
        raise typer.BadParameter(f"no file {file}", param_hint="FILE")
    run = asyncio.run(
        import_file(
            get_settings(),
            local_file(file),
            supplier_id=supplier,
            mode=mode,
            dry_run=dry_run,
            feed_format=fmt,
            console=None if as_json else console,
        )
    )
    typer.echo(json.dumps(run, default=str) if as_json else _run_summary(run))
    raise typer.Exit(0 if run["status"] in ("complete", "held") else 1)


def _run_summary(run: dict[str, Any]) -> str:
    c = run["counts"]
    lines = [
        f"run {run['id']}: {run['status']}",
        f"  read {c['read']:,} = inserted {c['inserted']:,} + updated {c['updated']:,} + "
        f"unchanged {c['unchanged']:,} + deleted {c['deleted']:,} + failed {c['failed']:,}",
    ]
    if c["deactivated"] or run["to_deactivate"]:
        lines.append(
            f"  deactivated {c['deactivated']:,} (not in the file: {run['to_deactivate']})"
        )
    if run["rows_per_s"]:
        lines.append(f"  {run['rows_per_s']:,.0f} rows/s over {run['seconds']:.1f} s")
    if run["error"]:
        lines.append(f"  {run['error']['code']}: {run['error']['detail']}")
    return "\n".join(lines)


@feed.command("validate")
def feed_validate(
    file: Annotated[Path, typer.Argument(help="CSV, JSON Lines or JSON; may be gzipped.")],
    category: Annotated[
        str, typer.Option(help="A category as JSON (a file from the API), or its id or slug.")
    ],
    mapping: Annotated[Path | None, typer.Option(help="A mapping as JSON.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, jsonl or json.")] = None,
    show: Annotated[int, typer.Option(help="Row errors to print.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a feed against a category without a server (and without writing anything)."""
    from marketplane.feeds.cli import category_file, category_in_database, validate_file

    chosen = category_file(Path(category)) or asyncio.run(
        category_in_database(get_settings(), category)
    )
    result = validate_file(file, category=chosen, mapping=mapping, feed_format=fmt)
    if as_json:
        typer.echo(json.dumps(result, default=str))
    else:
        c = result["counts"]
        typer.echo(f"{file}: {c['read']:,} rows, {c['valid']:,} valid, {c['failed']:,} with errors")
        for error in result["errors"][:show]:
            typer.echo(
                f"  line {error['line']} sku {error['sku']}: {error['field']} "
                f"{error['code']}: {error['message']} (value: {error['value']})"
            )
    raise typer.Exit(0 if result["counts"]["failed"] == 0 and not result["fatal"] else 1)


@app.command()
def demo(
    path: Annotated[Path, typer.Option(help="SQLite file to build.")] = Path("marketplane-demo.db"),
    offers: Annotated[int, typer.Option(help="How many offers to generate.")] = 60_000,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Build only.")] = False,
) -> None:
    """Build a populated demo marketplace on SQLite, then serve it."""
    from marketplane.demo.build import build_demo

    url = f"sqlite+aiosqlite:///{path}"
    settings = get_settings().model_copy(update={"database_url": url, "port": port})
    summary = asyncio.run(build_demo(settings, path=path, offers=offers, console=console))
    typer.echo(summary.walkthrough(f"http://{settings.host}:{port}"))
    if not no_serve:
        run_server(settings)


def main() -> None:
    app()
