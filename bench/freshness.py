"""Event freshness: price and stock updates through the supply API, received by 1,000 SSE streams.

What it does, per configuration (SQLite with one `serve` process; PostgreSQL with two on the same
database, the writer's requests on the first and every stream on the second, so each delivery
crosses processes through LISTEN/NOTIFY):

1. A fresh database (`marketplane init`), `marketplane serve` (no feed worker), a books category,
   an approved supplier and a client (no markup) created through the admin API; `--offers` books
   (default 100,000) loaded through `POST /supply/v1/offers/batch`, 1,000 a request.
2. Load (a): `--subscribers` streams (default 1,000) filtered `category=books`, and price/stock
   changes at `--rate-a` a second (default 20) by `PUT /supply/v1/offers/{sku}` on 200 offers in
   turn: every stream receives every update (20,000 deliveries/s).
3. Load (b): the streams each watch one page (`offers=`, `--page` consecutive offer ids, default
   50) of the catalog; `--rate-b` changes a second (default 1,000) spread uniformly over all the
   offers, sent as `POST /supply/v1/offers/batch` of `--batch-b` changes (default 20; 0: one PUT
   each). Most changes reach no stream, some one or two.
4. Saturation: load (a) again at rising rates (`--saturate`), until a step is not sustained
   (a stream dropped, a delivery lost, the writer or the streams fell behind).
5. Baseline, in the same run, before the product's servers: the same events broadcast from memory
   by a bare FastAPI app served the same way (uvicorn, uvloop, httptools, one worker, the
   collector and switch interval as `marketplane serve` sets them; `--baseline-server PORT`
   runs it): a change arriving on the supply paths is rendered once and put in every stream's
   asyncio.Queue, each stream writes what it takes. No database, no filtering, no
   authentication, no middleware. The same load generator drives it with load (a) and the
   saturation steps; its highest sustained deliveries/s is the figure the ratio divides by.
   Also, for scale: the in-process broadcast alone (a producer, a Queue and a task per
   subscriber, no sockets), `broadcast-memory`.

The load generator is this process: the streams are raw asyncio connections (a minimal HTTP/1.1
GET and chunked reader, no httpx) whose frames are parsed with bytes searches for the offer id and
the new price or quantity; the writer is an httpx.AsyncClient with `--writers` keep-alive
connections. Each change has a value the offer never had before, so (offer, price|quantity, value)
names it: latency is the receipt time (when the bytes reached this process) minus the time its
request was sent. Deliveries/s counts the frames received during the measured window.

The machine has two cores: this process, the server process(es) and PostgreSQL share them. Each
line carries the CPU seconds per second each of them used during the window (`cpu`); a load
generator near 1.0 is the limit of the measurement, not of the server.

    .venv/bin/python bench/freshness.py                     # both configurations, defaults
    .venv/bin/python bench/freshness.py --backend sqlite --subscribers 100 --duration 3 \
        --offers 5000 --saturate 20,40 --sat-duration 3     # a quick one

Targets (the issue's): p99 update-to-receipt ≤ 50 ms in one process and ≤ 100 ms across two, at
both loads; deliveries/s ≥ 0.5 x the baseline's when saturated. Exits 0 whether met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import uvloop
from fastapi import FastAPI, Request
from starlette.responses import Response, StreamingResponse

from search import (
    BIN,
    LOGS,
    PG_SERVER,
    Output,
    _pg_admin,
    free_port,
    git_commit,
    log,
    marketplane_env,
    postgres_cpu,
    running,
    src_hash,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
TARGET_P99_MS = {1: 50.0, 2: 100.0}  # by processes
TARGET_RATIO = 0.5
TYPES = "offer.price_changed,offer.stock_changed"
A_OFFERS = 200  # offers load (a) changes in turn
BASE_PRICE = 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")
BOOKS_SCHEMA = {
    "type": "object",
    "properties": {
        "isbn": {"type": "string", "x-gtin": True},
        "author": {"type": "string"},
        "year": {"type": "integer", "minimum": 1450, "maximum": 2100},
    },
    "required": ["isbn", "author"],
}
AUTHORS = ("Ada Hartmann", "Bo Lindqvist", "Chiara Ruiz", "Dev Patel", "Eun-ji Park")


# --- the catalog ---------------------------------------------------------------------------------


def isbn13(n: int) -> str:
    digits = f"978{n:09d}"
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


@dataclass(slots=True)
class Offer:
    """One offer as the writer knows it: each change bumps `changes`, which makes its new price
    (BASE_PRICE + changes) or quantity (changes) a value the offer never had."""

    sku: str
    index: int
    id: bytes = b""
    changes: int = 0
    price: int = BASE_PRICE
    quantity: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "category": "books",
            "title": f"Freshness book {self.index}",
            "price": {"amount": self.price, "currency": "EUR"},
            "quantity": self.quantity,
            "attributes": {
                "isbn": isbn13(self.index),
                "author": AUTHORS[self.index % len(AUTHORS)],
                "year": 1950 + self.index % 70,
            },
        }

    def change(self) -> bytes:
        """The next change (price and stock in turn); returns the key its event will carry."""
        self.changes += 1
        if self.changes % 2:
            self.price = BASE_PRICE + self.changes
            return self.id + b"p" + str(self.price).encode()
        self.quantity = self.changes
        return self.id + b"q" + str(self.quantity).encode()


def load_offers(
    base: str, supplier_key: str, count: int, analyze: str | None = None, quantity: int = 0
) -> tuple[list[Offer], float, dict[str, Any]]:
    """`count` books through the batch API, 1,000 a request. `analyze` (a PostgreSQL database):
    ANALYZE each time the table has doubled from 2,000 offers and at the end, as autovacuum would
    (the server here runs with it off; without statistics each batch's sku lookup slows down as
    the table grows: see bench/search.py `build_marketplace`). Its time is part of the load's.
    `quantity`: each offer's stock (bench/orders.py orders them)."""
    offers = [Offer(sku=f"FR-{i:06d}", index=i, quantity=quantity) for i in range(count)]
    started = time.perf_counter()
    analyzed_at, analyzed = 1000, {"count": 0, "seconds": 0.0}

    def run_analyze() -> None:
        assert analyze is not None
        began = time.perf_counter()
        asyncio.run(_pg_admin("ANALYZE", database=analyze))
        analyzed["count"] += 1
        analyzed["seconds"] = round(analyzed["seconds"] + time.perf_counter() - began, 2)

    headers = {"Authorization": f"Bearer {supplier_key}"}
    with httpx.Client(base_url=base, timeout=600, headers=headers) as http:
        for start in range(0, count, 1000):
            chunk = offers[start : start + 1000]
            response = http.post(
                "/supply/v1/offers/batch",
                json={"offers": [dict(o.body(), sku=o.sku) for o in chunk]},
            )
            response.raise_for_status()
            body = response.json()
            for offer, result in zip(chunk, body["results"], strict=True):
                if result["outcome"] != "created":
                    raise RuntimeError(f"{offer.sku}: {result}")
                offer.id = result["offer_id"].encode()
            done = start + len(chunk)
            if analyze and done >= 2 * analyzed_at:
                run_analyze()
                analyzed_at = done
            if (start // 1000) % 20 == 19:
                rate = done / (time.perf_counter() - started)
                log(f"  loaded {done:,}/{count:,} ({rate:,.0f}/s)")
    if analyze:
        run_analyze()
    return offers, time.perf_counter() - started, analyzed


def setup_marketplace(base: str, operator: str) -> dict[str, str]:
    """The books category, an approved supplier and a client without markup: their keys."""
    auth = {"Authorization": f"Bearer {operator}"}
    with httpx.Client(base_url=base, timeout=60, headers=auth) as http:

        def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            response = http.post(path, json=body)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
            found: dict[str, Any] = response.json()
            return found

        post(
            "/admin/v1/categories",
            {"slug": "books", "name": "Books", "attribute_schema": BOOKS_SCHEMA},
        )
        supplier = post("/admin/v1/suppliers", {"name": "Freshness Books"})
        post(f"/admin/v1/suppliers/{supplier['id']}/approve")
        supplier_key = post(f"/admin/v1/suppliers/{supplier['id']}/keys")["key"]
        client = post("/admin/v1/clients", {"name": "Front end", "markup_bps": 0})
        client_key = post(f"/admin/v1/clients/{client['id']}/keys")["key"]
    return {"operator": operator, "supplier": supplier_key, "client": client_key}


# --- the measurement -----------------------------------------------------------------------------


@dataclass
class Measure:
    """Changes sent (by key: [sent at, streams expected, streams received, in the window]) and
    what the streams received."""

    window: tuple[float, float] = (float("inf"), float("inf"))
    pending: dict[bytes, list[Any]] = field(default_factory=dict)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    in_window: int = 0  # frames received during the window
    received: int = 0
    expected: int = 0
    unknown: int = 0  # frames that name no change sent
    dropped: int = 0  # streams told `event: dropped`
    closed: int = 0  # streams the server closed otherwise
    all_in: asyncio.Event | None = None  # set once every expected frame came (after writing)

    def check(self) -> None:
        if self.all_in is not None and self.received >= self.expected:
            self.all_in.set()

    def frame(self, buf: bytearray, start: int, end: int, now: float) -> None:
        at = buf.find(b"\nevent: offer.", start, end)
        if at < 0:
            if buf.startswith(b"event: dropped", start):
                self.dropped += 1
            return  # retry:, heartbeat comments
        price = buf[at + 14] == 0x70  # "p"rice_changed, else "s"tock_changed
        i = buf.find(OBJECT, at, end) + len(OBJECT)
        j = buf.find(b'"', i, end)
        if price:
            k = buf.find(PRICE, j, end) + len(PRICE)
        else:
            k = buf.find(QUANTITY, j, end) + len(QUANTITY)
        m = DIGITS.match(buf, k, end)
        key = bytes(buf[i:j]) + (b"p" if price else b"q") + (m.group() if m else b"")
        change = self.pending.get(key)
        if change is None:
            self.unknown += 1
            return
        change[2] += 1
        self.received += 1
        if self.all_in is not None:
            self.check()
        if self.window[0] <= now < self.window[1]:
            self.in_window += 1
        if change[3]:
            self.latencies.append(now - change[0])


DIGITS = re.compile(rb"\d+")
OBJECT = b'"object":{"type":"offer","id":"'
PRICE = b'"price":{"amount":'
QUANTITY = b'"quantity":'


class Stream(asyncio.Protocol):
    """One SSE connection: a raw HTTP/1.1 GET, the chunked body decoded, frames handed to
    `Measure.frame` with the time their bytes arrived."""

    def __init__(self, measure: Measure, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.measure = measure
        self.request = request
        self.ready: asyncio.Future[int] = loop.create_future()
        self.head = bytearray()
        self.raw = bytearray()
        self.sse = bytearray()
        self.need = 0  # bytes left of the current chunk, its CRLF included
        self.chunked = True
        self.body = False
        self.transport: asyncio.Transport | None = None
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(0)
        if self.open:
            self.open = False
            self.measure.closed += 1

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(self.head[9:12])
            self.chunked = b"transfer-encoding: chunked" in self.head[:end].lower()
            data = bytes(self.head[end + 4 :])
            self.body = True
            self.open = status == 200
            self.ready.set_result(status)
            if status != 200:
                self.close()
                return
        if self.chunked:
            self._dechunk(data)
        else:
            self.sse += data
        sse, start = self.sse, 0
        while (end := sse.find(b"\n\n", start)) >= 0:
            self.measure.frame(sse, start, end, now)
            start = end + 2
        if start:
            del sse[:start]

    def _dechunk(self, data: bytes) -> None:
        raw = self.raw
        raw += data
        pos, size = 0, len(raw)
        while pos < size:
            if self.need == 0:
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    break
                length = int(raw[pos:eol].split(b";")[0], 16)
                pos = eol + 2
                if length == 0:
                    pos = size
                    break
                self.need = length + 2
            take = min(self.need, size - pos)
            payload = min(take, self.need - 2)
            if payload > 0:
                self.sse += raw[pos : pos + payload]
            self.need -= take
            pos += take
        del raw[:pos]


async def open_streams(
    host: str, port: int, key: str, targets: list[str], measure: Measure
) -> tuple[list[Stream], Counter[int]]:
    """Opens one stream a target (64 at a time); returns the open ones and every status."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(64)
    statuses: Counter[int] = Counter()

    async def one(target: str) -> Stream | None:
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        async with gate:
            try:
                _, stream = await loop.create_connection(
                    lambda: Stream(measure, request, loop), host, port
                )
                status = await asyncio.wait_for(stream.ready, 60)
            except (OSError, TimeoutError):
                statuses[-1] += 1
                return None
        statuses[status] += 1
        return stream if status == 200 else None

    opened = await asyncio.gather(*(one(t) for t in targets))
    return [s for s in opened if s is not None], statuses


# --- CPU ---------------------------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def _machine() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


def cpu_snapshot(servers: dict[str, int]) -> dict[str, Any]:
    return {
        "at": time.perf_counter(),
        "loadgen": time.process_time(),
        "servers": {
            name: _proc_cpu(pid) + sum(_proc_cpu(c) for c in _children(pid))
            for name, pid in servers.items()
        },
        "postgres": postgres_cpu(),
        "machine": _machine(),
    }


def cpu_used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds a second (1.0 = one core) over the interval."""
    seconds = after["at"] - before["at"]
    busy = after["machine"][0] - before["machine"][0]
    total = after["machine"][1] - before["machine"][1]
    used = {
        "loadgen": round((after["loadgen"] - before["loadgen"]) / seconds, 2),
        **{
            f"server_{name}": round((after["servers"][name] - before["servers"][name]) / seconds, 2)
            for name in before["servers"]
        },
        "postgres": round((after["postgres"] - before["postgres"]) / seconds, 2),
        "machine_busy": round((os.cpu_count() or 1) * busy / total, 2) if total else None,
    }
    return used


# --- one scenario ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    load: str  # a, b or saturation
    rate: float  # changes a second asked
    duration: float
    warmup: float
    batch: int  # changes a request (0: one PUT each)
    targets: list[str]  # one stream each
    choose: Callable[[], Offer]  # the next offer to change
    watchers: Callable[[Offer, int], int]  # streams that should receive a change (given how
    # many are open)


async def run_scenario(
    scenario: Scenario,
    *,
    streams_at: str,
    writer_at: str,
    keys: dict[str, str],
    servers: dict[str, int],
    writers: int,
    grace: float,
) -> dict[str, Any]:
    measure = Measure()
    host, port = streams_at.removeprefix("http://").split(":")
    opened_at = time.perf_counter()
    streams, statuses = await open_streams(
        host, int(port), keys["client"], scenario.targets, measure
    )
    open_seconds = time.perf_counter() - opened_at
    log(
        f"    {len(streams)}/{len(scenario.targets)} streams open in {open_seconds:.1f}s "
        f"(statuses {dict(statuses)})"
    )
    sent = failed = 0
    lag = array("d")  # how late each request left, against its schedule
    headers = {"Authorization": f"Bearer {keys['supplier']}"}
    limits = httpx.Limits(max_connections=writers, max_keepalive_connections=writers)
    gate = asyncio.Semaphore(writers)
    tasks: set[asyncio.Task[None]] = set()
    busy: set[str] = set()  # skus of changes in flight
    in_window = 0

    async with httpx.AsyncClient(
        base_url=writer_at, headers=headers, limits=limits, timeout=60
    ) as http:

        async def send(changes: list[list[Any]], offers: list[Offer]) -> None:
            nonlocal failed
            try:
                if scenario.batch:
                    items = [dict(o.body(), sku=o.sku) for o in offers]
                    response = await http.post("/supply/v1/offers/batch", json={"offers": items})
                    ok = response.status_code == 200 and all(
                        r["outcome"] == "updated" for r in response.json()["results"]
                    )
                else:
                    offer = offers[0]
                    response = await http.put(f"/supply/v1/offers/{offer.sku}", json=offer.body())
                    ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            finally:
                gate.release()
                busy.difference_update(o.sku for o in offers)
            if not ok:
                failed += len(changes)
                for change in changes:  # not expected any more
                    measure.expected -= change[1]
                    change[1] = 0
                measure.check()

        per_request = max(1, scenario.batch)
        interval = per_request / scenario.rate
        start = time.perf_counter() + 0.2
        window = (start + scenario.warmup, start + scenario.warmup + scenario.duration)
        measure.window = window
        snapshots: list[dict[str, Any]] = []

        async def watch_cpu() -> None:
            for at in window:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                snapshots.append(cpu_snapshot(servers))

        cpu_task = asyncio.create_task(watch_cpu())
        step = 0
        while (due := start + step * interval) < window[1]:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await gate.acquire()
            offers = []
            while len(offers) < per_request:
                # An offer is never changed by two requests at once: the later could commit
                # first, and the earlier would then change two fields (offer.updated).
                offer = scenario.choose()
                if offer.sku not in busy:
                    busy.add(offer.sku)
                    offers.append(offer)
            now = time.perf_counter()
            lag.append(now - due)
            measured = window[0] <= now < window[1]
            changes = []
            for offer in offers:
                expected = scenario.watchers(offer, len(streams))
                change = [now, expected, 0, measured]
                measure.pending[offer.change()] = change
                measure.expected += expected
                changes.append(change)
            sent += len(offers)
            in_window += len(offers) if measured else 0
            task = asyncio.create_task(send(changes, offers))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            step += 1
        writing_ended = time.perf_counter()
        if tasks:
            await asyncio.wait(set(tasks))
        await cpu_task
    # Stragglers: wait until every expected frame came, or `grace` seconds.
    measure.all_in = asyncio.Event()
    measure.check()
    with suppress(TimeoutError):
        await asyncio.wait_for(measure.all_in.wait(), grace)
    waited = time.perf_counter() - writing_ended
    server_view = await server_freshness(streams_at, keys["operator"])
    for stream in streams:
        stream.close()
    await wait_streams_closed(streams_at, keys["operator"])

    measured = [c for c in measure.pending.values() if c[3]]
    expected = sum(c[1] for c in measured)
    got = sum(min(c[1], c[2]) for c in measured)
    duplicates = sum(max(0, c[2] - c[1]) for c in measured)
    reached = sum(1 for c in measured if c[1] and c[2])
    values = sorted(measure.latencies)
    lags = sorted(lag)
    return {
        "load": scenario.load,
        "subscribers": len(scenario.targets),
        "streams_open": len(streams),
        "stream_statuses": {str(k): v for k, v in statuses.items()},
        "open_seconds": round(open_seconds, 1),
        "rate_asked": scenario.rate,
        "batch": scenario.batch,
        "duration_s": scenario.duration,
        "updates_sent": in_window,
        "updates_per_s": round(in_window / scenario.duration, 1),
        "updates_failed": failed,
        "updates_reaching_a_stream": reached,
        "writer_late_p99_ms": round(1000 * pct(lags, 0.99), 1) if lags else None,
        "expected_deliveries": expected,
        "deliveries": len(values),
        "deliveries_per_s": round(measure.in_window / scenario.duration, 1),
        "expected_deliveries_per_s": round(expected / scenario.duration, 1),
        "p50_ms": round(1000 * pct(values, 0.5), 2) if values else None,
        "p99_ms": round(1000 * pct(values, 0.99), 2) if values else None,
        "max_ms": round(1000 * values[-1], 2) if values else None,
        "lost": expected - got,
        "duplicates": duplicates,
        "unknown_frames": measure.unknown,
        "dropped_streams": measure.dropped,
        "closed_by_server": measure.closed,
        "grace_waited_s": round(waited, 1),
        "server_freshness": server_view,
        "cpu": cpu_used(*snapshots) if len(snapshots) == 2 else None,
    }


def pct(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))]


