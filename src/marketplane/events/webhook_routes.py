"""Webhook endpoints, their deliveries and replays: a client's (store side, secret keys only) and
a supplier's (supply side); operators see and replay all."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from marketplane.access.model import KeyKind, Permission, Principal
from marketplane.bootstrap import Platform
from marketplane.events import webhooks
from marketplane.events.model import DeliveryStatus, EndpointOwner, WebhookEndpoint
from marketplane.http.deps import PlatformDep, StoreReaderDep, SupplierDep, admin
from marketplane.http.openapi import READ, WRITE
from marketplane.kernel.clock import rfc3339
from marketplane.kernel.errors import Forbidden
from marketplane.outbound import parse_allow

store = APIRouter(prefix="/store/v1", tags=["store: webhooks"])
supply = APIRouter(prefix="/supply/v1", tags=["supply: webhooks"])
operator = APIRouter(prefix="/admin/v1", tags=["admin: webhooks"])

Before = Annotated[str | None, Query(max_length=40, description="next_cursor of the last page")]
Limit = Annotated[int, Query(ge=1, le=100)]
CREATED = {**WRITE, 201: {"description": "Created; the secret is shown this once"}}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointIn(Strict):
    url: AnyHttpUrl = Field(description="Where deliveries are POSTed (http or https, public)")
    types: list[Annotated[str, Field(max_length=40)]] | None = Field(
        default=None, max_length=50, description="Event types to receive; absent: all"
    )


class EndpointPatch(Strict):
    url: AnyHttpUrl | None = None
    types: list[Annotated[str, Field(max_length=40)]] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: str
    owner: dict[str, str]
    url: str
    types: list[str] | None
    enabled: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str
    secret: str | None = Field(
        default=None, description="whsec_…: only when created or rotated; verify with it"
    )
    previous_secret_until: str | None = None


class EndpointList(BaseModel):
    data: list[EndpointOut]
    has_more: bool
    next_cursor: str | None


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id header of every attempt")
    endpoint: str
    event_seq: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    created_at: str
    finished_at: str | None
    body: dict[str, Any] | None = None
    attempt_log: list[dict[str, Any]] | None = None


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    has_more: bool
    next_cursor: str | None


def _out(endpoint: WebhookEndpoint, *, secret: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": endpoint.id,
        "owner": {"type": str(endpoint.owner_kind), "id": endpoint.owner_id},
        "url": endpoint.url,
        "types": None if endpoint.types is None else list(endpoint.types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": rfc3339(endpoint.created_at),
        "updated_at": rfc3339(endpoint.updated_at),
    }
    if secret:
        shown["secret"] = endpoint.secret
        if endpoint.previous_until is not None:
            shown["previous_secret_until"] = rfc3339(endpoint.previous_until)
    return shown


def _allow(platform: Platform) -> Any:
    return parse_allow(p for p in platform.settings.allow_private_targets.split(",") if p.strip())


def _client_owner(principal: Principal) -> tuple[EndpointOwner, str]:
    if principal.kind is not KeyKind.SECRET:
        raise Forbidden(
            "webhooks are managed with a secret key, not a publishable one",
            code="secret_key_required",
        )
    return EndpointOwner.CLIENT, principal.owner_id


def _supplier_owner(principal: Principal) -> tuple[EndpointOwner, str]:
    return EndpointOwner.SUPPLIER, principal.owner_id


def _deliveries_page(rows: list[Any], limit: int) -> dict[str, Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [webhooks.present_delivery(r) for r in rows],
        "has_more": more,
        "next_cursor": rows[-1].id if more else None,
    }


def _routes(router: APIRouter, side: str, owner_of: Any, key: Any) -> None:
    """The same operations for a client (store) and a supplier (supply). (This module keeps
    its annotations evaluated: FastAPI reads `key`, a local, from them.)"""

    @router.post(
        "/webhook-endpoints",
        status_code=201,
        response_model=EndpointOut,
        responses=CREATED,
        operation_id=f"{side}_create_webhook_endpoint",
    )
    async def create(body: EndpointIn, platform: PlatformDep, principal: key) -> Any:
        kind, owner_id = owner_of(principal)
        async with platform.uow() as uow:
            endpoint = await webhooks.create_endpoint(
                uow,
                owner_kind=kind,
                owner_id=owner_id,
                url=str(body.url),
                types=body.types,
                allow=_allow(platform),
            )
            await uow.commit()
        return _out(endpoint, secret=True)

    @router.get(
        "/webhook-endpoints",
        response_model=EndpointList,
        responses=READ,
        operation_id=f"{side}_list_webhook_endpoints",
    )
    async def list_(platform: PlatformDep, principal: key) -> Any:
        async with platform.uow(write=False) as uow:
            found = await webhooks.list_endpoints(uow, owner=owner_of(principal))
        return {"data": [_out(e) for e in found], "has_more": False, "next_cursor": None}

    @router.get(
        "/webhook-endpoints/{endpoint_id}",
        response_model=EndpointOut,
        responses=READ,
        operation_id=f"{side}_get_webhook_endpoint",
    )
    async def get(endpoint_id: str, platform: PlatformDep, principal: key) -> Any:
        async with platform.uow(write=False) as uow:
            endpoint = await webhooks.get_endpoint(
                uow, endpoint_id=endpoint_id, owner=owner_of(principal)
            )
        return _out(endpoint)

    @router.patch(
        "/webhook-endpoints/{endpoint_id}",
        response_model=EndpointOut,
        responses=WRITE,
        operation_id=f"{side}_update_webhook_endpoint",
    )
    async def update(
        endpoint_id: str,
        body: EndpointPatch,
        platform: PlatformDep,
        principal: key,
    ) -> Any:
        changes = body.model_dump(exclude_unset=True)
        if "url" in changes and changes["url"] is not None:
            changes["url"] = str(body.url)
        changes = {k: v for k, v in changes.items() if v is not None or k == "types"}
        async with platform.uow() as uow:
            endpoint = await webhooks.update_endpoint(
                uow,
                endpoint_id=endpoint_id,
                owner=owner_of(principal),
                changes=changes,
                allow=_allow(platform),
            )
            await uow.commit()
        return _out(endpoint)

    @router.post(
        "/webhook-endpoints/{endpoint_id}/rotate-secret",
        response_model=EndpointOut,
        responses=WRITE,
        operation_id=f"{side}_rotate_webhook_secret",
    )
    async def rotate(endpoint_id: str, platform: PlatformDep, principal: key) -> Any:
        """A new secret. Until previous_secret_until, every delivery is signed by both."""
        overlap = timedelta(hours=platform.settings.webhook_secret_overlap_hours)
        async with platform.uow() as uow:
            endpoint = await webhooks.rotate_secret(
                uow, endpoint_id=endpoint_id, owner=owner_of(principal), overlap=overlap
            )
            await uow.commit()
        return _out(endpoint, secret=True)

    @router.get(
        "/webhook-endpoints/{endpoint_id}/deliveries",
        response_model=DeliveryPage,
        responses=READ,
        operation_id=f"{side}_list_webhook_deliveries",
    )
    async def deliveries(
        endpoint_id: str,
        platform: PlatformDep,
        principal: key,
        status: DeliveryStatus | None = None,
        cursor: Before = None,
        limit: Limit = 20,
    ) -> Any:
        async with platform.uow(write=False) as uow:
            rows = await webhooks.list_deliveries(
                uow,
                endpoint_id=endpoint_id,
                owner=owner_of(principal),
                status=status,
                before=cursor,
                limit=limit + 1,
            )
        return _deliveries_page(rows, limit)

    @router.get(
        "/webhook-deliveries/{delivery_id}",
        response_model=DeliveryOut,
        responses=READ,
        operation_id=f"{side}_get_webhook_delivery",
    )
    async def delivery(delivery_id: str, platform: PlatformDep, principal: key) -> Any:
        async with platform.uow(write=False) as uow:
            row, attempts = await webhooks.get_delivery(
                uow, delivery_id=delivery_id, owner=owner_of(principal)
            )
        return webhooks.present_delivery(row, attempts)

    @router.post(
        "/webhook-deliveries/{delivery_id}/replay",
        status_code=202,
        response_model=DeliveryOut,
        responses={**WRITE, 202: {"description": "Queued to be sent again now"}},
        operation_id=f"{side}_replay_webhook_delivery",
    )
    async def replay(delivery_id: str, platform: PlatformDep, principal: key) -> Any:
        async with platform.uow() as uow:
            row, attempts = await webhooks.replay(
                uow, delivery_id=delivery_id, owner=owner_of(principal)
            )
            await uow.commit()
        return webhooks.present_delivery(row, attempts)


_routes(store, "store", _client_owner, StoreReaderDep)
_routes(supply, "supply", _supplier_owner, SupplierDep)

Reader = Annotated[Principal, Depends(admin(Permission.EVENTS_READ))]
Writer = Annotated[Principal, Depends(admin(Permission.SUPPLIERS_WRITE))]


@operator.get(
    "/webhook-endpoints",
    response_model=EndpointList,
    responses=READ,
    operation_id="admin_list_webhook_endpoints",
)
async def admin_endpoints(platform: PlatformDep, _: Reader) -> Any:
    """Every client's and supplier's endpoints."""
    async with platform.uow(write=False) as uow:
        found = await webhooks.list_endpoints(uow, owner=None)
    return {"data": [_out(e) for e in found], "has_more": False, "next_cursor": None}


@operator.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    responses=READ,
    operation_id="admin_list_webhook_deliveries",
)
async def admin_deliveries(
    endpoint_id: str,
    platform: PlatformDep,
    _: Reader,
    status: DeliveryStatus | None = None,
    cursor: Before = None,
    limit: Limit = 20,
) -> Any:
    async with platform.uow(write=False) as uow:
        rows = await webhooks.list_deliveries(
            uow, endpoint_id=endpoint_id, owner=None, status=status, before=cursor, limit=limit + 1
        )
    return _deliveries_page(rows, limit)


@operator.get(
    "/webhook-deliveries/{delivery_id}",
    response_model=DeliveryOut,
    responses=READ,
    operation_id="admin_get_webhook_delivery",
)
async def admin_delivery(delivery_id: str, platform: PlatformDep, _: Reader) -> Any:
    async with platform.uow(write=False) as uow:
        row, attempts = await webhooks.get_delivery(uow, delivery_id=delivery_id, owner=None)
    return webhooks.present_delivery(row, attempts)


@operator.post(
    "/webhook-deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryOut,
    responses={**WRITE, 202: {"description": "Queued to be sent again now"}},
    operation_id="admin_replay_webhook_delivery",
)
async def admin_replay(delivery_id: str, platform: PlatformDep, _: Writer) -> Any:
    async with platform.uow() as uow:
        row, attempts = await webhooks.replay(uow, delivery_id=delivery_id, owner=None)
        await uow.commit()
    return webhooks.present_delivery(row, attempts)
