"""The event log on each side: all of it (operators), a supplier's own, what a client may see."""

from __future__ import annotations

import os
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from marketplane.access.model import ClientView, Permission, Principal
from marketplane.catalog import service as catalog
from marketplane.events import service
from marketplane.events.hub import Frames, Subscriber, TooManyStreams
from marketplane.events.model import Event, EventType, present, visible_to
from marketplane.http.deps import (
    PlatformDep,
    StoreReaderDep,
    StreamReaderDep,
    SupplierDep,
    admin,
)
from marketplane.http.openapi import READ
from marketplane.http.responses import EventStream
from marketplane.kernel.errors import TooManyRequests, field_error
from marketplane.observability import FRESHNESS, OPEN_STREAMS, since

store = APIRouter(prefix="/store/v1", tags=["store: events"])
supply = APIRouter(prefix="/supply/v1", tags=["supply: events"])
operator = APIRouter(prefix="/admin/v1", tags=["admin: events"])

After = Annotated[
    int,
    Query(ge=0, le=2**62, description="Events after this sequence number: 0, or a next_cursor"),
]
Types = Annotated[
    str | None,
    Query(max_length=2000, description="Comma-separated event types, e.g. offer.price_changed"),
]
Limit = Annotated[int, Query(ge=1, le=100)]
Reader = Annotated[Principal, Depends(admin(Permission.EVENTS_READ))]


class EventObject(BaseModel):
    type: str = Field(description="offer, supplier or feed_run")
    id: str
    version: int


class EventOut(BaseModel):
    seq: int = Field(description="The event's place in the log: resume with after=seq")
    id: str
    type: str
    object: EventObject
    occurred_at: str
    data: dict[str, Any]


class EventPage(BaseModel):
    data: list[EventOut]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `after` for the next page")


def _types(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    names = [t.strip() for t in raw.split(",") if t.strip()]
    known = {str(t) for t in EventType}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise field_error(
            "types", "unknown_event_type", f"unknown event types: {', '.join(unknown[:5])}"
        )
    return names


def _page(found: list[Event], limit: int, shown: list[dict[str, Any]]) -> dict[str, Any]:
    """Oldest first. `next_cursor` is the last event read, even one the caller may not see."""
    more = len(found) > limit
    last = found[limit - 1].seq if more else (found[-1].seq if found else None)
    return {
        "data": shown[: limit if more else None],
        "has_more": more,
        "next_cursor": str(last) if more else None,
    }


@store.get("/events", response_model=EventPage, responses=READ, operation_id="store_list_events")
async def store_events(
    platform: PlatformDep,
    principal: StoreReaderDep,
    after: After = 0,
    types: Types = None,
    limit: Limit = 50,
) -> Any:
    """Changes to what this client may see, oldest first: offers as the store shows them, priced
    with the client's markup. An offer entering the client's view is `offer.created`, one
    leaving it `offer.removed`."""
    view = principal.client
    assert view is not None
    async with platform.uow(write=False) as uow:
        found = await service.read(
            uow, after=after, limit=limit + 1, types=_types(types), view=view
        )
    return _page(found, limit, [present(e, view=view) for e in found])


@supply.get("/events", response_model=EventPage, responses=READ, operation_id="supply_list_events")
async def supply_events(
    platform: PlatformDep,
    principal: SupplierDep,
    after: After = 0,
    types: Types = None,
    limit: Limit = 50,
) -> Any:
    """This supplier's own events (its offers, its status, its feed runs), oldest first."""
    async with platform.uow(write=False) as uow:
        found = await service.read(
            uow, after=after, limit=limit + 1, types=_types(types), supplier_id=principal.owner_id
        )
    return _page(found, limit, [present(e) for e in found])


@operator.get("/events", response_model=EventPage, responses=READ, operation_id="admin_list_events")
async def admin_events(
    platform: PlatformDep,
    _: Reader,
    after: After = 0,
    types: Types = None,
    supplier: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = 50,
) -> Any:
    """Every event, oldest first."""
    async with platform.uow(write=False) as uow:
        found = await service.read(
            uow, after=after, limit=limit + 1, types=_types(types), supplier_id=supplier
        )
    return _page(found, limit, [present(e) for e in found])


# --- the live stream ------------------------------------------------------------------------

STREAM_DOC = """Server-sent events: the same events as `GET /store/v1/events`, as they happen.

Each is `id: <seq>`, `event: <type>`, `data: <the event as JSON>`. Reconnect with the header
`Last-Event-ID` (or `after=`) to resume after the last one received: nothing in between is
lost. A comment line is sent when idle (heartbeat). A stream that falls too far behind receives
`event: dropped` with the seq to resume after, and is closed; so is one past the per-key limit
of open streams (429). A browser's EventSource, which cannot send headers, may pass a
publishable key as `key=`."""


WRITE_AT_ONCE = 256  # queued events a stream sends in one write


def _frame(seq: int, kind: str, body: bytes) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, kind.encode(), body)


