"""The app factory: one FastAPI app serving admin, supply and store, each under its own prefix."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from marketplane import __version__
from marketplane.access.routes import router as access_admin
from marketplane.bootstrap import Platform, build
from marketplane.catalog import jobs as catalog_jobs
from marketplane.catalog.routes import admin as catalog_admin
from marketplane.catalog.routes import store as catalog_store
from marketplane.catalog.routes import supply as catalog_supply
from marketplane.events import routes as event_routes
from marketplane.events import service as events
from marketplane.events import webhook_routes, webhooks
from marketplane.events.hub import Hub
from marketplane.feeds import routes as feed_routes
from marketplane.http import errors
from marketplane.http.idempotency import Idempotency, purge_expired
from marketplane.http.middleware import BodyLimit, DirectSend, Metrics, RequestId
from marketplane.http.openapi import document_problems_as_problem_json, problems
from marketplane.http.responses import Json
from marketplane.http.store_cache import StoreCache
from marketplane.money import billing_routes, payout_routes
from marketplane.money import routes as money_routes
from marketplane.observability import REGISTRY, WEBHOOK_ATTEMPTS, WEBHOOK_DELIVERIES
from marketplane.orders import routes as order_routes
from marketplane.settings import Settings, get_settings

# File uploads: their own, larger body limit (MARKETPLANE_FEED_MAX_BYTES).
UPLOADS = re.compile(
    r"^/(supply/v1/feeds|supply/v1/feed-mapping/preview|admin/v1/suppliers/[^/]+/feeds)$"
)


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = platform is None
        app.state.platform = current = platform or build(settings)
        await purge_expired(current)
        stop_upkeep = asyncio.Event()
        upkeep = (
            asyncio.create_task(
                catalog_jobs.keep_search_index(
                    current.uow, every=current.settings.search_upkeep_seconds, stop=stop_upkeep
                )
            )
            if current.db.dialect == "postgresql" and current.settings.search_upkeep_seconds > 0
            else None
        )
        try:
            yield
        finally:
            stop_upkeep.set()
            if upkeep is not None:
                await upkeep
            if hub_started:
                stop = await hub_started[0]
                await stop[1]()
            if own:
                await app.state.platform.close()

    app = FastAPI(
        title="marketplane",
        version=__version__,
        summary="The back end of a marketplace: supply, catalog, search and more.",
        lifespan=lifespan,
        default_response_class=Json,
    )
    document_problems_as_problem_json(app)
    if platform is not None:
        app.state.platform = platform
    # The events hub starts with the first stream (so also under test clients that skip the
    # lifespan), once per app; the lifespan stops it.
    hub_started: list[asyncio.Task[tuple[Hub, Callable[[], Awaitable[None]]]]] = []

    async def events_hub_ready() -> Hub:
        if not hub_started:
            current: Platform = app.state.platform
            hub_started.append(
                asyncio.ensure_future(
                    events.start_hub(
                        lambda: current.uow(write=False),
                        current.db,
                        poll_seconds=current.settings.events_poll_seconds,
                        max_per_key=current.settings.stream_max_per_key,
                        heartbeat_seconds=current.settings.stream_heartbeat_seconds,
                    )
                )
            )
        hub, _ = await hub_started[0]
        return hub

    app.state.events_hub_ready = events_hub_ready
    errors.install(app)
    # The store's routes first: they take most of the traffic, and routes match in order.
    for router in (
        catalog_store.router,
        access_admin,
        catalog_admin.router,
        catalog_supply.router,
        feed_routes.supply,
        feed_routes.operator,
        event_routes.store,
        event_routes.supply,
        event_routes.operator,
        webhook_routes.store,
        webhook_routes.supply,
        webhook_routes.operator,
        order_routes.store,
        order_routes.supply,
        order_routes.operator,
        order_routes.hooks,
        money_routes.operator,
        money_routes.supply,
        payout_routes.supply,
        payout_routes.operator,
        payout_routes.hooks,
        billing_routes.store,
        billing_routes.supply,
        billing_routes.operator,
    ):
        app.include_router(router)

    @app.get("/healthz", tags=["ops"], operation_id="healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get(
        "/metrics",
        tags=["ops"],
        operation_id="metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
    )
    async def metrics() -> PlainTextResponse:
        """Prometheus text: request latency per client, event freshness, open streams, webhook
        deliveries and attempts (the last two from the database, for every process)."""
        async with app.state.platform.uow(write=False) as uow:
            counts = await webhooks.counts(uow)
        for status, n in counts["deliveries"].items():
            WEBHOOK_DELIVERIES.labels(status).set(n)
        for outcome, n in counts["attempts"].items():
            WEBHOOK_ATTEMPTS.labels(outcome).set(n)
        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", tags=["ops"], operation_id="readyz", responses=problems(400) | {503: {}})
    async def readyz() -> Any:
        """The database answers."""
        try:
            async with app.state.platform.uow(write=False) as uow:
                await (await uow.connection()).execute(text("SELECT 1"))
        except Exception as exc:  # a readiness probe reports any failure, it does not raise
            return Json({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
        return {"status": "ok", "database": app.state.platform.db.dialect}

    app.add_middleware(StoreCache)
    app.add_middleware(Idempotency)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        uploads=UPLOADS,
        upload_limit=settings.feed_max_bytes + 64 * 1024,  # the file and its form fields
    )
    app.add_middleware(RequestId)
    app.add_middleware(Metrics)
    app.add_middleware(DirectSend)
    return app


def factory() -> FastAPI:
    """For `uvicorn --factory` (several worker processes)."""
    return create_app()
