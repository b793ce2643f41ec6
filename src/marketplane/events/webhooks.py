"""Webhooks: endpoints per client and per supplier, fed from the outbox, signed per Standard
Webhooks, delivered at least once.

Fan-out: each enabled endpoint has a cursor into the log; `fan_out` turns the events after it that
the endpoint takes into deliveries (the exact body to send, fixed then) and moves the cursor, in
one transaction with the endpoint locked, so each event becomes one delivery per endpoint however
many processes run it. Delivery: `deliver_due` claims due deliveries with a lease (a conditional
update: one process per attempt; a dead process's claim lapses and another retries), POSTs each
with a 15 s timeout, no redirects followed, and records the attempt. Only 2xx is success; 410
disables the endpoint; anything else is retried on the schedule in `model.RETRY_SCHEDULE`,
honouring Retry-After, for at least 72 hours.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from marketplane import outbound
from marketplane.access import service as access
from marketplane.access.model import ClientView
from marketplane.db.uow import UnitOfWork
from marketplane.events import store
from marketplane.events.model import (
    GIVE_UP_AFTER,
    DeliveryStatus,
    EndpointOwner,
    EventType,
    WebhookEndpoint,
    present,
    retry_delay,
)
from marketplane.kernel.clock import rfc3339, utcnow
from marketplane.kernel.errors import BadRequest, Conflict, NotFound, field_error
from marketplane.kernel.ids import new_id

log = logging.getLogger("marketplane.webhooks")
NewUnitOfWork = Callable[[], UnitOfWork]
TIMEOUT = 15.0  # seconds an attempt may take (MARKETPLANE_WEBHOOK_TIMEOUT_SECONDS)
LEASE = 60.0  # seconds a claim lasts: longer than an attempt can take
SETTLE = 0.1  # seconds at least between two passes of the loop
FAN_OUT_PAGE = 500
PER_ENDPOINT = 4  # attempts a worker makes to one endpoint at once: a burst never floods it
ERROR_LIMIT = 500
# What an endpoint can ask for: a client's are the store's offer events; a supplier's, its own.
CLIENT_TYPES = frozenset(str(t) for t in EventType if t.startswith("offer.")) - {
    str(EventType.OFFER_LISTED),
    str(EventType.OFFER_UNLISTED),
}
SUPPLIER_TYPES = frozenset(str(t) for t in EventType)


class TargetRefused(BadRequest):
    code: str = "target_refused"


class TargetUnresolved(BadRequest):
    code: str = "target_unresolved"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def _types(kind: EndpointOwner, types: Sequence[str] | None) -> tuple[str, ...] | None:
    if types is None:
        return None
    allowed = CLIENT_TYPES if kind is EndpointOwner.CLIENT else SUPPLIER_TYPES
    unknown = sorted(set(types) - allowed)
    if unknown:
        raise field_error("types", "unknown_event_type", f"not an event type here: {unknown[0]}")
    if not types:
        raise field_error("types", "empty", "name at least one type, or leave it out for all")
    return tuple(sorted(set(types)))


async def _check_url(url: str, allow: Sequence[outbound.Network]) -> None:
    try:
        await outbound.check_target(
            url, allow=allow, refused=TargetRefused, failed=TargetUnresolved
        )
    except (TargetRefused, TargetUnresolved) as exc:
        raise field_error("url", exc.code, exc.detail) from exc


async def create_endpoint(
    uow: UnitOfWork,
    *,
    owner_kind: EndpointOwner,
    owner_id: str,
    url: str,
    types: Sequence[str] | None,
    allow: Sequence[outbound.Network],
) -> WebhookEndpoint:
    """A new endpoint: it receives events from now on."""
    await _check_url(url, allow)
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        owner_kind=owner_kind,
        owner_id=owner_id,
        url=url,
        types=_types(owner_kind, types),
        secret=new_secret(),
        previous_secret=None,
        previous_until=None,
        enabled=True,
        disabled_reason=None,
        cursor=await store.last_seq(await uow.connection()),
        created_at=now,
        updated_at=now,
    )
    await store.insert_endpoint(await uow.connection(), endpoint)
    return endpoint


async def get_endpoint(
    uow: UnitOfWork, *, endpoint_id: str, owner: tuple[EndpointOwner, str] | None
) -> WebhookEndpoint:
    """The endpoint, if `owner` (None: an operator) may see it."""
    found = await store.get_endpoint(await uow.connection(), endpoint_id)
    if found is None or (owner is not None and (found.owner_kind, found.owner_id) != owner):
        raise NotFound(f"no webhook endpoint {endpoint_id}", code="webhook_endpoint_not_found")
    return found


async def list_endpoints(
    uow: UnitOfWork, *, owner: tuple[EndpointOwner, str] | None
) -> list[WebhookEndpoint]:
    conn = await uow.connection()
    if owner is None:
        return await store.list_endpoints(conn)
    return await store.list_endpoints(conn, owner_kind=str(owner[0]), owner_id=owner[1])


async def update_endpoint(
    uow: UnitOfWork,
    *,
    endpoint_id: str,
    owner: tuple[EndpointOwner, str] | None,
    changes: dict[str, Any],
    allow: Sequence[outbound.Network],
) -> WebhookEndpoint:
    """Changes its url, types or enabled. Re-enabled, it receives what happened meanwhile."""
    endpoint = await get_endpoint(uow, endpoint_id=endpoint_id, owner=owner)
    if "url" in changes:
        await _check_url(changes["url"], allow)
        endpoint = replace(endpoint, url=changes["url"])
    if "types" in changes:
        endpoint = replace(endpoint, types=_types(endpoint.owner_kind, changes["types"]))
    if "enabled" in changes:
        enabled = bool(changes["enabled"])
        endpoint = replace(
            endpoint,
            enabled=enabled,
            disabled_reason=None if enabled else "disabled by its owner",
        )
    endpoint = replace(endpoint, updated_at=utcnow())
    await store.save_endpoint(await uow.connection(), endpoint)
    return endpoint


async def rotate_secret(
    uow: UnitOfWork,
    *,
    endpoint_id: str,
    owner: tuple[EndpointOwner, str] | None,
    overlap: timedelta,
) -> WebhookEndpoint:
    """A new secret; until `overlap` has passed, deliveries carry signatures by both."""
    endpoint = await get_endpoint(uow, endpoint_id=endpoint_id, owner=owner)
    now = utcnow()
    endpoint = replace(
        endpoint,
        secret=new_secret(),
        previous_secret=endpoint.secret,
        previous_until=now + overlap,
        updated_at=now,
    )
    await store.save_endpoint(await uow.connection(), endpoint)
    return endpoint


# --- fan-out --------------------------------------------------------------------------------


async def fan_out(new_uow: NewUnitOfWork) -> int:
    """Turns new events into deliveries for every endpoint that takes them; returns how many."""
    made = 0
    async with new_uow() as uow:
        last = await store.last_seq(await uow.connection())
        behind = await store.endpoints_behind(await uow.connection(), last)
    for endpoint_id in behind:
        while True:
            async with new_uow() as uow:
                count, more = await _fan_out_one(uow, endpoint_id)
                await uow.commit()
            made += count
            if not more:
                break
    return made


async def _fan_out_one(uow: UnitOfWork, endpoint_id: str) -> tuple[int, bool]:
    conn = await uow.connection()
    endpoint = await store.lock_endpoint(conn, endpoint_id)
    if endpoint is None or not endpoint.enabled:
        return 0, False
    found = await store.read(conn, after=endpoint.cursor, limit=FAN_OUT_PAGE)
    if not found:
        return 0, False
    view: ClientView | None = None
    if endpoint.owner_kind is EndpointOwner.CLIENT:
        view = (await access.get_client(uow, client_id=endpoint.owner_id)).view()
    now = utcnow()
    rows = []
    for event in found:
        if endpoint.takes(event, view):
            shown = present(event, view=view)
            rows.append(
                (
                    new_id("msg"),
                    endpoint.id,
                    event.seq,
                    shown["type"],
                    orjson.dumps(shown).decode(),
                    str(DeliveryStatus.PENDING),
                    0,
                    now,
                    now,
                )
            )
    await store.insert_deliveries(conn, rows)
    await store.advance_endpoint(conn, endpoint.id, found[-1].seq)
    return len(rows), len(found) == FAN_OUT_PAGE


# --- delivery -------------------------------------------------------------------------------


def sign(endpoint: WebhookEndpoint, msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers: one v1 signature per secret in use."""
    signatures = [Webhook(s).sign(msg_id, at, body) for s in endpoint.signing_secrets(at)]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


