"""Feed routes: a supplier's own feeds, mapping, sources and checklist; the operator's view of
every supplier's, and runs on a supplier's behalf."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse

from marketplane.access import service as access
from marketplane.access.model import Permission, Principal
from marketplane.bootstrap import Platform
from marketplane.feeds import service
from marketplane.feeds.model import FeedRun, Mode, Origin
from marketplane.feeds.parse import FeedFormat, FeedUnreadable
from marketplane.feeds.schemas import (
    FeedMetricsOut,
    FeedRunOut,
    FeedRunPage,
    IntegrationOut,
    MappingIn,
    MappingOut,
    PreviewOut,
    RowErrorPage,
    SourceIn,
    SourceOut,
    run_out,
    source_out,
)
from marketplane.feeds.worker import feed_dir
from marketplane.http.deps import PlatformDep, SupplierDep, admin
from marketplane.http.openapi import READ, WRITE
from marketplane.kernel.errors import NotFound, field_error

supply = APIRouter(prefix="/supply/v1", tags=["supply: feeds"])
operator = APIRouter(prefix="/admin/v1", tags=["admin: feeds"])

Before = Annotated[str | None, Query(max_length=40, description="next_cursor of the last page")]
Limit = Annotated[int, Query(ge=1, le=100)]
ACCEPTED = {**WRITE, 202: {"model": FeedRunOut, "description": "Queued"}}
FILE_DOC = "CSV, JSON Lines or a JSON array, optionally gzip-compressed."
REPORT = {
    200: {
        "description": "The row errors, in the uploaded format",
        "content": {media: {} for media in service.REPORT_TYPES.values()},
    },
    **READ,
}


FORMAT_DOC = "csv, jsonl or json; when absent, told by the file's name, else its content."
MODE_DOC = "delta (the default: upsert, delete flags remove) or full (also deactivate the rest)."


def _mode(value: str | None) -> Mode:
    if not value:
        return Mode.DELTA
    try:
        return Mode(value)
    except ValueError:
        raise field_error("mode", "invalid_mode", "delta or full") from None


def _format(value: str | None) -> FeedFormat | None:
    if not value:
        return None
    try:
        return FeedFormat(value)
    except ValueError:
        raise field_error("format", "invalid_format", "csv, jsonl or json") from None


async def _upload(
    platform: Platform,
    *,
    supplier_id: str,
    file: UploadFile,
    mode: Mode,
    dry_run: bool,
    feed_format: str | None,
) -> dict[str, Any]:
    _format(feed_format)
    run_id = service.new_run_id()
    stored = await asyncio.to_thread(
        service.store_upload,
        file.file,
        feed_dir(platform.settings) / run_id,
        max_bytes=platform.settings.feed_max_bytes,
    )
    try:
        async with platform.uow() as uow:
            run = await service.create_run(
                uow,
                supplier_id=supplier_id,
                mode=mode,
                dry_run=dry_run,
                origin=Origin.UPLOAD,
                filename=file.filename,
                stored=stored,
                run_id=run_id,
                feed_format=feed_format or None,
            )
            await uow.commit()
    except BaseException:
        stored.path.unlink(missing_ok=True)
        raise
    return run_out(run)


def _page(runs: list[FeedRun], limit: int) -> dict[str, Any]:
    more = len(runs) > limit
    runs = runs[:limit]
    return {
        "data": [run_out(r) for r in runs],
        "has_more": more,
        "next_cursor": runs[-1].id if more else None,
    }


async def _errors(platform: Platform, run: FeedRun, after: int, limit: int) -> dict[str, Any]:
    async with platform.uow(write=False) as uow:
        found = await service.run_errors(uow, run_id=run.id, after_seq=after, limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    return {
        "data": found,
        "has_more": more,
        "next_cursor": str(found[-1]["seq"]) if more else None,
    }


def _report(platform: Platform, run: FeedRun) -> StreamingResponse:
    kind = run.format or "csv"
    return StreamingResponse(
        service.error_report(platform.uow, run),
        media_type=service.REPORT_TYPES[kind],
        headers={"Content-Disposition": f'attachment; filename="{run.id}-errors.{kind}"'},
    )


# --- supply: its own ------------------------------------------------------------------------


@supply.put(
    "/feed-mapping", response_model=MappingOut, responses=WRITE, operation_id="supply_put_mapping"
)
async def put_mapping(body: MappingIn, platform: PlatformDep, principal: SupplierDep) -> Any:
    async with platform.uow() as uow:
        version = await service.save_mapping(uow, supplier_id=principal.owner_id, spec=body.mapping)
        await uow.commit()
    return {"mapping": body.mapping, "version": version}


@supply.get(
    "/feed-mapping", response_model=MappingOut, responses=READ, operation_id="supply_get_mapping"
)
async def get_mapping(platform: PlatformDep, principal: SupplierDep) -> Any:
    async with platform.uow(write=False) as uow:
        found = await service.get_mapping(uow, supplier_id=principal.owner_id)
    if found is None:
        raise NotFound("no mapping saved: columns named after the fields map to them", "no_mapping")
    return {"mapping": found[0], "version": found[1]}


@supply.post(
    "/feed-mapping/preview",
    response_model=PreviewOut,
    responses=WRITE,
    operation_id="supply_preview_feed",
    description="The first rows of a file as they would be stored, with the mapping given (or "
    "the saved one). Nothing is written.",
)
async def preview_feed(
    platform: PlatformDep,
    principal: SupplierDep,
    file: Annotated[UploadFile, File(description=FILE_DOC)],
    mapping: Annotated[str | None, Form(description="A mapping as JSON, to try it first")] = None,
    rows: Annotated[int, Form(ge=1, le=100)] = 10,
    format: Annotated[str | None, Form(description=FORMAT_DOC)] = None,
) -> Any:
    spec = None
    if mapping is not None:
        try:
            spec = orjson.loads(mapping)
        except orjson.JSONDecodeError:
            raise field_error("mapping", "invalid_json", "the mapping is not JSON") from None
    try:
        async with platform.uow(write=False) as uow:
            return await service.preview(
                uow,
                supplier_id=principal.owner_id,
                stream=file.file,
                filename=file.filename,
                feed_format=_format(format),
                spec=spec,
                limit=rows,
            )
    except FeedUnreadable as exc:
        raise field_error("file", exc.code, exc.detail) from None


@supply.post(
    "/feeds",
    response_model=FeedRunOut,
    status_code=202,
    responses=ACCEPTED,
    operation_id="supply_upload_feed",
    description="Queues a run of the file. `full` also deactivates the offers it does not "
    "name (held for confirmation past the configured share); `dry_run` validates and counts.",
)
async def upload_feed(
    platform: PlatformDep,
    principal: SupplierDep,
    file: Annotated[UploadFile, File(description=FILE_DOC)],
    mode: Annotated[str | None, Form(description=MODE_DOC)] = None,
    dry_run: Annotated[bool, Form()] = False,
    format: Annotated[str | None, Form(description=FORMAT_DOC)] = None,
) -> Any:
    return await _upload(
        platform,
        supplier_id=principal.owner_id,
        file=file,
        mode=_mode(mode),
        dry_run=dry_run,
        feed_format=format,
    )


@supply.get("/feeds", response_model=FeedRunPage, responses=READ, operation_id="supply_list_feeds")
async def list_feeds(
    platform: PlatformDep, principal: SupplierDep, cursor: Before = None, limit: Limit = 20
) -> Any:
    async with platform.uow(write=False) as uow:
        runs = await service.list_runs(
            uow, supplier_id=principal.owner_id, before=cursor, limit=limit + 1
        )
    return _page(runs, limit)


async def _own_run(platform: Platform, principal: Principal, run_id: str) -> FeedRun:
    async with platform.uow(write=False) as uow:
        return await service.get_run(uow, run_id=run_id, supplier_id=principal.owner_id)


@supply.get(
    "/feeds/{run_id}", response_model=FeedRunOut, responses=READ, operation_id="supply_get_feed"
)
async def get_feed(run_id: str, platform: PlatformDep, principal: SupplierDep) -> Any:
    return run_out(await _own_run(platform, principal, run_id))


@supply.get(
    "/feeds/{run_id}/errors",
    response_model=RowErrorPage,
    responses=READ,
    operation_id="supply_feed_errors",
)
async def feed_errors(
    run_id: str,
    platform: PlatformDep,
    principal: SupplierDep,
    cursor: Annotated[int, Query(ge=0)] = 0,
    limit: Limit = 100,
) -> Any:
    return await _errors(platform, await _own_run(platform, principal, run_id), cursor, limit)


@supply.get(
    "/feeds/{run_id}/error-report",
    response_class=StreamingResponse,
    responses=REPORT,
    operation_id="supply_feed_error_report",
)
async def feed_error_report(run_id: str, platform: PlatformDep, principal: SupplierDep) -> Any:
    return _report(platform, await _own_run(platform, principal, run_id))


@supply.post(
    "/feeds/{run_id}/confirm",
    response_model=FeedRunOut,
    responses=WRITE,
    operation_id="supply_confirm_feed",
    description="A held full feed: deactivate the offers it did not name.",
)
async def confirm_feed(run_id: str, platform: PlatformDep, principal: SupplierDep) -> Any:
    run = await service.resolve_held(
        platform.uow, run_id=run_id, supplier_id=principal.owner_id, confirm=True
    )
    return run_out(run)


@supply.post(
    "/feeds/{run_id}/discard",
    response_model=FeedRunOut,
    responses=WRITE,
    operation_id="supply_discard_feed",
    description="A held full feed: complete it without deactivating anything.",
)
async def discard_feed(run_id: str, platform: PlatformDep, principal: SupplierDep) -> Any:
    run = await service.resolve_held(
        platform.uow, run_id=run_id, supplier_id=principal.owner_id, confirm=False
    )
    return run_out(run)


@supply.post(
    "/feed-sources",
    response_model=SourceOut,
    status_code=201,
    responses={**WRITE, 201: {"model": SourceOut, "description": "Registered"}},
    operation_id="supply_add_feed_source",
)
async def add_source(body: SourceIn, platform: PlatformDep, principal: SupplierDep) -> Any:
    async with platform.uow() as uow:
        source = await service.add_source(
            uow,
            supplier_id=principal.owner_id,
            url=body.url,
            mode=body.mode,
            feed_format=body.format,
            interval_seconds=body.interval_minutes * 60,
        )
        await uow.commit()
    return source_out(source)


@supply.get(
    "/feed-sources",
    response_model=list[SourceOut],
    responses=READ,
    operation_id="supply_list_feed_sources",
)
async def list_sources(platform: PlatformDep, principal: SupplierDep) -> Any:
    async with platform.uow(write=False) as uow:
        return [
            source_out(s) for s in await service.list_sources(uow, supplier_id=principal.owner_id)
        ]


@supply.post(
    "/feed-sources/{source_id}/disable",
    response_model=SourceOut,
    responses=WRITE,
    operation_id="supply_disable_feed_source",
)
async def disable_source(source_id: str, platform: PlatformDep, principal: SupplierDep) -> Any:
    async with platform.uow() as uow:
        source = await service.disable_source(
            uow, supplier_id=principal.owner_id, source_id=source_id
        )
        await uow.commit()
    return source_out(source)


def _integration(checklist: Any) -> dict[str, Any]:
    return {
        "supplier": checklist.supplier_id,
        "created_at": checklist.created_at,
        "steps": checklist.steps(),
        "integration_seconds": checklist.integration_seconds,
    }


@supply.get(
    "/integration",
    response_model=IntegrationOut,
    responses=READ,
    operation_id="supply_integration",
    description="The way to going live: key created, mapping saved, first feed validated, "
    "first offer live, first order accepted — each with when it happened.",
)
async def integration(platform: PlatformDep, principal: SupplierDep) -> Any:
    async with platform.uow(write=False) as uow:
        return _integration(await access.checklist(uow, supplier_id=principal.owner_id))


# --- admin: every supplier's ----------------------------------------------------------------

Reader = Annotated[Principal, Depends(admin(Permission.SUPPLIERS_READ))]
Writer = Annotated[Principal, Depends(admin(Permission.SUPPLIERS_WRITE))]


async def _any_run(platform: Platform, run_id: str) -> FeedRun:
    async with platform.uow(write=False) as uow:
        return await service.get_run(uow, run_id=run_id)


@operator.get("/feeds", response_model=FeedRunPage, responses=READ, operation_id="admin_list_feeds")
async def admin_list_feeds(
    platform: PlatformDep,
    _: Reader,
    supplier: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Before = None,
    limit: Limit = 20,
) -> Any:
    async with platform.uow(write=False) as uow:
        runs = await service.list_runs(uow, supplier_id=supplier, before=cursor, limit=limit + 1)
    return _page(runs, limit)


@operator.get(
    "/feeds/{run_id}", response_model=FeedRunOut, responses=READ, operation_id="admin_get_feed"
)
async def admin_get_feed(run_id: str, platform: PlatformDep, _: Reader) -> Any:
    return run_out(await _any_run(platform, run_id))


@operator.get(
    "/feeds/{run_id}/errors",
    response_model=RowErrorPage,
    responses=READ,
    operation_id="admin_feed_errors",
)
async def admin_feed_errors(
    run_id: str,
    platform: PlatformDep,
    _: Reader,
    cursor: Annotated[int, Query(ge=0)] = 0,
    limit: Limit = 100,
) -> Any:
    return await _errors(platform, await _any_run(platform, run_id), cursor, limit)


@operator.get(
    "/feeds/{run_id}/error-report",
    response_class=StreamingResponse,
    responses=REPORT,
    operation_id="admin_feed_error_report",
)
async def admin_feed_error_report(run_id: str, platform: PlatformDep, _: Reader) -> Any:
    return _report(platform, await _any_run(platform, run_id))


@operator.post(
    "/suppliers/{supplier_id}/feeds",
    response_model=FeedRunOut,
    status_code=202,
    responses=ACCEPTED,
    operation_id="admin_upload_feed",
    description="Runs a feed on a supplier's behalf.",
)
async def admin_upload_feed(
    supplier_id: str,
    platform: PlatformDep,
    _: Writer,
    file: Annotated[UploadFile, File(description=FILE_DOC)],
    mode: Annotated[str | None, Form(description=MODE_DOC)] = None,
    dry_run: Annotated[bool, Form()] = False,
    format: Annotated[str | None, Form(description=FORMAT_DOC)] = None,
) -> Any:
    async with platform.uow(write=False) as uow:
        await access.get_supplier(uow, supplier_id=supplier_id)
    return await _upload(
        platform,
        supplier_id=supplier_id,
        file=file,
        mode=_mode(mode),
        dry_run=dry_run,
        feed_format=format,
    )


@operator.post(
    "/feeds/{run_id}/confirm",
    response_model=FeedRunOut,
    responses=WRITE,
    operation_id="admin_confirm_feed",
)
async def admin_confirm_feed(run_id: str, platform: PlatformDep, _: Writer) -> Any:
    return run_out(
        await service.resolve_held(platform.uow, run_id=run_id, supplier_id=None, confirm=True)
    )


@operator.post(
    "/feeds/{run_id}/discard",
    response_model=FeedRunOut,
    responses=WRITE,
    operation_id="admin_discard_feed",
)
async def admin_discard_feed(run_id: str, platform: PlatformDep, _: Writer) -> Any:
    return run_out(
        await service.resolve_held(platform.uow, run_id=run_id, supplier_id=None, confirm=False)
    )


@operator.get(
    "/suppliers/{supplier_id}/integration",
    response_model=IntegrationOut,
    responses=READ,
    operation_id="admin_supplier_integration",
)
async def admin_integration(supplier_id: str, platform: PlatformDep, _: Reader) -> Any:
    async with platform.uow(write=False) as uow:
        return _integration(await access.checklist(uow, supplier_id=supplier_id))


@operator.get(
    "/feed-metrics",
    response_model=FeedMetricsOut,
    responses=READ,
    operation_id="admin_feed_metrics",
    description="Integration time per supplier (created → first live offer); rows/s and error "
    "rate of the latest finished feed runs.",
)
async def admin_feed_metrics(platform: PlatformDep, _: Reader) -> Any:
    async with platform.uow(write=False) as uow:
        return await service.metrics(uow)
