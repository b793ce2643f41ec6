"""The outbox table and its SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplane.db import bulk
from marketplane.db.metadata import metadata
from marketplane.db.types import BigPk, Json, UtcDateTime
from marketplane.events.model import (
    DeliveryStatus,
    EndpointOwner,
    Event,
    EventType,
    NewEvent,
    WebhookEndpoint,
)

Id = sa.String(40)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", BigPk, primary_key=True, autoincrement=True),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("store_type", sa.String(40)),
    sa.Column("object_id", Id, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("supplier_id", Id),
    sa.Column("category_id", Id),
    sa.Column("client_id", Id),  # addressed to one client alone (its orders)
    sa.Column("payload", sa.JSON, nullable=False),  # json, not jsonb, on PostgreSQL (0009)
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
)
COLUMNS = (
    "id",
    "type",
    "store_type",
    "object_id",
    "version",
    "supplier_id",
    "category_id",
    "client_id",
    "payload",
    "occurred_at",
)
# Taken by every transaction that writes events, from just before it writes them to its commit
# (PostgreSQL): so sequence numbers become visible in order, and a reader that has seen `seq`
# never later finds a smaller one committed behind it.
SEQUENCE_LOCK = 0x6D70_6576  # "mpev"


_HELD_INSERT = """
INSERT INTO events (id, type, store_type, object_id, version, supplier_id, category_id,
    client_id, payload, occurred_at)
SELECT e.id, e.type, e.store_type, e.object_id, e.version, e.supplier_id, e.category_id,
    e.client_id, e.payload::json, :at
FROM (SELECT pg_advisory_xact_lock(:lock){notify}) AS held,
    unnest(:ids, :types, :store_types, :object_ids, :versions, :suppliers, :categories,
        :clients, :payloads) WITH ORDINALITY
        AS e(id, type, store_type, object_id, version, supplier_id, category_id, client_id,
            payload, n)
