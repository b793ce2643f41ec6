"""Feed runs as data: their states and moves, their counts, and the rules a run decides by."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from marketplane.catalog.model import OfferDraft
from marketplane.kernel.errors import FieldError


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    HELD = "held"


class Mode(StrEnum):
    DELTA = "delta"  # upsert what the file names; a delete flag removes
    FULL = "full"  # and deactivate the supplier's offers the file does not name


class Origin(StrEnum):
    UPLOAD = "upload"
    URL = "url"
    CLI = "cli"


# Every move a run can make; anything else is a bug or a race, refused with the current state.
TRANSITIONS: dict[tuple[RunStatus, str], RunStatus] = {
    (RunStatus.QUEUED, "start"): RunStatus.RUNNING,
    (RunStatus.QUEUED, "fail"): RunStatus.FAILED,
    (RunStatus.RUNNING, "complete"): RunStatus.COMPLETE,
    (RunStatus.RUNNING, "fail"): RunStatus.FAILED,
    (RunStatus.RUNNING, "hold"): RunStatus.HELD,
    (RunStatus.HELD, "confirm"): RunStatus.RUNNING,
    (RunStatus.HELD, "discard"): RunStatus.COMPLETE,
}


def next_status(current: RunStatus, action: str) -> RunStatus | None:
    return TRANSITIONS.get((current, action))


@dataclass
class Counts:
    """What a run did with the rows it read: read = inserted + updated + unchanged + deleted +
    failed, always. `deactivated` counts offers a full feed switched off (not rows of the file)."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    deactivated: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def balanced(self) -> bool:
        return self.read == (
            self.inserted + self.updated + self.unchanged + self.deleted + self.failed
        )


@dataclass(frozen=True, slots=True)
class RowError:
    """One thing wrong with one row: where (line), which offer (sku), what and the value."""

    line: int
    sku: str | None
    error: FieldError
    value: str | None = None


VALUE_LIMIT = 500  # characters of an offending value kept in a report


def shown_value(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT] + "…"


def offending(draft: OfferDraft, field: str) -> Any:
    """The value a row gave for `field`, for its error report."""
    if field.startswith("attributes."):
        return draft.attributes.get(field.split(".", 2)[1])
    return {
        "sku": draft.sku,
        "title": draft.title,
        "category": draft.category,
        "quantity": draft.quantity,
        "price.amount": draft.price_amount,
        "price.decimal": draft.price_decimal,
        "price": draft.price_decimal if draft.price_decimal is not None else draft.price_amount,
        "price.currency": draft.price_currency,
    }.get(field)


def should_hold(to_deactivate: int, live: int, threshold: float) -> bool:
    """A full feed that would switch off more than `threshold` of the supplier's live offers is
    more likely a broken file than a decision: it waits for someone to confirm it."""
    return live > 0 and to_deactivate > threshold * live


def all_rows_failed(counts: Counts) -> bool:
    return counts.read > 0 and counts.failed == counts.read


# Characters that make a spreadsheet treat a cell as a formula (CSV injection): a report cell
# starting with one is prefixed with an apostrophe, which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass
class FeedRun:
    id: str
    supplier_id: str
    status: RunStatus
    mode: Mode
    dry_run: bool
    origin: Origin
    created_at: datetime
    counts: Counts
    line_reached: int = 0
    source_id: str | None = None
    filename: str | None = None
    format: str | None = None
    compressed: bool | None = None
    file_path: str | None = None
    file_bytes: int | None = None
    file_sha256: str | None = None
    mapping_version: int | None = None
    to_deactivate: int | None = None
    live_before: int | None = None
    error_code: str | None = None
    error_detail: str | None = None
    worker: str | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return (end - self.started_at).total_seconds()

    @property
    def rows_per_s(self) -> float | None:
        seconds = self.seconds
        return round(self.counts.read / seconds, 1) if seconds else None

    @property
    def error_rate(self) -> float | None:
        return round(self.counts.failed / self.counts.read, 4) if self.counts.read else None


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A URL the platform fetches for a supplier every `interval_seconds`."""

    id: str
    supplier_id: str
    url: str
    mode: Mode
    format: str | None
    interval_seconds: int
    enabled: bool
    next_run_at: datetime
    last_run_id: str | None
    created_at: datetime
    updated_at: datetime
