"""Feed shapes on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from marketplane.feeds.model import FeedRun, FeedSource, Mode, Origin, RunStatus


class RunCounts(BaseModel):
    read: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    deactivated: int


class FeedRunOut(BaseModel):
    id: str
    supplier: str
    status: RunStatus
    mode: Mode
    dry_run: bool
    origin: Origin
    source: str | None
    filename: str | None
    format: str | None
    compressed: bool | None
    file_bytes: int | None
    file_sha256: str | None
    mapping_version: int | None
    counts: RunCounts
    line_reached: int
    to_deactivate: int | None = Field(
        description="Full feeds: live offers the file did not name (deactivated, or held)."
    )
    live_before: int | None
    error: dict[str, str | None] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    rows_per_s: float | None
    error_rate: float | None


def run_out(run: FeedRun) -> dict[str, Any]:
    c = run.counts
    return {
        "id": run.id,
        "supplier": run.supplier_id,
        "status": run.status,
        "mode": run.mode,
        "dry_run": run.dry_run,
        "origin": run.origin,
        "source": run.source_id,
        "filename": run.filename,
        "format": run.format,
        "compressed": run.compressed,
        "file_bytes": run.file_bytes,
        "file_sha256": run.file_sha256,
        "mapping_version": run.mapping_version,
        "counts": {
            "read": c.read,
            "inserted": c.inserted,
            "updated": c.updated,
            "unchanged": c.unchanged,
            "deleted": c.deleted,
            "failed": c.failed,
            "deactivated": c.deactivated,
        },
        "line_reached": run.line_reached,
        "to_deactivate": run.to_deactivate,
        "live_before": run.live_before,
        "error": {"code": run.error_code, "detail": run.error_detail} if run.error_code else None,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "seconds": run.seconds,
        "rows_per_s": run.rows_per_s,
        "error_rate": run.error_rate,
    }


class FeedRunPage(BaseModel):
    data: list[FeedRunOut]
    has_more: bool
    next_cursor: str | None


class RowErrorOut(BaseModel):
    seq: int
    line: int
    sku: str | None
    field: str
    code: str
    message: str
    value: str | None


class RowErrorPage(BaseModel):
    data: list[RowErrorOut]
    has_more: bool
    next_cursor: str | None


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mapping: dict[str, Any] = Field(
        description="fields and attributes, each from a column, a JMESPath or a constant"
    )


class MappingOut(BaseModel):
    mapping: dict[str, Any]
    version: int


class PreviewRow(BaseModel):
    line: int
    sku: str | None
    outcome: str = Field(description="valid, delete or invalid")
    offer: dict[str, Any] | None
    errors: list[RowErrorOut]


class PreviewOut(BaseModel):
    format: str
    compressed: bool
    columns: list[str] | None
    missing_columns: list[str]
    rows: list[PreviewRow]


class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://")
    mode: Mode = Mode.DELTA
    format: str | None = Field(default=None, pattern=r"^(csv|jsonl|json)$")
    interval_minutes: int = Field(default=60, ge=5, le=7 * 24 * 60)


class SourceOut(BaseModel):
    id: str
    url: str
    mode: Mode
    format: str | None
    interval_seconds: int
    enabled: bool
    next_run_at: datetime
    last_run: str | None
    created_at: datetime


def source_out(source: FeedSource) -> dict[str, Any]:
    return {
        "id": source.id,
        "url": source.url,
        "mode": source.mode,
        "format": source.format,
        "interval_seconds": source.interval_seconds,
        "enabled": source.enabled,
        "next_run_at": source.next_run_at,
        "last_run": source.last_run_id,
        "created_at": source.created_at,
    }


class Step(BaseModel):
    name: str
    done: bool
    at: datetime | None


class IntegrationOut(BaseModel):
    supplier: str
    created_at: datetime
    steps: list[Step]
    integration_seconds: float | None = Field(
        description="Supplier created → first live offer, once it happened."
    )


class SupplierIntegration(BaseModel):
    supplier: str
    created_at: datetime
    first_offer_live_at: datetime | None
    integration_seconds: float | None


class RunMeasure(BaseModel):
    id: str
    supplier: str
    status: RunStatus
    rows: int
    seconds: float | None
    rows_per_s: float | None
    error_rate: float | None


class FeedMetricsOut(BaseModel):
    integration: list[SupplierIntegration]
    integration_seconds_median: float | None
    runs: list[RunMeasure]
    rows_per_s_median: float | None
    error_rate: float | None = Field(description="Failed rows over rows read, these runs.")