ORDER BY e.n"""
_TEXTS = sa.ARRAY(sa.String)
_HELD = {
    notify: sa.text(_HELD_INSERT.format(notify=", pg_notify(:channel, '')" if notify else ""))
    .bindparams(
        *(
            sa.bindparam(name, type_=_TEXTS)
            for name in (
                "ids", "types", "store_types", "object_ids", "suppliers", "categories",
                "clients", "payloads",
            )
        ),
        sa.bindparam("versions", type_=sa.ARRAY(sa.Integer)),
        sa.bindparam("at", type_=UtcDateTime()),
    )
    for notify in (False, True)
}  # fmt: skip


async def append(
    conn: AsyncConnection,
    new: Sequence[tuple[str, NewEvent]],
    at: datetime,
    *,
    notify: str | None = None,
) -> None:
    """Writes the events (with their ids), in order, and tells `notify`'s listeners when this
    transaction commits (PostgreSQL; elsewhere the process wakes its own).

    On PostgreSQL the order lock is held from here to the commit, and every other transaction
    writing events waits for it. The usual few events are therefore one statement that takes
    the lock, writes them and notifies: as three, each a turn of the writing process's event
    loop, a busy process held the lock for 100-170 ms while every other request queued on it."""
    rows = [
        (
            event_id,
            str(e.type),
            None if e.store_type is None else str(e.store_type),
            e.object_id,
            e.version,
            e.supplier_id,
            e.category_id,
            e.client_id,
            e.payload,
            at,
        )
        for event_id, e in new
    ]
    if conn.dialect.name != "postgresql":
        await bulk.insert_values(conn, events, COLUMNS, rows)
        return
    if len(rows) < bulk.COPY_FROM:
        columns = list(zip(*rows, strict=True))
        params: dict[str, Any] = {
            "lock": SEQUENCE_LOCK,
            "at": at,
            "payloads": [orjson.dumps(payload).decode() for payload in columns[8]],
        }
        for name, values in zip(_UNNESTED, columns[:8], strict=True):
            params[name] = list(values)
        if notify is not None:
            params["channel"] = notify
        await conn.execute(_HELD[notify is not None], params)
        return
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SEQUENCE_LOCK)))
    await bulk.insert_values(conn, events, COLUMNS, rows)
    if notify is not None:
        await conn.execute(sa.select(sa.func.pg_notify(notify, "")))


_UNNESTED = (
    "ids", "types", "store_types", "object_ids", "versions", "suppliers", "categories", "clients",
)  # fmt: skip


def _event(row: Any) -> Event:
    return Event(
        seq=row.seq,
        id=row.id,
        type=EventType(row.type),
        store_type=None if row.store_type is None else EventType(row.store_type),
        object_id=row.object_id,
        version=row.version,
        supplier_id=row.supplier_id,
        category_id=row.category_id,
        client_id=row.client_id,
        payload=row.payload,
        occurred_at=row.occurred_at,
    )


def read_query(
    *,
    after: int,
    limit: int,
    types: Sequence[str] | None = None,
    supplier_id: str | None = None,
    store: bool = False,
    suppliers: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    client_id: str | None = None,
) -> sa.Select[Any]:
    """Events after `seq`, oldest first (rows for `read_rows`). `store`: only what clients may
    see, by `store_type` (and `types` filter that); `suppliers`/`categories` narrow to a client's
    allowed ones, and events addressed to one client are kept for `client_id` alone."""
    kind = events.c.store_type if store else events.c.type
    query = sa.select(events).where(events.c.seq > after)
    if store:
        query = query.where(events.c.store_type.is_not(None))
    if types:
        query = query.where(kind.in_(list(types)))
    if supplier_id is not None:
        query = query.where(events.c.supplier_id == supplier_id)
    if store:
        shared: list[sa.ColumnElement[bool]] = [events.c.client_id.is_(None)]
        if suppliers is not None:
            shared.append(events.c.supplier_id.in_(list(suppliers)))
        if categories is not None:
            shared.append(events.c.category_id.in_(list(categories)))
        query = query.where(sa.or_(sa.and_(*shared), events.c.client_id == client_id))
    return query.order_by(events.c.seq).limit(limit)


def read_rows(rows: Iterable[Any]) -> list[Event]:
    return [_event(r) for r in rows]


async def read(conn: AsyncConnection, *, after: int, limit: int) -> list[Event]:
    """Every event after `seq`, oldest first."""
    return read_rows(await conn.execute(read_query(after=after, limit=limit)))


async def last_seq(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.select(sa.func.max(events.c.seq)))).scalar() or 0)


# --- webhooks -------------------------------------------------------------------------------

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("owner_kind", sa.String(10), nullable=False),
    sa.Column("owner_id", Id, nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("types", Json),
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("previous_secret", sa.String(100)),
    sa.Column("previous_until", UtcDateTime),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.String(200)),
    sa.Column("cursor", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True),  # the webhook-id header: the same on every attempt
    sa.Column("endpoint_id", Id, nullable=False),
    sa.Column("event_seq", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # exactly the bytes sent and signed
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime),
    sa.Column("lease_until", UtcDateTime),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.String(500)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
)
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", Id, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.String(500)),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
)


def _endpoint(row: Any) -> WebhookEndpoint:
    values = {name: getattr(row, name) for name in ENDPOINT_FIELDS}
    values["owner_kind"] = EndpointOwner(row.owner_kind)
    values["types"] = None if row.types is None else tuple(row.types)
    return WebhookEndpoint(**values)


ENDPOINT_FIELDS = (
    "id",
    "owner_kind",
    "owner_id",
    "url",
    "types",
    "secret",
    "previous_secret",
    "previous_until",
    "enabled",
    "disabled_reason",
    "cursor",
    "created_at",
    "updated_at",
)
# What an endpoint's owner or the platform may change after it is made.
MUTABLE = ("url", "types", "secret", "previous_secret", "previous_until", "enabled",
           "disabled_reason", "updated_at")  # fmt: skip


def _row(endpoint: WebhookEndpoint, fields: Sequence[str]) -> dict[str, Any]:
    values = {name: getattr(endpoint, name) for name in fields}
    if "owner_kind" in values:
        values["owner_kind"] = str(endpoint.owner_kind)
    if "types" in values:
        values["types"] = None if endpoint.types is None else list(endpoint.types)
    return values


async def insert_endpoint(conn: AsyncConnection, endpoint: WebhookEndpoint) -> None:
    await conn.execute(webhook_endpoints.insert().values(_row(endpoint, ENDPOINT_FIELDS)))


async def save_endpoint(conn: AsyncConnection, endpoint: WebhookEndpoint) -> None:
    await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint.id)
        .values(_row(endpoint, MUTABLE))
    )


async def get_endpoint(conn: AsyncConnection, endpoint_id: str) -> WebhookEndpoint | None:
    row = (
        await conn.execute(webhook_endpoints.select().where(webhook_endpoints.c.id == endpoint_id))
    ).first()
    return _endpoint(row) if row else None


async def list_endpoints(
    conn: AsyncConnection, *, owner_kind: str | None = None, owner_id: str | None = None
) -> list[WebhookEndpoint]:
    query = webhook_endpoints.select().order_by(webhook_endpoints.c.id)
    if owner_kind is not None:
        query = query.where(webhook_endpoints.c.owner_kind == owner_kind)
    if owner_id is not None:
        query = query.where(webhook_endpoints.c.owner_id == owner_id)
    return [_endpoint(r) for r in await conn.execute(query)]


async def endpoints_behind(conn: AsyncConnection, last: int) -> list[str]:
    """Enabled endpoints whose cursor is short of `last`."""
    query = sa.select(webhook_endpoints.c.id).where(
        webhook_endpoints.c.enabled.is_(True), webhook_endpoints.c.cursor < last
    )
    return [r.id for r in await conn.execute(query)]


async def lock_endpoint(conn: AsyncConnection, endpoint_id: str) -> WebhookEndpoint | None:
    """The endpoint, locked for this transaction; None if another process holds it (PostgreSQL;
    on SQLite the write transaction already excludes every other writer)."""
    query = webhook_endpoints.select().where(webhook_endpoints.c.id == endpoint_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = (await conn.execute(query)).first()
    return _endpoint(row) if row else None


async def advance_endpoint(conn: AsyncConnection, endpoint_id: str, cursor: int) -> None:
    await conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(cursor=cursor)
    )


DELIVERY_COLUMNS = (
    "id",
    "endpoint_id",
    "event_seq",
    "event_type",
    "body",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)


async def insert_deliveries(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    await bulk.insert_values(conn, webhook_deliveries, DELIVERY_COLUMNS, rows)


async def claim_due(
    conn: AsyncConnection, *, now: datetime, lease_until: datetime, limit: int
) -> list[Any]:
    """Takes up to `limit` deliveries due now for this process until `lease_until`: each is
    claimed by exactly one process (a conditional update); a claim whose process died lapses."""
    due = (
        sa.select(webhook_deliveries.c.id)
        .where(
            webhook_deliveries.c.status == str(DeliveryStatus.PENDING),
            webhook_deliveries.c.next_attempt_at <= now,
            sa.or_(
                webhook_deliveries.c.lease_until.is_(None),
                webhook_deliveries.c.lease_until < now,
            ),
        )
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = [r.id for r in await conn.execute(due)]
    if not ids:
        return []
    claimed = await conn.execute(
        webhook_deliveries.update()
        .where(
            webhook_deliveries.c.id.in_(ids),
            sa.or_(
                webhook_deliveries.c.lease_until.is_(None),
                webhook_deliveries.c.lease_until < now,
            ),
        )
        .values(lease_until=lease_until)
        .returning(*webhook_deliveries.c)
    )
    return list(claimed)


async def record_attempt(
    conn: AsyncConnection,
    delivery_id: str,
    *,
    number: int,
    at: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    worker: str,
    outcome: dict[str, Any],
) -> None:
    """Writes the attempt and the delivery's state after it (`outcome`), releasing the claim."""
    await conn.execute(
        webhook_attempts.insert().values(
            delivery_id=delivery_id,
            number=number,
            at=at,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            worker=worker,
        )
    )
    await conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id == delivery_id)
        .values(attempts=number, lease_until=None, **outcome)
    )


