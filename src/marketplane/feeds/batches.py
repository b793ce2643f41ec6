"""A feed's rows as prepared batches: read, mapped and checked (CPU only), ready to be written.

A run writes one batch while the next is prepared. For a small file the next is prepared on a
thread of the writing process. From a size up (`process_from`), a separate process prepares
them (`PREPARER`): it opens the file itself and sends each batch through a pipe. Parsing,
mapping and checking then run on another core and never hold the writer's interpreter lock,
which on a thread they did for most of the write: SQLite and the database driver give the
lock back for every row they step through, and waited up to a switch interval to get it back
each time.

The pipe holds far less than a full batch, so the process is never more than a batch ahead: memory
stays what it is on a thread, whatever the file's size. If the run's process dies, the pipe
closes and the preparing process ends at its next send.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import operator
import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from marketplane.catalog.checks import check_drafts
from marketplane.catalog.model import Category, OfferDraft, ValidOffer
from marketplane.feeds.mapping import EMPTY, Mapped, Mapper, parse_mapping, schema_types
from marketplane.feeds.model import Counts, RowError, offending, shown_value
from marketplane.feeds.parse import Feed, FeedFormat, FeedUnreadable, Row, open_feed
from marketplane.kernel.compact_set import CompactIntSet
from marketplane.kernel.errors import FieldError


@dataclass
class Batch:
    """Rows mapped and checked, and what they count so far (the write adds its outcomes): the
    offers ready to write, each with its line; every row found bad is counted and reported."""

    last_line: int
    counts: Counts
    errors: list[RowError]
    offers: list[ValidOffer]
    lines: list[int]
    deletes: dict[str, int]
    named: list[str]


@dataclass(frozen=True, slots=True)
class Position:
    """How far into the file a batch ends, as the run records it."""

    format: FeedFormat
    compressed: bool
    bytes_read: int  # of the file as stored (compressed or not), for progress


@dataclass(frozen=True)
class Job:
    """What preparing a run's batches needs; sent whole to a preparing process."""

    path: Path
    format: FeedFormat | None
    filename: str | None
    mapping: Any  # the supplier's saved mapping as saved, or None
    categories: list[Category]
    batch_size: int  # rows a batch holds at most
    batch_bytes: int  # content a batch holds at most (decompressed), however few rows


