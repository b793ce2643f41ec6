"""Access use cases: team, suppliers, clients, keys, and resolving a bearer key to a Principal."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from typing import Any

from marketplane.access import store
from marketplane.access.model import (
    ApiKey,
    Checklist,
    Client,
    ClientView,
    KeyKind,
    Milestone,
    Operator,
    Principal,
    Role,
    Side,
    Supplier,
    SupplierStatus,
    hash_key,
    key_matches,
    mint_key,
    next_supplier_status,
    split_key,
)
from marketplane.db.engine import Database
from marketplane.db.uow import UnitOfWork
from marketplane.events import service as events
from marketplane.events.model import EventType, NewEvent
from marketplane.kernel.clock import rfc3339, utcnow
from marketplane.kernel.errors import Conflict, Forbidden, NotFound, Unauthorized, field_error
from marketplane.kernel.ids import has_prefix, new_id

# --- team -----------------------------------------------------------------------------------


async def create_operator(uow: UnitOfWork, *, name: str, email: str | None, role: Role) -> Operator:
    operator = Operator(id=new_id("op"), name=name, email=email, role=role, created_at=utcnow())
    await store.insert_operator(await uow.connection(), operator)
    return operator


async def bootstrap_owner(uow: UnitOfWork) -> tuple[Operator, str] | None:
    """The first operator (an owner) and its key; None when the platform already has a team."""
    if await store.count_operators(await uow.connection()):
        return None
    operator = await create_operator(uow, name="Owner", email=None, role=Role.OWNER)
    _, token = await issue_key(uow, owner_type="operator", owner_id=operator.id, label="initial")
    return operator, token


async def get_operator(uow: UnitOfWork, *, operator_id: str) -> Operator:
    operator = await store.get_operator(await uow.connection(), operator_id)
    if operator is None:
        raise NotFound(f"no operator {operator_id}", code="operator_not_found")
    return operator


async def list_operators(uow: UnitOfWork) -> list[Operator]:
    return await store.list_operators(await uow.connection())


# --- keys -----------------------------------------------------------------------------------

_SIDE_OF_OWNER = {"operator": Side.ADMIN, "supplier": Side.SUPPLY, "client": Side.STORE}


async def issue_key(
    uow: UnitOfWork,
    *,
    owner_type: str,
    owner_id: str,
    kind: KeyKind = KeyKind.SECRET,
    label: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key for an operator, supplier or client. The token is returned once, never stored."""
    side = _SIDE_OF_OWNER[owner_type]
    if kind is KeyKind.PUBLISHABLE and side is not Side.STORE:
        raise field_error("kind", "not_allowed", "only clients have publishable keys")
    token, lookup = mint_key(kind)
    key = ApiKey(
        id=new_id("key"),
        side=side,
        kind=kind,
        owner_type=owner_type,
        owner_id=owner_id,
        label=label,
        created_at=utcnow(),
        revoked_at=None,
        prefix=lookup[:6],
    )
    await store.insert_key(await uow.connection(), key, lookup=lookup, secret_hash=hash_key(token))
    if owner_type == "supplier":
        await mark_milestone(uow, supplier_id=owner_id, milestone=Milestone.KEY_CREATED)
    return key, token


async def mark_milestone(
    uow: UnitOfWork, *, supplier_id: str, milestone: Milestone, at: datetime | None = None
) -> None:
    """Notes that a supplier reached a step of its integration; only the first time counts."""
    memo = f"milestone:{supplier_id}:{milestone}"
    if memo in uow.memo:
        return
    await store.add_milestone(await uow.connection(), supplier_id, str(milestone), at or utcnow())
    uow.after_commit(lambda: uow.memo.__setitem__(memo, "reached"))


async def checklists(uow: UnitOfWork) -> list[Checklist]:
    """Every supplier's integration so far, newest supplier first."""
    conn = await uow.connection()
    found = await store.all_milestones(conn)
    return [
        Checklist(
            supplier_id=s.id,
            created_at=s.created_at,
            reached={Milestone(name): at for name, at in found.get(s.id, {}).items()},
        )
        for s in await store.list_suppliers(conn, status=None, before=None, limit=10_000)
    ]