def _ids(raw: str | None, name: str, most: int) -> frozenset[str] | None:
    if not raw:
        return None
    values = frozenset(v.strip() for v in raw.split(",") if v.strip())
    if len(values) > most:
        raise field_error(name, "too_many_values", f"at most {most} values")
    return values


def store_frame(
    view: ClientView,
    types: Sequence[str] | None,
    categories: frozenset[str] | None,
    offers: frozenset[str] | None,
) -> Callable[[Event, Frames], bytes | None]:
    """How a client's stream renders an event: None unless it may see it and its filters take it;
    the frame shared with every stream of the same markup."""
    wanted = frozenset(types) if types else None

    def frame(event: Event, frames: Frames) -> bytes | None:
        if not visible_to(event, view):
            return None
        if wanted is not None and str(event.store_type) not in wanted:
            return None
        if categories is not None and event.category_id not in categories:
            return None
        if offers is not None and event.object_id not in offers:
            return None
        key = view.markup_bps
        data = frames.get(key)
        if data is None:
            shown = present(event, view=view)
            data = frames[key] = _frame(event.seq, shown["type"], orjson.dumps(shown))
        return data

    return frame


def _delivered(committed: float) -> None:
    FRESHNESS.add(since(committed))


@store.get(
    "/stream",
    operation_id="store_stream",
    description=STREAM_DOC,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        429: {"description": "Too many open streams for this key"},
        **READ,
    },
    response_class=StreamingResponse,
)
async def stream(
    request: Request,
    platform: PlatformDep,
    principal: StreamReaderDep,
    types: Types = None,
    category: Annotated[
        str | None, Query(max_length=2000, description="Comma-separated category ids or slugs")
    ] = None,
    offers: Annotated[
        str | None, Query(max_length=4200, description="Comma-separated offer ids (at most 100)")
    ] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    view = principal.client
    assert view is not None
    resume = after
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise field_error("Last-Event-ID", "invalid_event_id", "the seq of an event")
        resume = int(last_event_id)
    kinds = _types(types)
    categories = None
    if category:
        refs = sorted(_ids(category, "category", 100) or ())
        async with platform.uow(write=False) as uow:
            categories = frozenset(await catalog.resolve_categories(uow, refs))
    watched = _ids(offers, "offers", 100)
    frame = store_frame(view, kinds, categories, watched)
    hub = await request.app.state.events_hub_ready()
    settings = platform.settings
    subscriber = Subscriber(
        principal.key_id,
        frame,
        limit=settings.stream_queue,
        objects=watched,
        categories=categories,
        delivered=_delivered,
    )
    try:
        start = hub.subscribe(subscriber)
    except TooManyStreams:
        raise TooManyRequests(
            f"at most {settings.stream_max_per_key} open streams per key",
            code="too_many_streams",
        ) from None
    OPEN_STREAMS.opened()

    def end() -> None:
        subscriber.push = None
        if hub.unsubscribe(subscriber):
            OPEN_STREAMS.closed()

    subscriber.last = start if resume is None else resume

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n\n"
            while True:  # what the log holds after `last`, then what the hub hands out
                async with platform.uow(write=False) as uow:
                    found = await service.read(
                        uow, after=subscriber.last, limit=500, types=kinds, view=view
                    )
                if not found:
                    break
                for event in found:
                    data = frame(event, {})
                    if data is not None:
                        yield data
                subscriber.last = max(subscriber.last, found[-1].seq)
            while True:
                # Waiting, the stream is written by the hub itself (`Subscriber.push`). Else
                # what is queued goes in one write: under load one send carries many events.
                await subscriber.ready()
                await subscriber.finish()
                waiting = subscriber.take(WRITE_AT_ONCE)
                if not waiting:
                    if subscriber.dropped:
                        break  # and what was queued before is sent
                    continue
                fresh = [item for item in waiting if item[0] > subscriber.last or item[0] == 0]
                if fresh:
                    yield b"".join(data for _, data, _ in fresh)
                    subscriber.sent(fresh)
            note = orjson.dumps({"reason": "too_slow", "resume_after": subscriber.last})
            yield b"event: dropped\ndata: %s\n\n" % note
        finally:
            end()

    frames = body()
    # A stream whose body never starts (the client left first) never runs its `finally`: its
    # subscription ends when the generator is collected.
    weakref.finalize(frames, end)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventStream(
        frames, media_type="text/event-stream", headers=headers, on_push=subscriber.attach
    )


class FreshnessOut(BaseModel):
    process: int = Field(description="The answering process (each keeps its own figures)")
    streams: int = Field(description="Event streams open in this process")
    count: int = Field(description="Deliveries measured (the latest, at most 10,000)")
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None = None
    mean_ms: float | None = None


@operator.get(
    "/events/freshness",
    response_model=FreshnessOut,
    responses=READ,
    operation_id="admin_event_freshness",
)
async def freshness(_: Reader) -> Any:
    """How fresh events were when this process's streams handed them to clients: from the
    change's commit to the stream writing it, over the latest deliveries."""
    return {"process": os.getpid(), "streams": OPEN_STREAMS.count, **FRESHNESS.summary()}