def types_by_ref(categories: Iterable[Category]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for category in categories:
        types = schema_types(category.attribute_schema)
        found[category.id] = found[category.slug] = types
    return found


class Preparer:
    """Maps and checks one run's rows, batch after batch, in the file's order."""

    def __init__(self, job: Job) -> None:
        self.mapping = parse_mapping(job.mapping) if job.mapping is not None else EMPTY
        self.mapper = Mapper(self.mapping, types_for=types_by_ref(job.categories).get)
        self.categories = {c.id: c for c in job.categories} | {c.slug: c for c in job.categories}
        self.skus_before = CompactIntSet()  # hashes of SKUs in earlier batches (duplicates)

    def prepare(self, rows: Sequence[Row]) -> Batch:
        counts = Counts(read=len(rows))
        errors: list[RowError] = []
        drafts: list[OfferDraft] = []
        lines: list[int] = []
        deletes: dict[str, int] = {}
        named: list[str] = []
        for row in rows:
            if row.values is None:
                assert row.error is not None
                errors.append(RowError(row.line, None, row.error, shown_value(row.raw)))
                counts.failed += 1
                continue
            mapped: Mapped = self.mapper.map(row.values)
            if mapped.sku is not None:
                named.append(mapped.sku)
                # Repeats within the batch are reported by the upsert (the last row wins).
                if hash(mapped.sku) in self.skus_before:
                    errors.append(
                        RowError(
                            row.line,
                            mapped.sku,
                            FieldError(
                                "sku", "duplicate_sku", "on an earlier row too; this row wins"
                            ),
                        )
                    )
            if mapped.errors:
                errors.extend(
                    RowError(row.line, mapped.sku, error, shown_value(value))
                    for error, value in mapped.errors
                )
                counts.failed += 1
            elif mapped.delete:
                assert mapped.sku is not None
                if mapped.sku in deletes:
                    counts.unchanged += 1  # a second delete of the same SKU in this batch
                deletes[mapped.sku] = row.line
            else:
                assert mapped.draft is not None
                drafts.append(mapped.draft)
                lines.append(row.line)
        self.skus_before.update(hash(sku) for sku in named)
        offers: list[ValidOffer] = []
        offer_lines: list[int] = []
        for draft, line, outcome in zip(
            drafts, lines, check_drafts(drafts, self.categories), strict=True
        ):
            if isinstance(outcome, list):
                counts.failed += 1
                errors.extend(
                    RowError(line, draft.sku, error, shown_value(offending(draft, error.field)))
                    for error in outcome
                )
            else:
                offers.append(outcome)
                offer_lines.append(line)
        return Batch(rows[-1].line, counts, errors, offers, offer_lines, deletes, named)


def batches(feed: Feed, preparer: Preparer, job: Job) -> Iterator[tuple[Batch, Position]]:
    """The feed's rows, a batch at a time: `job.batch_size` rows, fewer where their content
    passes `job.batch_bytes`. Where the file cannot be read further, the rows read whole before
    that point come as a last batch, and then FeedUnreadable."""
    source = feed.rows()

    def prepared(rows: list[Row]) -> tuple[Batch, Position]:
        return preparer.prepare(rows), Position(feed.format, feed.compressed, feed.bytes_read)

    while True:
        rows: list[Row] = []
        until = feed.content_read + job.batch_bytes
        try:
            for row in source:
                rows.append(row)
                if len(rows) >= job.batch_size or feed.content_read >= until:
                    break
        except FeedUnreadable:
            if rows:
                yield prepared(rows)
            raise
        if not rows:
            return
        yield prepared(rows)


# Tracked objects that may accumulate between two cyclic collections during a feed run: several
# times what a run's batches in flight hold (a prepared batch of 5,000 books is 5,000 of them,
# counted; the writer makes a row, four attribute entries, an event and its payload, and a
# result for each book: some 40,000 a batch).
COLLECT_AFTER = 500_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Runs the cyclic garbage collector only when objects accumulate meanwhile. A batch makes
    hundreds of thousands of objects, and reference counting frees every one of them: a feed
    run makes almost no cyclic garbage (200,000 rows on PostgreSQL without a single collection
    left 3,254 objects to collect in the run's process, 626 in the preparing one, and the same
    peak memory). The collector, though, counts objects made less objects freed, and at
    (20,000, 10, 10) ran ten times a batch while the batches in flight held more: 448
    collections for 200,000 rows, 18 µs of CPU a row (measured: 120 µs a row for both processes
    together, 102 without them). At COLLECT_AFTER it runs only when something accumulates."""
    before = gc.get_threshold()
    gc.set_threshold(COLLECT_AFTER, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _pickled_by_fields(*classes: type) -> None:
    """Sends these dataclasses through the pipe as their class and field values, rebuilt by
    calling the class: a frozen dataclass's default pickling looks its fields up again for
    each object, and took 14% of the run's process (py-spy, 100,000 rows), most of receiving."""
    for cls in classes:
        ForkingPickler.register(cls, _by_fields(cls))


def _by_fields(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]]:
    get = operator.attrgetter(*(f.name for f in dataclasses.fields(cls)))
    return lambda obj: (cls, get(obj))


_pickled_by_fields(Position, Counts, RowError, FieldError)


def _batch_fields(batch: Batch) -> tuple[Callable[..., Batch], tuple[Any, ...]]:
    """A batch's offers go as plain tuples, rebuilt at the other end: each pickled as its class
    and fields instead took twice as long both ways (5,000 books: 94 ms to send and 119 to
    receive, against 41 and 60, as dataclasses then)."""
    offers = [tuple(offer) for offer in batch.offers]
    fields = (batch.last_line, batch.counts, batch.errors, offers, batch.lines)
    return _batch, (*fields, batch.deletes, batch.named)


def _batch(
    last_line: int,
    counts: Counts,
    errors: list[RowError],
    offers: list[tuple[Any, ...]],
    lines: list[int],
    deletes: dict[str, int],
    named: list[str],
) -> Batch:
    rebuilt = list(map(ValidOffer._make, offers))
    return Batch(last_line, counts, errors, rebuilt, lines, deletes, named)


ForkingPickler.register(Batch, _batch_fields)