async def list_deliveries(
    conn: AsyncConnection,
    *,
    endpoint_ids: Sequence[str],
    status: str | None,
    before: str | None,
    limit: int,
) -> list[Any]:
    query = sa.select(webhook_deliveries).where(
        webhook_deliveries.c.endpoint_id.in_(list(endpoint_ids))
    )
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    if before is not None:
        query = query.where(webhook_deliveries.c.id < before)
    return list(await conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit)))


async def get_delivery(conn: AsyncConnection, delivery_id: str) -> Any | None:
    query = sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
    return (await conn.execute(query)).first()


async def attempts_of(conn: AsyncConnection, delivery_id: str) -> list[Any]:
    query = (
        sa.select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id == delivery_id)
        .order_by(webhook_attempts.c.number)
    )
    return list(await conn.execute(query))


async def requeue(conn: AsyncConnection, delivery_id: str, at: datetime) -> None:
    await conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status=str(DeliveryStatus.PENDING),
            next_attempt_at=at,
            finished_at=None,
            lease_until=None,
        )
    )


async def fail_pending(conn: AsyncConnection, endpoint_id: str, at: datetime, reason: str) -> None:
    """Gives up the endpoint's pending deliveries (it was disabled)."""
    await conn.execute(
        webhook_deliveries.update()
        .where(
            webhook_deliveries.c.endpoint_id == endpoint_id,
            webhook_deliveries.c.status == str(DeliveryStatus.PENDING),
        )
        .values(status=str(DeliveryStatus.FAILED), finished_at=at, last_error=reason)
    )


async def webhook_counts(conn: AsyncConnection) -> dict[str, dict[str, int]]:
    deliveries = {str(s): 0 for s in DeliveryStatus}
    query = sa.select(webhook_deliveries.c.status, sa.func.count()).group_by(
        webhook_deliveries.c.status
    )
    for status, n in await conn.execute(query):
        deliveries[status] = n
    outcome = sa.case(
        (webhook_attempts.c.status_code.is_(None), "error"),
        (webhook_attempts.c.status_code < 300, "2xx"),
        (webhook_attempts.c.status_code < 400, "3xx"),
        (webhook_attempts.c.status_code < 500, "4xx"),
        else_="5xx",
    )
    attempts = {k: 0 for k in ("2xx", "3xx", "4xx", "5xx", "error")}
    for name, n in await conn.execute(sa.select(outcome, sa.func.count()).group_by(outcome)):
        attempts[name] = n
    return {"deliveries": deliveries, "attempts": attempts}
