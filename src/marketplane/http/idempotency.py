"""`Idempotency-Key` for every POST on every side.

The first request with a key runs and its response is kept (24 h at least); a replay with the
same body gets that response again (`Idempotent-Replayed: true`); the same key with another body
is 422 `idempotency_key_reused`; a duplicate while the first is still running is 409. Keys are
scoped to the API key that sent them. 5xx responses are not kept, so the client can retry.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplane.db.metadata import metadata
from marketplane.db.types import UtcDateTime
from marketplane.db.uow import UnitOfWork
from marketplane.http.responses import problem
from marketplane.kernel.clock import utcnow

RETENTION = timedelta(hours=48)
STALE_IN_FLIGHT = timedelta(minutes=2)  # a holder that crashed mid-request releases its key
_NOT_KEPT = {401, 403, 409, 413, 429}

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("content_type", sa.String(100)),
    sa.Column("body", sa.LargeBinary),
    sa.Column("created_at", UtcDateTime, nullable=False),
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Idempotency:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request_id = scope.get("state", {}).get("request_id")
        if not 1 <= len(key) <= 255 or not key.isprintable():
            await problem(
                status=400,
                code="invalid_idempotency_key",
                title="Bad request",
                detail="Idempotency-Key must be 1–255 printable characters",
                request_id=request_id,
            )(scope, receive, send)
            return
        body = await _read_body(receive)
        scoped = scope_of(_header(scope, b"authorization"))
        fingerprint = fingerprint_of(scope["path"], scope.get("query_string", b""), body)
        platform = scope["app"].state.platform
        outcome = await claim(platform, scoped, key, fingerprint)
        if outcome is not None:
            await _answer_existing(outcome, fingerprint, request_id, scope, receive, send)
            return

        captured: dict[str, Any] = {"status": 500, "type": None, "body": []}

        async def replay_receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["type"] = dict(message.get("headers", [])).get(b"content-type")
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        finally:
            await _settle(platform, scoped, key, captured)


def scope_of(authorization: str | None) -> str:
    """Keys are scoped to the API key that sent them (by its hash: unguessable, never stored)."""
    return hashlib.sha256((authorization or "").encode()).hexdigest()


def fingerprint_of(path: str, query: bytes, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([path.encode(), query, body])).hexdigest()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def claim(platform: Any, scoped: str, key: str, fingerprint: str) -> Any:
    """Insert the key as in flight; returns the existing row when someone holds it already."""
    now = utcnow()
    async with UnitOfWork(platform.db) as uow:
        row = (
            await (await uow.connection()).execute(
                idempotency_keys.select().where(
                    idempotency_keys.c.scope == scoped, idempotency_keys.c.key == key
                )
            )
        ).first()
        if row is not None and not (
            row.state == "in_flight" and now - row.created_at > STALE_IN_FLIGHT
        ):
            return row
        if row is not None:
            await (await uow.connection()).execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.scope == scoped, idempotency_keys.c.key == key
                )
            )
        try:
            await (await uow.connection()).execute(
                idempotency_keys.insert().values(
                    scope=scoped,
                    key=key,
                    request_hash=fingerprint,
                    state="in_flight",
                    created_at=now,
                )
            )
            await uow.commit()
        except IntegrityError:
            pass
        else:
            return None
    async with UnitOfWork(platform.db, write=False) as uow:
        return (
            await (await uow.connection()).execute(
                idempotency_keys.select().where(
                    idempotency_keys.c.scope == scoped, idempotency_keys.c.key == key
                )
            )
        ).first()


async def _answer_existing(
    row: Any, fingerprint: str, request_id: str | None, scope: Scope, receive: Receive, send: Send
) -> None:
    if row.request_hash != fingerprint:
        response = problem(
            status=422,
            code="idempotency_key_reused",
            title="Idempotency key reused",
            detail="this Idempotency-Key was used with another request; use a new key",
            request_id=request_id,
        )
    elif row.state == "in_flight":
        response = problem(
            status=409,
            code="idempotency_in_flight",
            title="Conflict",
            detail="a request with this Idempotency-Key is still running; retry shortly",
            request_id=request_id,
        )
    else:
        response = Response(
            row.body,
            status_code=row.status_code,
            headers={"idempotent-replayed": "true"},
            media_type=row.content_type,
        )
    await response(scope, receive, send)


async def _settle(platform: Any, scoped: str, key: str, captured: dict[str, Any]) -> None:
    status = int(captured["status"])
    where = (idempotency_keys.c.scope == scoped, idempotency_keys.c.key == key)
    async with UnitOfWork(platform.db) as uow:
        if status >= 500 or status in _NOT_KEPT:
            await (await uow.connection()).execute(idempotency_keys.delete().where(*where))
        else:
            content_type = captured["type"]
            await (await uow.connection()).execute(
                idempotency_keys.update()
                .where(*where)
                .values(
                    state="done",
                    status_code=status,
                    content_type=content_type.decode() if content_type else None,
                    body=b"".join(captured["body"]),
                )
            )
        await uow.commit()


async def purge_expired(platform: Any) -> int:
    async with UnitOfWork(platform.db) as uow:
        result = await (await uow.connection()).execute(
            idempotency_keys.delete().where(idempotency_keys.c.created_at < utcnow() - RETENTION)
        )
        await uow.commit()
        return int(result.rowcount)