class PreparationFailed(Exception):
    """The preparing process failed for a reason of its own (not the file's)."""


class Batches:
    """A run's prepared batches, on a thread or from a separate process; `columns` are the
    file's (None for JSON). Closed when done, whether or not every batch was taken."""

    columns: list[str] | None

    async def next(self) -> tuple[Batch, Position] | None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _OnThread(Batches):
    def __init__(self, job: Job) -> None:
        self.handle = job.path.open("rb")
        try:
            feed = open_feed(self.handle, format=job.format, filename=job.filename)
        except BaseException:
            self.handle.close()
            raise
        self.columns = feed.columns
        self.source = batches(feed, Preparer(job), job)

    async def next(self) -> tuple[Batch, Position] | None:
        return await asyncio.to_thread(next, self.source, None)

    async def close(self) -> None:
        self.handle.close()


def prepare_apart() -> None:
    """A preparing process's whole life (`PREPARER`): reads its job from stdin, opens the file,
    says so, then sends its batches through the pipe its parent gave it."""
    conn = Connection(int(sys.argv[1]), readable=False)
    try:
        job: Job = pickle.load(sys.stdin.buffer)  # noqa: S301 (from its parent, the run)
        with fewer_collections(), job.path.open("rb") as handle:
            feed = open_feed(handle, format=job.format, filename=job.filename)
            conn.send(("open", feed.columns))
            for prepared in batches(feed, Preparer(job), job):
                conn.send(("batch", *prepared))
        conn.send(("end",))
    except FeedUnreadable as exc:
        conn.send(("unreadable", exc.line, exc.detail))
    except BrokenPipeError:
        pass  # the run's process went away
    except OSError as exc:
        conn.send(("oserror", str(exc)))
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


# A fresh interpreter that imports what preparing needs and nothing else: not the host's main
# module, as multiprocessing's spawn would (the whole CLI and web stack, ~100 MB more).
PREPARER = "from marketplane.feeds.batches import prepare_apart; prepare_apart()"


class _InProcess(Batches):
    @classmethod
    async def start(cls, job: Job) -> _InProcess:
        batches = cls(job)
        try:
            batches.columns = (await batches._receive("open"))[1]
        except BaseException:
            await batches.close()
            raise
        return batches

    def __init__(self, job: Job) -> None:
        reading, writing = os.pipe()
        try:
            self.process = subprocess.Popen(  # noqa: S603 (this interpreter, a fixed program)
                [sys.executable, "-c", PREPARER, str(writing)],
                stdin=subprocess.PIPE,
                pass_fds=(writing,),
            )
        except BaseException:
            os.close(reading)
            raise
        finally:
            os.close(writing)
        self.conn = Connection(reading, writable=False)
        self.done = False
        assert self.process.stdin is not None
        # If it ended already, the pipe says why.
        with self.process.stdin as stdin, contextlib.suppress(BrokenPipeError):
            stdin.write(pickle.dumps(job))

    async def _receive(self, *expected: str) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = await asyncio.to_thread(self.conn.recv)
        except (EOFError, OSError):  # the pipe closed, at or within a message
            code = await asyncio.to_thread(self.process.wait)
            raise PreparationFailed(
                f"the process preparing the rows ended (exit code {code})"
            ) from None
        kind = message[0]
        if kind == "unreadable":
            raise FeedUnreadable(message[2], line=message[1])
        if kind == "oserror":
            raise OSError(message[1])
        if kind == "failed":
            raise PreparationFailed(message[1])
        if kind not in expected:
            raise PreparationFailed(f"the preparing process sent {kind!r}")
        return message

    async def next(self) -> tuple[Batch, Position] | None:
        if self.done:
            return None
        message = await self._receive("batch", "end")
        if message[0] == "end":
            self.done = True
            return None
        return message[1], message[2]

    async def close(self) -> None:
        self.conn.close()
        if not self.done:
            self.process.terminate()  # stopped early: its batches are not wanted
        await asyncio.to_thread(self.process.wait)


async def open_batches(job: Job, *, apart: bool) -> Batches:
    """The run's batches; prepared by a separate process if `apart`."""
    if apart:
        return await _InProcess.start(job)
    return await asyncio.to_thread(_OnThread, job)
