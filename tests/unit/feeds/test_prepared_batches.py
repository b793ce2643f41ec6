"""Preparing a feed's batches: what a preparing process sends is what a thread would have made."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

from marketplane.catalog.model import Category, ValidOffer
from marketplane.demo.data import BOOKS_SCHEMA
from marketplane.feeds.batches import COLLECT_AFTER, Job, Preparer, batches, fewer_collections
from marketplane.feeds.parse import open_feed

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BOOKS = Category("cat_books", "books", "Books", BOOKS_SCHEMA, 1, NOW, NOW)


def book(sku: str, **changes: object) -> str:
    body: dict[str, object] = {
        "sku": sku,
        "category": "books",
        "title": f"Book {sku}",
        "description": "a first edition",
        "price": {"amount": 999, "currency": "EUR"},
        "quantity": 2,
        "attributes": {"isbn": "9780306406157", "author": "Ada Hartmann", "year": 2001},
    }
    return json.dumps(body | changes) + "\n"


def job_for(path: Path, batch_size: int) -> Job:
    return Job(path, None, path.name, None, [BOOKS], batch_size, 1 << 20)


def test_a_prepared_batch_crosses_the_pipe_whole(tmp_path: Path) -> None:
    # given rows of every kind: good, bad in a field, unparseable, and a SKU seen in a batch before
    path = tmp_path / "feed.jsonl"
    path.write_text(
        book("A") + book("B", quantity=-1) + "{not json\n" + book("C") + book("A", quantity=5)
    )
    job = job_for(path, batch_size=3)
    with path.open("rb") as handle:
        prepared = list(batches(open_feed(handle, filename=path.name), Preparer(job), job))
    # when each batch goes through the pickler a preparing process sends with
    crossed = [ForkingPickler.loads(ForkingPickler.dumps(p)) for p in prepared]
    # then it arrives equal, field for field
    assert crossed == prepared
    first, second = (batch for batch, _ in crossed)
    assert [type(o) for o in first.offers] == [ValidOffer] and first.lines == [1]
    assert first.counts.read == 3 and first.counts.failed == 2  # a bad quantity, not JSON
    assert [(e.line, e.error.field, e.value) for e in first.errors] == [
        (3, "row", "{not json"),
        (2, "quantity", "-1"),
    ]
    assert [e.error.code for e in second.errors] == ["duplicate_sku"]
    assert [p.bytes_read for _, p in crossed][-1] == path.stat().st_size


def _collections_while(make: Callable[[], object]) -> int:
    """How many cyclic collections ran while `make` ran under fewer_collections."""
    ran: list[int] = []

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            ran.append(info["generation"])

    gc.collect()
    gc.callbacks.append(noted)
    try:
        with fewer_collections():
            make()
    finally:
        gc.callbacks.remove(noted)
    return len(ran)


def test_a_run_collects_no_garbage_while_batches_come_and_go() -> None:
    # given batches of objects that reference counting frees, one after the other: 40 of
    # 50,000 (two million made, at the default thresholds some 2,800 collections)
    def batches_freed() -> None:
        for _ in range(40):
            batch = [[n] for n in range(50_000)]
            del batch

    # then none ran
    assert _collections_while(batches_freed) == 0


def test_a_run_collects_when_objects_accumulate() -> None:
    # given objects that stay: more than COLLECT_AFTER of them
    kept: list[list[int]] = []

    def accumulated() -> None:
        kept.extend([n] for n in range(COLLECT_AFTER + 10_000))

    # then the collector ran, and the threshold is what it was afterwards
    before = gc.get_threshold()
    assert _collections_while(accumulated) >= 1
    assert gc.get_threshold() == before
