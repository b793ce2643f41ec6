"""Preparing a feed's batches: what a preparing process sends is what a thread would have made."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

from marketplane.catalog.model import Category, ValidOffer
from marketplane.demo.data import BOOKS_SCHEMA
from marketplane.feeds.batches import Job, Preparer, batches
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