async def server_freshness(base: str, operator: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        response = await http.get(
            "/admin/v1/events/freshness", headers={"Authorization": f"Bearer {operator}"}
        )
    if response.status_code != 200:
        return None
    found: dict[str, Any] = response.json()
    return found


async def wait_streams_closed(base: str, operator: str, limit: float = 60) -> None:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        view = await server_freshness(base, operator)
        if view is None or view["streams"] == 0:
            return
        await asyncio.sleep(0.2)
    log(f"    streams still open on {base} after {limit:g}s")


# --- the baselines ---------------------------------------------------------------------------


def baseline_app() -> Any:
    """The baseline served: the same events broadcast from memory to every stream, no database,
    no filtering, no authentication, no middleware, the product's HTTP stack (FastAPI, uvicorn,
    uvloop, httptools, one worker). A change arriving on the supply paths is rendered once as the
    product renders it (the sku stands for the offer id) and put in every stream's asyncio.Queue;
    each stream writes what its queue holds, one frame a chunk."""
    app = FastAPI()
    queues: set[asyncio.Queue[bytes]] = set()
    seq = [0]
    prices: dict[str, int] = {}

    def broadcast(sku: str, body: dict[str, Any]) -> None:
        seq[0] += 1
        price = body["price"]
        event = {
            "seq": seq[0],
            "id": f"evt_{seq[0]:026d}",
            "type": "offer.changed",
            "object": {"type": "offer", "id": sku, "version": seq[0]},
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": {
                "id": sku,
                "title": body["title"],
                "description": body.get("description", ""),
                "category": {"id": "cat_01", "slug": body["category"]},
                "supplier": {"id": "sup_01", "name": "Freshness Books"},
                "attributes": body["attributes"],
                "price": {"amount": price["amount"], "currency": price["currency"]},
                "quantity": body["quantity"],
            },
        }
        # The kind, as the product names it: the price changed, or else the quantity.
        changed = prices.get(sku) != price["amount"]
        prices[sku] = price["amount"]
        kind = b"offer.price_changed" if changed else b"offer.stock_changed"
        frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (seq[0], kind, orjson.dumps(event))
        for queue in queues:
            queue.put_nowait(frame)

    @app.put("/supply/v1/offers/{sku}")
    async def put(sku: str, request: Request) -> Response:
        broadcast(sku, orjson.loads(await request.body()))
        return Response(b'{"outcome":"updated"}', media_type="application/json")

    @app.post("/supply/v1/offers/batch")
    async def batch(request: Request) -> Response:
        items = orjson.loads(await request.body())["offers"]
        for item in items:
            broadcast(item["sku"], item)
        results = [{"outcome": "updated"}] * len(items)
        return Response(orjson.dumps({"results": results}), media_type="application/json")

    @app.get("/store/v1/stream")
    async def stream() -> StreamingResponse:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        queues.add(queue)

        async def body() -> Any:
            try:
                yield b"retry: 2000\n\n"
                while True:
                    yield await queue.get()
            finally:
                queues.discard(queue)

        return StreamingResponse(body(), media_type="text/event-stream")

    @app.get("/admin/v1/events/freshness")
    async def freshness() -> Response:
        return Response(orjson.dumps({"streams": len(queues)}), media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def serve_baseline(port: int) -> None:
    import uvicorn

    # The collector and the lock's switch interval as `marketplane serve` sets them
    # (cli._tune_interpreter): without it, full collections pause this process for tens of
    # milliseconds. (It has no other thread, so the interval changes nothing here.)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(0.0005)
    uvicorn.run(
        baseline_app(),
        host="127.0.0.1",
        port=port,
        workers=1,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


async def _broadcast(subscribers: int, seconds: float, rate: float | None) -> dict[str, Any]:
    """In one process, no sockets: one producer putting each event into every subscriber's
    asyncio.Queue, a consumer task per queue. rate None: as fast as the consumers take them (the
    producer yields once an event, so the queues stay short); else `rate` events a second."""
    frame = b'id: 1\nevent: offer.price_changed\ndata: {"seq":1}\n\n' + b"x" * 500
    queues: list[asyncio.Queue[tuple[int, bytes, float]]] = [
        asyncio.Queue() for _ in range(subscribers)
    ]
    latencies = array("d")
    window = [float("inf"), float("inf")]
    in_window = [0]

    async def consume(queue: asyncio.Queue[tuple[int, bytes, float]]) -> None:
        while True:
            _, _, sent = await queue.get()
            now = time.perf_counter()
            if window[0] <= now < window[1]:
                in_window[0] += 1
                if rate is not None:
                    latencies.append(now - sent)

    consumers = [asyncio.create_task(consume(q)) for q in queues]
    start = time.perf_counter()
    window[:] = [start + 1.0, start + 1.0 + seconds]
    seq = 0
    while (now := time.perf_counter()) < window[1]:
        seq += 1
        item = (seq, frame, now)
        for queue in queues:
            queue.put_nowait(item)
        if rate is None:
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(max(0.0, start + seq / rate - time.perf_counter()))
    await asyncio.sleep(0.1)
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    values = sorted(latencies)
    return {
        "deliveries_per_s": round(in_window[0] / seconds, 1),
        "p50_ms": round(1000 * pct(values, 0.5), 3) if values else None,
        "p99_ms": round(1000 * pct(values, 0.99), 3) if values else None,
    }


def memory_broadcast(subscribers: int, seconds: float, rate: float) -> dict[str, Any]:
    saturated = uvloop.run(_broadcast(subscribers, seconds, None))
    paced = uvloop.run(_broadcast(subscribers, min(seconds, 5), rate))
    return {
        "bench": "broadcast-memory",
        "what": "one process, no sockets: 1 producer, an asyncio.Queue and a consumer task per "
        "subscriber (uvloop); the queueing alone, not a baseline for the ratio",
        "subscribers": subscribers,
        "duration_s": seconds,
        "deliveries_per_s": saturated["deliveries_per_s"],
        "paced_rate": rate,
        "paced_p50_ms": paced["p50_ms"],
        "paced_p99_ms": paced["p99_ms"],
        "loadavg": os.getloadavg()[0],
    }


# --- loads a, b and saturation against one system --------------------------------------------


@dataclass
class Target:
    """What the load generator drives: where streams connect and changes go, the keys, the
    processes whose CPU is watched, the offers that exist."""

    label: str
    common: dict[str, Any]
    streams_at: str
    writer_at: str
    keys: dict[str, str]
    pids: dict[str, int]
    offers: list[Offer]
    roles: dict[str, str]


def run_on(target: Target, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    # The load generator's own collector pauses would be counted as the server's latency: off
    # while a scenario runs (its objects are not cyclic garbage), a collection after.
    gc.collect()
    gc.disable()
    try:
        return uvloop.run(
            run_scenario(
                scenario,
                streams_at=target.streams_at,
                writer_at=target.writer_at,
                keys=target.keys,
                servers=target.pids,
                writers=args.writers,
                grace=args.grace,
            )
        )
    finally:
        gc.enable()
        gc.collect()


def load_a(
    target: Target, args: argparse.Namespace, rate: float, duration: float, load: str = "a"
) -> Scenario:
    """Every stream on the books category; changes to A_OFFERS offers in turn."""
    a_offers = target.offers[:A_OFFERS]
    turn = iter(range(10**12))

    def round_robin() -> Offer:
        return a_offers[next(turn) % len(a_offers)]

    def everyone(_: Offer, streams: int) -> int:
        return streams

    targets = [f"/store/v1/stream?category=books&types={TYPES}"] * args.subscribers
    return Scenario(load, rate, duration, args.warmup, 0, targets, round_robin, everyone)


def load_b(target: Target, args: argparse.Namespace) -> Scenario:
    """Each stream watches one page of offers; changes spread uniformly over all of them."""
    rng = random.Random(20_261_123)
    offers = target.offers
    pages = len(offers) // args.page
    watchers: Counter[bytes] = Counter()
    targets = []
    for _ in range(args.subscribers):
        first = rng.randrange(pages) * args.page
        ids = [o.id for o in offers[first : first + args.page]]
        watchers.update(ids)
        targets.append(f"/store/v1/stream?offers={b','.join(ids).decode()}&types={TYPES}")
    log(
        f"{target.label}: load (b) {args.rate_b:g} changes/s over {len(offers):,} offers, "
        f"streams watching {args.page} each ({len(watchers):,} offers watched)"
    )
    return Scenario(
        "b",
        args.rate_b,
        args.duration,
        args.warmup,
        args.batch_b,
        targets,
        lambda: offers[rng.randrange(len(offers))],
        lambda offer, _: watchers[offer.id],
    )


def sustained(result: dict[str, Any], subscribers: int) -> bool:
    """A step is sustained when every stream stayed, nothing was lost, the writer kept its rate
    and the streams received (within the window) what was sent."""
    return (
        result["lost"] == 0
        and result["dropped_streams"] == 0
        and result["closed_by_server"] == 0
        and result["streams_open"] == subscribers
        and result["updates_per_s"] >= 0.95 * result["rate_asked"]
        and result["deliveries_per_s"] >= 0.95 * result["expected_deliveries_per_s"]
    )


def saturate(
    target: Target,
    args: argparse.Namespace,
    emit: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """Load (a) at each rate of --saturate until a step is not sustained; the summary."""
    steps = []
    for rate in [float(r) for r in args.saturate.split(",") if r]:
        log(f"{target.label}: saturation, (a) at {rate:g} changes/s")
        result = run_on(target, load_a(target, args, rate, args.sat_duration, "saturation"), args)
        held = sustained(result, args.subscribers)
        steps.append(emit(result, filter="category=books", sustained=held))
        log(
            f"    {result['deliveries_per_s']:,.0f} deliveries/s, p99 {result['p99_ms']} ms, "
            f"{'sustained' if held else 'NOT sustained'}"
        )
        if not held:
            break
    held_steps = [s for s in steps if s["sustained"]]
    best = max(held_steps, key=lambda s: s["deliveries_per_s"]) if held_steps else None
    peak = max(steps, key=lambda s: s["deliveries_per_s"]) if steps else None
    return {
        "subscribers": args.subscribers,
        "rates_tried": [s["rate_asked"] for s in steps],
        # False: every step was sustained, so the steps ran out before the system did
        "saturated": bool(steps) and not steps[-1]["sustained"],
        "sustained_deliveries_per_s": best["deliveries_per_s"] if best else 0.0,
        "sustained_at_rate": best["rate_asked"] if best else None,
        "sustained_p99_ms": best["p99_ms"] if best else None,
        "sustained_cpu": best["cpu"] if best else None,
        "peak_deliveries_per_s": peak["deliveries_per_s"] if peak else None,
        "peak_at_rate": peak["rate_asked"] if peak else None,
        "peak_cpu": peak["cpu"] if peak else None,
    }


def bench_baseline(args: argparse.Namespace, out: Output) -> dict[str, Any]:
    """The baseline server, driven by the same load generator: load (a) and saturation."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--baseline-server", str(port)]
    common = {"backend": "none", "processes": 1}
    with running("freshness-baseline", argv, dict(os.environ), port) as server:
        offers = [Offer(sku=f"FR-{i:06d}", index=i) for i in range(A_OFFERS)]
        for offer in offers:
            offer.id = offer.sku.encode()
        target = Target(
            label="baseline",
            common=common,
            streams_at=server.base,
            writer_at=server.base,
            keys={"client": "-", "supplier": "-", "operator": "-"},
            pids={"baseline": server.process.pid},
            offers=offers,
            roles={"writer": "baseline server", "streams": "baseline server"},
        )

        def emit(result: dict[str, Any], **extra: Any) -> dict[str, Any]:
            line = {
                "bench": "baseline",
                **common,
                **target.roles,
                **result,
                **extra,
                "loadavg": os.getloadavg()[0],
            }
            out.emit(line)
            return line

        log(f"baseline: load (a) {args.rate_a:g} changes/s to {args.subscribers} streams")
        emit(run_on(target, load_a(target, args, args.rate_a, args.duration), args))
        summary = saturate(target, args, emit)
    line = {"bench": "baseline-saturation", **common, **summary}
    out.emit(line)
    log(f"baseline: {line['sustained_deliveries_per_s']:,.0f} deliveries/s sustained")
    return line


# --- a configuration ------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, workdir: Path, keep: bool) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'freshness.db'}"
        return
    name = f"marketplane_fresh_{os.getpid()}"
    drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    asyncio.run(_pg_admin(drop, f"CREATE DATABASE {name}"))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        if not keep:
            asyncio.run(_pg_admin(drop))


def server_env(url: str, data_dir: Path, subscribers: int) -> dict[str, str]:
    env = marketplane_env(url)
    env.update(
        MARKETPLANE_FEED_WORKER="false",
        MARKETPLANE_DATA_DIR=str(data_dir),
        # every stream uses the same client key; closed ones may linger until noticed
        MARKETPLANE_STREAM_MAX_PER_KEY=str(2 * subscribers + 10),
    )
    return env


def init(env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(BIN / "marketplane"), "init", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"marketplane init failed: {done.stderr[-2000:]}")
    key: str = json.loads(done.stdout)["operator_key"]
    return key


def bench_config(
    backend: str, processes: int, args: argparse.Namespace, out: Output, baseline: dict[str, Any]
) -> None:
    label = f"{backend}-{processes}p"
    common = {"backend": backend, "processes": processes}
    base_rate = baseline["sustained_deliveries_per_s"] or 1.0
    code_before = src_hash()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="freshness-")))
        url = stack.enter_context(fresh_database(backend, workdir, args.keep))
        env = server_env(url, workdir / "data", args.subscribers)
        operator = init(env, workdir)
        servers = []
        for name in "AB"[:processes]:
            port = free_port()
            argv = [str(BIN / "marketplane"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            log(f"{label}: starting server {name} on 127.0.0.1:{port}")
            server = running(f"freshness-{label}-{name}", argv, env, port)
            servers.append(stack.enter_context(server))
        writer_at = servers[0].base
        keys = setup_marketplace(writer_at, operator)
        log(f"{label}: loading {args.offers:,} offers through the batch API")
        database = url.rsplit("/", 1)[1] if backend == "postgres" else None
        offers, load_seconds, analyzed = load_offers(
            writer_at, keys["supplier"], args.offers, analyze=database
        )
        out.emit(
            {
                "bench": "freshness-load",
                **common,
                "offers": len(offers),
                "seconds": round(load_seconds, 1),
                "offers_per_s": round(len(offers) / load_seconds, 1),
                "path": "POST /supply/v1/offers/batch, 1,000 offers a request",
                **({"analyze_during_load": analyzed} if database else {}),
            }
        )
        target = Target(
            label=label,
            common=common,
            streams_at=servers[-1].base,
            writer_at=writer_at,
            keys=keys,
            pids={name: s.process.pid for name, s in zip("AB", servers, strict=False)},
            offers=offers,
            roles={"writer": "server A", "streams": f"server {'AB'[processes - 1]}"},
        )
        p99_target = TARGET_P99_MS.get(processes, TARGET_P99_MS[2])

        def emit(result: dict[str, Any], **extra: Any) -> dict[str, Any]:
            line = {
                "bench": "freshness",
                **common,
                **target.roles,
                **result,
                "baseline_deliveries_per_s": base_rate,
                "ratio": round(result["deliveries_per_s"] / base_rate, 3),
                **extra,
                "loadavg": os.getloadavg()[0],
                "src": code_before,
            }
            if result["load"] in ("a", "b"):
                p99 = result["p99_ms"]
                line["target"] = {"p99_ms": p99_target, "lost": 0, "dropped_streams": 0}
                line["target_met"] = (
                    p99 is not None
                    and p99 <= p99_target
                    and result["lost"] == 0
                    and result["dropped_streams"] == 0
                )
            out.emit(line)
            return line

        log(f"{label}: load (a) {args.rate_a:g} changes/s to {args.subscribers} streams")
        emit(
            run_on(target, load_a(target, args, args.rate_a, args.duration), args),
            filter="category=books",
        )
        emit(
            run_on(target, load_b(target, args), args),
            filter=f"offers= (a page of {args.page})",
            offers=len(offers),
        )
        summary = saturate(target, args, emit)
        best = summary["sustained_deliveries_per_s"]
        changed = src_hash() != code_before
        out.emit(
            {
                "bench": "freshness-saturation",
                **common,
                **summary,
                "baseline_deliveries_per_s": base_rate,
                "ratio": round(best / base_rate, 3),
                "peak_ratio": round((summary["peak_deliveries_per_s"] or 0) / base_rate, 3),
                "target": {"ratio": TARGET_RATIO, "of": "highest sustained step, both"},
                "target_met": best >= TARGET_RATIO * base_rate,
                "src": code_before,
                **({"src_changed_during_run": True} if changed else {}),
            }
        )
        log(f"{label}: server logs in {LOGS}/freshness-{label}-*.log")


def main() -> int:
    if sys.argv[1:2] == ["--baseline-server"]:
        serve_baseline(int(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(
        description="SSE freshness: supply API changes to 1,000 filtered streams, next to a "
        "bare in-memory broadcast served the same way."
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres", "both", "none"),
        default="both",
        help="none: the baselines only",
    )
    parser.add_argument(
        "--pg-processes", type=int, choices=(1, 2), default=2, help="serve processes on PostgreSQL"
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--offers", type=int, default=100_000, help="catalog for load (b)")
    parser.add_argument("--page", type=int, default=50, help="offers a stream watches in (b)")
    parser.add_argument("--rate-a", type=float, default=20, help="changes/s, load (a)")
    parser.add_argument("--rate-b", type=float, default=1000, help="changes/s, load (b)")
    parser.add_argument(
        "--batch-b", type=int, default=20, help="changes a batch request in (b) (0: one PUT each)"
    )
    parser.add_argument("--duration", type=float, default=20, help="measured seconds a load")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of changes before")
    parser.add_argument(
        "--saturate",
        default="20,30,45,70,100,150,220,330,500,750,1000",
        help="load (a) rates for the saturation steps (stops at the first not sustained)",
    )
    parser.add_argument("--sat-duration", type=float, default=10, help="seconds a step")
    parser.add_argument("--writers", type=int, default=16, help="writer connections")
    parser.add_argument("--grace", type=float, default=5, help="seconds to wait for stragglers")
    parser.add_argument(
        "--memory-duration", type=float, default=5, help="seconds of the in-process broadcast"
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--out", type=Path, help="JSON lines file (default bench/results/…)")
    args = parser.parse_args()
    if not 1 <= args.page <= 100 or args.page > args.offers:
        parser.error("--page must be 1 to 100 (the stream's limit) and at most --offers")
    if args.offers < A_OFFERS:
        parser.error(f"--offers must be at least {A_OFFERS}")
    if args.writers >= A_OFFERS or 2 * args.writers * max(1, args.batch_b) > args.offers:
        # an offer is never in two requests at once: there must be enough to choose from
        parser.error("too many writers (or too large --batch-b) for the offers")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    out = Output(args.out or RESULTS / f"freshness-{stamp}.jsonl")
    chosen = {
        "sqlite": [("sqlite", 1)],
        "postgres": [("postgres", args.pg_processes)],
        "both": [("sqlite", 1), ("postgres", args.pg_processes)],
        "none": [],
    }[args.backend]
    out.emit(
        {
            "bench": "meta",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([".venv/bin/python", "bench/freshness.py", *sys.argv[1:]]),
            "commit": git_commit(),
            "src": src_hash(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "python": sys.version.split()[0],
            "uvloop": uvloop.__version__,
            "sqlite": sqlite3.sqlite_version,
            "configs": [f"{b}:{p}" for b, p in chosen],
            "subscribers": args.subscribers,
            "offers": args.offers,
            "note": "one load generator process (streams and writer), the server process(es) "
            "and PostgreSQL share the machine's cores: see each line's cpu",
            "pg": PG_SERVER if any(b == "postgres" for b, _ in chosen) else None,
        }
    )
    log(f"in-process broadcast to {args.subscribers} queues ({args.memory_duration:g}s)")
    out.emit(memory_broadcast(args.subscribers, args.memory_duration, args.rate_a))
    baseline = bench_baseline(args, out)
    for backend, processes in chosen:
        bench_config(backend, processes, args, out, baseline)
    log(f"results: {out.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