async def _attempt(
    client: httpx.AsyncClient,
    endpoint: WebhookEndpoint,
    delivery: Any,
    allow: Sequence[outbound.Network],
) -> tuple[int | None, str | None, float | None]:
    """(status code, error, Retry-After seconds) of one POST."""
    try:
        await outbound.check_target(
            endpoint.url, allow=allow, refused=TargetRefused, failed=TargetUnresolved
        )
    except (TargetRefused, TargetUnresolved) as exc:
        return None, exc.detail, None
    headers = {
        "content-type": "application/json",
        "user-agent": "marketplane-webhooks",
        **sign(endpoint, delivery.id, utcnow(), delivery.body),
    }
    try:
        response = await client.post(endpoint.url, content=delivery.body, headers=headers)
    except httpx.TimeoutException:
        return None, f"timed out after {client.timeout.read or TIMEOUT:g} s", None
    except httpx.HTTPError as exc:
        return None, (str(exc) or type(exc).__name__)[:ERROR_LIMIT], None
    error = None if response.is_success else f"answered {response.status_code}"
    return response.status_code, error, _retry_after(response)


def outcome_of(
    delivery: Any,
    status_code: int | None,
    error: str | None,
    retry_after: float | None,
    at: datetime,
) -> tuple[dict[str, Any], bool]:
    """The delivery's state after an attempt, and whether its endpoint must be disabled."""
    number = delivery.attempts + 1
    common = {"last_status": status_code, "last_error": error}
    if status_code is not None and 200 <= status_code < 300:
        return {**common, "status": str(DeliveryStatus.SUCCEEDED), "finished_at": at}, False
    if status_code == 410:
        return {**common, "status": str(DeliveryStatus.FAILED), "finished_at": at}, True
    if (at - delivery.created_at).total_seconds() >= GIVE_UP_AFTER:
        return {**common, "status": str(DeliveryStatus.FAILED), "finished_at": at}, False
    delay = retry_delay(number, retry_after=retry_after, draw=random.random())
    return {**common, "next_attempt_at": at + timedelta(seconds=delay)}, False