async def checklist(uow: UnitOfWork, *, supplier_id: str) -> Checklist:
    supplier = await get_supplier(uow, supplier_id=supplier_id)
    reached = await store.milestones(await uow.connection(), supplier_id)
    return Checklist(
        supplier_id=supplier_id,
        created_at=supplier.created_at,
        reached={Milestone(name): at for name, at in reached.items()},
    )


async def revoke_key(uow: UnitOfWork, *, key_id: str) -> ApiKey:
    key = await store.get_key(await uow.connection(), key_id)
    if key is None:
        raise NotFound(f"no key {key_id}", code="key_not_found")
    if key.revoked_at is None:
        at = utcnow()
        await store.revoke_key(await uow.connection(), key_id, at)
        key = replace(key, revoked_at=at)
    return key


async def list_keys(uow: UnitOfWork, *, owner_id: str) -> list[ApiKey]:
    return await store.list_keys(await uow.connection(), owner_id)


# --- suppliers ------------------------------------------------------------------------------


async def create_supplier(uow: UnitOfWork, *, name: str, email: str | None) -> Supplier:
    now = utcnow()
    supplier = Supplier(
        id=new_id("sup"),
        name=name,
        email=email,
        status=SupplierStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    await store.insert_supplier(await uow.connection(), supplier)
    await events.emit(uow, _supplier_event(EventType.SUPPLIER_CREATED, supplier, version=1))
    return supplier


def _supplier_event(
    kind: EventType, supplier: Supplier, *, version: int, **extra: str | None
) -> NewEvent:
    payload = {
        "id": supplier.id,
        "name": supplier.name,
        "status": str(supplier.status),
        "updated_at": rfc3339(supplier.updated_at),
        **extra,
    }
    return NewEvent(kind, supplier.id, version, payload, supplier_id=supplier.id)


async def get_supplier(uow: UnitOfWork, *, supplier_id: str) -> Supplier:
    supplier = await store.get_supplier(await uow.connection(), supplier_id)
    if supplier is None:
        raise NotFound(f"no supplier {supplier_id}", code="supplier_not_found")
    return supplier


async def list_suppliers(
    uow: UnitOfWork, *, status: SupplierStatus | None, before: str | None, limit: int
) -> list[Supplier]:
    return await store.list_suppliers(
        await uow.connection(), status=str(status) if status else None, before=before, limit=limit
    )


async def transition_supplier(
    uow: UnitOfWork, *, supplier_id: str, action: str, actor: str, reason: str | None = None
) -> Supplier:
    """The one choke point for supplier status: validates, records history, then changes it."""
    supplier = await store.get_supplier(await uow.connection(), supplier_id, for_update=True)
    if supplier is None:
        raise NotFound(f"no supplier {supplier_id}", code="supplier_not_found")
    target = next_supplier_status(supplier.status, action)
    at = utcnow()
    changed = await store.set_supplier_status(
        await uow.connection(),
        supplier_id,
        expected=supplier.status,
        target=target,
        at=at,
        actor=actor,
        reason=reason,
    )
    if not changed:
        raise Conflict("the supplier changed meanwhile; try again", code="concurrent_update")
    now = replace(supplier, status=target, updated_at=at)
    version = await store.status_changes(await uow.connection(), supplier_id) + 1  # created: 1
    event = _supplier_event(
        EventType.SUPPLIER_STATUS_CHANGED,
        now,
        version=version,
        previous=str(supplier.status),
        reason=reason,
    )
    await events.emit(uow, event)
    return now


async def supplier_history(uow: UnitOfWork, *, supplier_id: str) -> list[dict[str, object]]:
    await get_supplier(uow, supplier_id=supplier_id)
    return await store.supplier_history(await uow.connection(), supplier_id)


# --- clients --------------------------------------------------------------------------------


def _check_ids(field: str, values: list[str] | None, prefix: str) -> list[str] | None:
    if values is None:
        return None
    for index, value in enumerate(values):
        if not has_prefix(value, prefix):
            raise field_error(f"{field}[{index}]", "invalid_id", f"{value!r} is not a {prefix}_ id")
    return sorted(set(values))


async def create_client(
    uow: UnitOfWork,
    *,
    name: str,
    markup_bps: int,
    allowed_suppliers: list[str] | None,
    allowed_categories: list[str] | None,
    order_hold_seconds: int | None = None,
) -> Client:
    now = utcnow()
    client = Client(
        id=new_id("cli"),
        name=name,
        markup_bps=markup_bps,
        allowed_suppliers=_check_ids("allowed_suppliers", allowed_suppliers, "sup"),
        allowed_categories=_check_ids("allowed_categories", allowed_categories, "cat"),
        created_at=now,
        updated_at=now,
        order_hold_seconds=order_hold_seconds,
    )
    await store.insert_client(await uow.connection(), client)
    return client


async def get_client(uow: UnitOfWork, *, client_id: str) -> Client:
    client = await store.get_client(await uow.connection(), client_id)
    if client is None:
        raise NotFound(f"no client {client_id}", code="client_not_found")
    return client


async def update_client(uow: UnitOfWork, *, client_id: str, changes: dict[str, Any]) -> Client:
    client = await get_client(uow, client_id=client_id)
    if "allowed_suppliers" in changes:
        changes["allowed_suppliers"] = _check_ids(
            "allowed_suppliers",
            changes["allowed_suppliers"],
            "sup",
        )
    if "allowed_categories" in changes:
        changes["allowed_categories"] = _check_ids(
            "allowed_categories",
            changes["allowed_categories"],
            "cat",
        )
    updated = replace(client, **changes, updated_at=utcnow())
    await store.update_client(await uow.connection(), updated)
    return updated


async def list_clients(uow: UnitOfWork, *, before: str | None, limit: int) -> list[Client]:
    return await store.list_clients(await uow.connection(), before=before, limit=limit)


# --- authentication -------------------------------------------------------------------------


class Authenticator:
    """Resolves bearer keys to principals, trusting a verified key for a short, set time.

    A revocation made in this process takes effect at once; one made by another process within
    `ttl` seconds (MARKETPLANE_KEY_CACHE_SECONDS). When a key's entry expires, one lookup runs
    and concurrent requests with that key wait for it (measured under load: without this, every
    in-flight request looked the key up at once and queued for connections for up to 0.9 s).
    """

    def __init__(self, db: Database, *, ttl: float, max_entries: int = 10_000) -> None:
        self._db = db
        self._ttl = ttl
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Principal]] = {}

    def forget(self) -> None:
        self._cache.clear()

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("send `Authorization: Bearer <key>`", code="missing_key")
        hashed = hash_key(token)
        hit = self._cache.get(hashed)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        pending = self._inflight.get(hashed)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._inflight[hashed] = future
        try:
            principal = await self._look_up(token)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters re-raise it
            raise
        else:
            future.set_result(principal)
            self._cache[hashed] = (time.monotonic(), principal)
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
            return principal
        finally:
            del self._inflight[hashed]

    async def _look_up(self, token: str) -> Principal:
        lookup = split_key(token)
        if lookup is None:
            raise Unauthorized("the key is not a marketplane key", code="invalid_key")
        async with UnitOfWork(self._db, write=False) as uow:
            rows = await uow.fetch(store.key_by_lookup(lookup))
        row = rows[0] if rows else None
        if row is None or not key_matches(token, row.secret_hash):
            raise Unauthorized("the key is not valid", code="invalid_key")
        if row.revoked_at is not None:
            raise Unauthorized("the key was revoked", code="revoked_key")
        return Principal(
            key_id=row.id,
            side=Side(row.side),
            kind=KeyKind(row.kind),
            owner_id=row.owner_id,
            role=Role(row.role) if row.role else None,
            client=ClientView(
                client_id=row.owner_id,
                markup_bps=row.markup_bps,
                allowed_suppliers=None
                if row.allowed_suppliers is None
                else frozenset(row.allowed_suppliers),
                allowed_categories=None
                if row.allowed_categories is None
                else frozenset(row.allowed_categories),
            )
            if row.owner_type == "client"
            else None,
        )


def require_side(principal: Principal, side: Side) -> None:
    if principal.side is not side:
        raise Forbidden(
            f"this key is for the {principal.side} API, not the {side} API", code="wrong_side"
        )
