"""Emitting events with the change that caused them, and reading the log.

`emit` adds events to the unit of work; they are written just before it commits, in the same
transaction, so an event exists exactly when its change does. Sequence numbers are monotonic
and become visible in order (see `store.SEQUENCE_LOCK`): a reader paging with `after=seq` never
skips an event that committed late.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from marketplane.access.model import ClientView
from marketplane.db.engine import Database
from marketplane.db.uow import UnitOfWork
from marketplane.events import store
from marketplane.events.hub import Hub
from marketplane.events.model import Event, NewEvent, visible_to
from marketplane.kernel.clock import utcnow
from marketplane.kernel.ids import new_ids

_PENDING = "events.pending"
_NOTIFIED = "events.notified"
CHANNEL = "marketplane_events"  # PostgreSQL NOTIFY channel: another process committed events
_listeners: set[Callable[[], None]] = set()


def on_commit(callback: Callable[[], None]) -> Callable[[], None]:
    """Calls `callback` each time this process commits events; returns how to stop."""
    _listeners.add(callback)
    return lambda: _listeners.discard(callback)


def _committed() -> None:
    for callback in list(_listeners):
        callback()


FLUSH_AT = 10_000  # events kept back at most: a transaction changing more writes them as it goes


async def emit(uow: UnitOfWork, *events: NewEvent) -> None:
    """Writes `events` in this unit of work's transaction, at the latest as it commits (so never
    if it rolls back). Kept back until then, so the events' order lock is held briefly."""
    pending: list[NewEvent] | None = uow.state.get(_PENDING)
    if pending is None:
        pending = uow.state[_PENDING] = []
        uow.before_commit(lambda: _flush(uow))
    pending.extend(events)
    if len(pending) >= FLUSH_AT:
        await _flush(uow)


async def _flush(uow: UnitOfWork) -> None:
    pending: list[NewEvent] = uow.state.get(_PENDING, [])
    if pending:
        numbered = list(zip(new_ids("evt", len(pending)), pending, strict=True))
        pending.clear()
        first = not uow.state.get(_NOTIFIED)
        # Other processes are told once a transaction, when it commits (PostgreSQL NOTIFY).
        await store.append(
            await uow.connection(), numbered, utcnow(), notify=CHANNEL if first else None
        )
        if first:
            uow.state[_NOTIFIED] = True
            uow.after_commit(_committed)


async def read(
    uow: UnitOfWork,
    *,
    after: int,
    limit: int,
    types: Sequence[str] | None = None,
    supplier_id: str | None = None,
    view: ClientView | None = None,
) -> list[Event]:
    """The log after `after`, oldest first: all of it (operators), one supplier's
    (`supplier_id`), or what a client may see (`view`)."""
    if view is None:
        query = store.read_query(after=after, limit=limit, types=types, supplier_id=supplier_id)
        return store.read_rows(await uow.fetch(query))
    query = store.read_query(
        after=after,
        limit=limit,
        types=types,
        store=True,
        suppliers=None if view.allowed_suppliers is None else sorted(view.allowed_suppliers),
        categories=None if view.allowed_categories is None else sorted(view.allowed_categories),
        client_id=view.client_id,
    )
    return [e for e in store.read_rows(await uow.fetch(query)) if visible_to(e, view)]


async def start_hub(
    new_uow: Callable[[], UnitOfWork],
    db: Database,
    *,
    poll_seconds: float,
    max_per_key: int,
    heartbeat_seconds: float,
) -> tuple[Hub, Callable[[], Awaitable[None]]]:
    """This process's hub, tailing the log from its current end, woken by this process's
    commits and (PostgreSQL) other processes' NOTIFY; returns it and how to stop it."""

    async def read_after(after: int, limit: int) -> list[Event]:
        async with new_uow() as uow:
            return await read(uow, after=after, limit=limit)

    hub = Hub(
        read_after,
        poll_seconds=poll_seconds,
        max_per_key=max_per_key,
        heartbeat_seconds=heartbeat_seconds,
    )
    async with new_uow() as uow:
        last = await store.last_seq(await uow.connection())
    await hub.start(last)
    forget = on_commit(hub.wake)
    unlisten = await db.listen(CHANNEL, hub.wake)

    async def stop() -> None:
        forget()
        if unlisten is not None:
            await unlisten()
        await hub.stop()

    return hub, stop