async def deliver_due(
    new_uow: NewUnitOfWork,
    client: httpx.AsyncClient,
    *,
    worker: str,
    allow: Sequence[outbound.Network],
    limit: int = 50,
    lease: float = LEASE,
) -> int:
    """Attempts the deliveries due now (claimed for this process for `lease` seconds, which
    must outlast an attempt); returns how many."""
    now = utcnow()
    async with new_uow() as uow:
        claimed = await store.claim_due(
            await uow.connection(), now=now, lease_until=now + timedelta(seconds=lease), limit=limit
        )
        await uow.commit()
    if not claimed:
        return 0
    endpoints: dict[str, WebhookEndpoint | None] = {}
    async with new_uow() as uow:
        for delivery in claimed:
            if delivery.endpoint_id not in endpoints:
                endpoints[delivery.endpoint_id] = await store.get_endpoint(
                    await uow.connection(), delivery.endpoint_id
                )

    gates = {endpoint_id: asyncio.Semaphore(PER_ENDPOINT) for endpoint_id in endpoints}

    async def one(delivery: Any) -> None:
        async with gates[delivery.endpoint_id]:
            await attempt(delivery)

    async def attempt(delivery: Any) -> None:
        endpoint = endpoints[delivery.endpoint_id]
        started = time.perf_counter()
        status_code: int | None
        error: str | None
        retry_after: float | None
        if endpoint is None or not endpoint.enabled:
            status_code, error, retry_after = None, "the endpoint is disabled", None
        else:
            status_code, error, retry_after = await _attempt(client, endpoint, delivery, allow)
        at = utcnow()
        state, disable = outcome_of(delivery, status_code, error, retry_after, at)
        if endpoint is None or not endpoint.enabled:
            state = {**state, "status": str(DeliveryStatus.FAILED), "finished_at": at}
        async with new_uow() as uow:
            conn = await uow.connection()
            await store.record_attempt(
                conn,
                delivery.id,
                number=delivery.attempts + 1,
                at=at,
                status_code=status_code,
                error=error,
                duration_ms=int((time.perf_counter() - started) * 1000),
                worker=worker,
                outcome=state,
            )
            if disable and endpoint is not None:
                reason = "the endpoint answered 410 Gone"
                await store.save_endpoint(
                    conn, replace(endpoint, enabled=False, disabled_reason=reason, updated_at=at)
                )
                await store.fail_pending(conn, endpoint.id, at, reason)
            await uow.commit()

    await asyncio.gather(*(one(d) for d in claimed))
    return len(claimed)


