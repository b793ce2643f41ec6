"""The store cache: store answers kept in memory until the next commit anyone makes.

A store read is a pure function of its path, its query string, the client's view (visibility
and markup) and the data. The data part is pinned by the database's data version (a value that
changes with every commit, see Database.data_version): answers are kept per version and all
dropped when it moves, so a cached answer is exactly what computing it again would give.

A hit is answered here, before routing and dependency resolution, which cost more than the
answer itself; anything else (a miss, a bad key, another side's key) goes on to the routes,
which compute the answer and keep it with `answer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from marketplane.access.model import ClientView, Side
from marketplane.bootstrap import Platform
from marketplane.db.uow import UnitOfWork
from marketplane.http.responses import JSON, Json
from marketplane.kernel.errors import MarketplaneError

HEADER = "X-Marketplane-Cache"
PREFIX = "/store/"
_VERSION = "store_cache_version"


def key_for(scope: Scope, client: ClientView | None) -> Hashable:
    return (scope["path"], client, scope.get("query_string", b""))


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class StoreCache:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        platform: Platform = scope["app"].state.platform
        cache = platform.store_cache
        if cache.enabled:
            try:
                principal = await platform.auth.authenticate(_bearer(scope))
            except MarketplaneError:
                principal = None  # the routes answer with the right problem
            if principal is not None and principal.side is Side.STORE:
                version = await platform.db.data_version()
                body = cache.get(version, key_for(scope, principal.client))
                if body is not None:
                    response = Response(body, media_type=JSON, headers={HEADER: "hit"})
                    await response(scope, receive, send)
                    return
                state = scope.setdefault("state", {})
                state[_VERSION] = version
                state["principal"] = principal  # the routes need not resolve the key again
        await self.app(scope, receive, send)


async def answer(
    request: Request,
    platform: Platform,
    client: ClientView | None,
    compute: Callable[[UnitOfWork], Awaitable[Any]],
) -> Response:
    """The route's side of a miss: compute the answer, and keep it under the version the
    middleware read before (the data the answer saw is at least that new)."""
    version = request.scope.get("state", {}).get(_VERSION)
    async with platform.uow(write=False) as uow:
        value = await compute(uow)
    if version is None:
        return Json(value)
    body = orjson.dumps(value)
    platform.store_cache.put(version, key_for(request.scope, client), body)
    return Response(body, media_type=JSON, headers={HEADER: "miss"})


async def shared(
    request: Request, platform: Platform, key: str, compute: Callable[[], Awaitable[bytes]]
) -> bytes:
    """A value every store answer of one data version may use (the bids for sponsored
    placement), computed once per version rather than once per answer."""
    version = request.scope.get("state", {}).get(_VERSION)
    if version is not None:
        found = platform.store_cache.get(version, key)
        if found is not None:
            return found
    value = await compute()
    if version is not None:
        platform.store_cache.put(version, key, value)
    return value
