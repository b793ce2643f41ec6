"""Request dependencies: the platform, and who is calling (one side per key)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from marketplane.access.model import KEY_PREFIX, KeyKind, Permission, Principal, Side, may
from marketplane.access.service import require_side
from marketplane.bootstrap import Platform
from marketplane.kernel.errors import Forbidden, field_error

_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer mk_live_…`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_platform(request: Request) -> Platform:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop on every request.
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def _resolve(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known  # the store cache resolved this request's key already
    platform: Platform = request.app.state.platform
    token = credentials.credentials if credentials else None
    principal = await platform.auth.authenticate(token)
    request.state.principal = principal
    return principal


def admin(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    async def dependency(request: Request, credentials: Credentials) -> Principal:
        principal = await _resolve(request, credentials)
        require_side(principal, Side.ADMIN)
        if principal.role is None or not may(principal.role, permission):
            raise Forbidden(
                f"the {principal.role} role may not do this (needs {permission})",
                code="role_not_allowed",
            )
        return principal

    return dependency


async def supplier(request: Request, credentials: Credentials) -> Principal:
    principal = await _resolve(request, credentials)
    require_side(principal, Side.SUPPLY)
    return principal


async def store_reader(request: Request, credentials: Credentials) -> Principal:
    principal = await _resolve(request, credentials)
    require_side(principal, Side.STORE)
    return principal


async def store_writer(request: Request, credentials: Credentials) -> Principal:
    """A client's secret key: what places and moves orders (a publishable key only reads)."""
    principal = await store_reader(request, credentials)
    if principal.kind is not KeyKind.SECRET:
        raise Forbidden(
            "orders are placed and read with a secret key, not a publishable one",
            code="secret_key_required",
        )
    return principal


async def stream_reader(
    request: Request,
    credentials: Credentials,
    key: Annotated[
        str | None,
        Query(
            max_length=200,
            description="A publishable key, for browsers' EventSource (which cannot send headers)",
        ),
    ] = None,
) -> Principal:
    """A store key from the Authorization header or, publishable keys only, the `key` query
    parameter: a URL ends up in logs and histories, where a secret key must never be."""
    if credentials is None and key is not None:
        if not key.startswith(KEY_PREFIX[KeyKind.PUBLISHABLE]):
            raise field_error(
                "key", "secret_key_in_url", "only a publishable key may be sent in the URL"
            )
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)
    return await store_reader(request, credentials)


SupplierDep = Annotated[Principal, Depends(supplier)]
StoreReaderDep = Annotated[Principal, Depends(store_reader)]
StoreWriterDep = Annotated[Principal, Depends(store_writer)]
StreamReaderDep = Annotated[Principal, Depends(stream_reader)]