def http_client(timeout: float = TIMEOUT) -> httpx.AsyncClient:
    """For deliveries: redirects are not followed (a 3xx is a failed attempt), no proxies from
    the environment, `timeout` seconds for each step of the exchange."""
    return httpx.AsyncClient(
        follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout)
    )


async def work(
    new_uow: NewUnitOfWork,
    *,
    worker: str,
    allow: Sequence[outbound.Network],
    stop: asyncio.Event,
    poll: float,
    wake: asyncio.Event | None = None,
    attempt_seconds: float = TIMEOUT,
    lease: float = LEASE,
    settle: float = SETTLE,
) -> None:
    """Until `stop`: fan out new events and attempt due deliveries, then wait `poll` (or `wake`).
    A pass starts at most every `settle` seconds: on PostgreSQL every commit anywhere wakes this
    loop (NOTIFY), and under a stream of orders one pass takes up each burst of commits instead
    of one pass each (measured: 3 ms of this process's CPU per order placed)."""
    async with http_client(attempt_seconds) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await fan_out(new_uow)
                busy = await deliver_due(new_uow, client, worker=worker, allow=allow, lease=lease)
            except Exception:  # the database may be briefly away: say so, try again
                log.exception("webhook work failed; retrying")
                busy = 0
            if busy:
                continue
            waits: list[Awaitable[Any]] = [stop.wait()]
            if wake is not None:
                waits.append(wake.wait())
            tasks = [asyncio.ensure_future(w) for w in waits]
            _, pending = await asyncio.wait(
                tasks, timeout=poll, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if wake is not None:
                wake.clear()
            rest = settle - (time.monotonic() - started)
            if rest > 0 and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=rest)


# --- reading and replaying ------------------------------------------------------------------


async def counts(uow: UnitOfWork) -> dict[str, dict[str, int]]:
    """Deliveries by status, attempts by outcome (2xx, 4xx, 5xx, error), over all processes."""
    return await store.webhook_counts(await uow.connection())


def present_delivery(row: Any, attempts: Sequence[Any] | None = None) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": row.id,
        "endpoint": row.endpoint_id,
        "event_seq": row.event_seq,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": rfc3339(row.next_attempt_at)
        if row.next_attempt_at and row.status == str(DeliveryStatus.PENDING)
        else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": rfc3339(row.created_at),
        "finished_at": rfc3339(row.finished_at) if row.finished_at else None,
    }
    if attempts is not None:
        shown["body"] = orjson.loads(row.body)
        shown["attempt_log"] = [
            {
                "number": a.number,
                "at": rfc3339(a.at),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in attempts
        ]
    return shown


async def list_deliveries(
    uow: UnitOfWork,
    *,
    endpoint_id: str,
    owner: tuple[EndpointOwner, str] | None,
    status: DeliveryStatus | None,
    before: str | None,
    limit: int,
) -> list[Any]:
    await get_endpoint(uow, endpoint_id=endpoint_id, owner=owner)
    return await store.list_deliveries(
        await uow.connection(),
        endpoint_ids=[endpoint_id],
        status=None if status is None else str(status),
        before=before,
        limit=limit,
    )


async def get_delivery(
    uow: UnitOfWork, *, delivery_id: str, owner: tuple[EndpointOwner, str] | None
) -> tuple[Any, list[Any]]:
    conn = await uow.connection()
    row = await store.get_delivery(conn, delivery_id)
    if row is not None:
        try:
            await get_endpoint(uow, endpoint_id=row.endpoint_id, owner=owner)
        except NotFound:
            row = None
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id}", code="webhook_delivery_not_found")
    return row, await store.attempts_of(conn, delivery_id)


async def replay(
    uow: UnitOfWork, *, delivery_id: str, owner: tuple[EndpointOwner, str] | None
) -> tuple[Any, list[Any]]:
    """Sends the delivery again (the same webhook-id and body), now; its attempts go on."""
    row, _ = await get_delivery(uow, delivery_id=delivery_id, owner=owner)
    endpoint = await get_endpoint(uow, endpoint_id=row.endpoint_id, owner=owner)
    if not endpoint.enabled:
        raise Conflict(
            "the endpoint is disabled; enable it first", code="webhook_endpoint_disabled"
        )
    await store.requeue(await uow.connection(), delivery_id, utcnow())
    return await get_delivery(uow, delivery_id=delivery_id, owner=owner)
