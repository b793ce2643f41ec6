"""Access tables and their SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from marketplane.access.model import (
    ApiKey,
    Client,
    KeyKind,
    Operator,
    Role,
    Side,
    Supplier,
    SupplierStatus,
)
from marketplane.db import upsert
from marketplane.db.metadata import metadata
from marketplane.db.types import BigPk, Json, UtcDateTime

Id = sa.String(40)

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
suppliers = sa.Table(
    "suppliers",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
supplier_milestones = sa.Table(
    "supplier_milestones",
    metadata,
    sa.Column("supplier_id", Id, primary_key=True),
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
)
supplier_status_history = sa.Table(
    "supplier_status_history",
    metadata,
    sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
    sa.Column("supplier_id", Id, nullable=False),
    sa.Column("from_status", sa.String(20)),
    sa.Column("to_status", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(60), nullable=False),
    sa.Column("reason", sa.String(500)),
    sa.Column("at", UtcDateTime, nullable=False),
)
clients = sa.Table(
    "clients",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("markup_bps", sa.Integer, nullable=False),
    sa.Column("allowed_suppliers", Json),
    sa.Column("allowed_categories", Json),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("order_hold_seconds", sa.Integer),  # None: the platform's default
)
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("lookup", sa.String(40), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("side", sa.String(10), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("owner_type", sa.String(10), nullable=False),
    sa.Column("owner_id", Id, nullable=False),
    sa.Column("label", sa.String(200)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
)


def _supplier(row: sa.Row[Any]) -> Supplier:
    return Supplier(
        id=row.id,
        name=row.name,
        email=row.email,
        status=SupplierStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _client(row: sa.Row[Any]) -> Client:
    return Client(
        id=row.id,
        name=row.name,
        markup_bps=row.markup_bps,
        allowed_suppliers=row.allowed_suppliers,
        allowed_categories=row.allowed_categories,
        created_at=row.created_at,
        updated_at=row.updated_at,
        order_hold_seconds=row.order_hold_seconds,
    )


def _operator(row: sa.Row[Any]) -> Operator:
    return Operator(
        id=row.id, name=row.name, email=row.email, role=Role(row.role), created_at=row.created_at
    )


def _key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        side=Side(row.side),
        kind=KeyKind(row.kind),
        owner_type=row.owner_type,
        owner_id=row.owner_id,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        prefix=row.lookup[:6],
    )


async def insert_operator(conn: AsyncConnection, operator: Operator) -> None:
    await conn.execute(
        operators.insert().values(
            id=operator.id,
            name=operator.name,
            email=operator.email,
            role=str(operator.role),
            created_at=operator.created_at,
        )
    )


async def get_operator(conn: AsyncConnection, operator_id: str) -> Operator | None:
    row = (await conn.execute(operators.select().where(operators.c.id == operator_id))).first()
    return _operator(row) if row else None


async def list_operators(conn: AsyncConnection) -> list[Operator]:
    rows = await conn.execute(operators.select().order_by(operators.c.id))
    return [_operator(r) for r in rows]


async def count_operators(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(operators))).scalar_one())


async def insert_supplier(conn: AsyncConnection, supplier: Supplier) -> None:
    await conn.execute(
        suppliers.insert().values(
            id=supplier.id,
            name=supplier.name,
            email=supplier.email,
            status=str(supplier.status),
            created_at=supplier.created_at,
            updated_at=supplier.updated_at,
        )
    )


async def get_supplier(
    conn: AsyncConnection, supplier_id: str, *, for_update: bool = False
) -> Supplier | None:
    query = suppliers.select().where(suppliers.c.id == supplier_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _supplier(row) if row else None


async def list_suppliers(
    conn: AsyncConnection, *, status: str | None, before: str | None, limit: int
) -> list[Supplier]:
    query = suppliers.select().order_by(suppliers.c.id.desc()).limit(limit)
    if status:
        query = query.where(suppliers.c.status == status)
    if before:
        query = query.where(suppliers.c.id < before)
    return [_supplier(r) for r in await conn.execute(query)]


async def set_supplier_status(
    conn: AsyncConnection,
    supplier_id: str,
    *,
    expected: SupplierStatus,
    target: SupplierStatus,
    at: datetime,
    actor: str,
    reason: str | None,
) -> bool:
    """Compare-and-set: false when another request changed the status first."""
    result = await conn.execute(
        suppliers.update()
        .where(suppliers.c.id == supplier_id, suppliers.c.status == str(expected))
        .values(status=str(target), updated_at=at)
    )
    if result.rowcount != 1:
        return False
    await conn.execute(
        supplier_status_history.insert().values(
            supplier_id=supplier_id,
            from_status=str(expected),
            to_status=str(target),
            actor=actor,
            reason=reason,
            at=at,
        )
    )
    return True


async def status_changes(conn: AsyncConnection, supplier_id: str) -> int:
    """How many status changes the supplier has had (this transaction's included)."""
    query = sa.select(sa.func.count()).where(supplier_status_history.c.supplier_id == supplier_id)
    return int((await conn.execute(query)).scalar_one())


async def supplier_history(conn: AsyncConnection, supplier_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        supplier_status_history.select()
        .where(supplier_status_history.c.supplier_id == supplier_id)
        .order_by(supplier_status_history.c.pk)
    )
    return [dict(r._mapping) for r in rows]


async def insert_client(conn: AsyncConnection, client: Client) -> None:
    await conn.execute(
        clients.insert().values(
            id=client.id,
            name=client.name,
            markup_bps=client.markup_bps,
            allowed_suppliers=client.allowed_suppliers,
            allowed_categories=client.allowed_categories,
            created_at=client.created_at,
            updated_at=client.updated_at,
            order_hold_seconds=client.order_hold_seconds,
        )
    )


async def update_client(conn: AsyncConnection, client: Client) -> None:
    await conn.execute(
        clients.update()
        .where(clients.c.id == client.id)
        .values(
            name=client.name,
            markup_bps=client.markup_bps,
            allowed_suppliers=client.allowed_suppliers,
            allowed_categories=client.allowed_categories,
            updated_at=client.updated_at,
            order_hold_seconds=client.order_hold_seconds,
        )
    )


async def get_client(conn: AsyncConnection, client_id: str) -> Client | None:
    row = (await conn.execute(clients.select().where(clients.c.id == client_id))).first()
    return _client(row) if row else None


async def list_clients(conn: AsyncConnection, *, before: str | None, limit: int) -> list[Client]:
    query = clients.select().order_by(clients.c.id.desc()).limit(limit)
    if before:
        query = query.where(clients.c.id < before)
    return [_client(r) for r in await conn.execute(query)]


async def insert_key(conn: AsyncConnection, key: ApiKey, *, lookup: str, secret_hash: str) -> None:
    await conn.execute(
        api_keys.insert().values(
            id=key.id,
            lookup=lookup,
            secret_hash=secret_hash,
            side=str(key.side),
            kind=str(key.kind),
            owner_type=key.owner_type,
            owner_id=key.owner_id,
            label=key.label,
            created_at=key.created_at,
        )
    )


def key_by_lookup(lookup: str) -> sa.Select[Any]:
    """A key with what a request needs of its owner (role, client configuration)."""
    return (
        sa.select(
            api_keys,
            operators.c.role,
            clients.c.markup_bps,
            clients.c.allowed_suppliers,
            clients.c.allowed_categories,
        )
        .select_from(
            api_keys.outerjoin(operators, operators.c.id == api_keys.c.owner_id).outerjoin(
                clients, clients.c.id == api_keys.c.owner_id
            )
        )
        .where(api_keys.c.lookup == lookup)
    )


async def get_key(conn: AsyncConnection, key_id: str) -> ApiKey | None:
    row = (await conn.execute(api_keys.select().where(api_keys.c.id == key_id))).first()
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection, owner_id: str) -> list[ApiKey]:
    rows = await conn.execute(
        api_keys.select().where(api_keys.c.owner_id == owner_id).order_by(api_keys.c.id)
    )
    return [_key(r) for r in rows]


async def revoke_key(conn: AsyncConnection, key_id: str, at: datetime) -> bool:
    result = await conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return result.rowcount == 1


async def add_milestone(conn: AsyncConnection, supplier_id: str, name: str, at: datetime) -> None:
    """Records the first time only: a later call for the same milestone changes nothing."""
    await conn.execute(
        upsert.insert(conn, supplier_milestones)
        .values(supplier_id=supplier_id, name=name, at=at)
        .on_conflict_do_nothing()
    )


async def milestones(conn: AsyncConnection, supplier_id: str) -> dict[str, datetime]:
    found = await conn.execute(
        sa.select(supplier_milestones.c.name, supplier_milestones.c.at).where(
            supplier_milestones.c.supplier_id == supplier_id
        )
    )
    return {row.name: row.at for row in found}


async def all_milestones(conn: AsyncConnection) -> dict[str, dict[str, datetime]]:
    found: dict[str, dict[str, datetime]] = {}
    for row in await conn.execute(supplier_milestones.select()):
        found.setdefault(row.supplier_id, {})[row.name] = row.at
    return found
