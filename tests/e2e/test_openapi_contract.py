"""The API keeps its OpenAPI contract: schemathesis generates requests for every operation.

No request, valid or not, may end in a server error or a status the operation does not document;
every response must match its declared schema and content type. The app runs in-process (ASGI) on
a SQLite marketplace seeded with categories, an approved supplier with offers and clients, and
each side is called with its own key (and, in a second run, with the key of another side).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi as schemathesis_asgi

from conftest import Market, asgi_client, book, open_platform, stay
from marketplane.access import service as access
from marketplane.http.app import create_app
from marketplane.settings import Settings

MAX_EXAMPLES = 20
SEED = 20240611
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class Seeded:
    url: str
    operator: str
    supplier: str
    supplier_id: str
    client: str
    client_id: str
    publishable: str
    category_id: str
    offer_id: str
    product_id: str
    sku: str


async def _seed(url: str) -> Seeded:
    platform = await open_platform(url)
    try:
        async with platform.uow() as uow:
            created = await access.bootstrap_owner(uow)
            await uow.commit()
        assert created is not None
        async with asgi_client(platform) as api:
            market = Market(api, created[1])
            await market.standard_categories()
            supplier_id, supplier = await market.supplier("Paper Lane")
            await market.supplier("Pending Co", approve=False)
            client_id, client = await market.client("Web")
            _, publishable = await market.client("Widget", kind="publishable")
            offer = await market.put(supplier, "PL-1", book(title="The Golden River"))
            assert offer.status_code == 201, offer.text
            for n, isbn in enumerate(["9781402894626", "9780131103627"], start=2):
                put = await market.put(supplier, f"PL-{n}", book(title=f"Book {n}", isbn=isbn))
                assert put.status_code == 201, put.text
            put = await market.put(supplier, "ST-1", stay())
            assert put.status_code == 201, put.text
    finally:
        await platform.close()
    return Seeded(
        url=url,
        operator=created[1],
        supplier=supplier,
        supplier_id=supplier_id,
        client=client,
        client_id=client_id,
        publishable=publishable,
        category_id=market.categories["books"],
        offer_id=offer.json()["id"],
        product_id=offer.json()["product"],
        sku="PL-1",
    )


def _side(path: str) -> str:
    return path.split("/")[1] if path.count("/") > 1 else "ops"


def _schema() -> Any:
    """The app's spec; building it needs no database. Each test plugs in its own seeded app."""
    spec = create_app(Settings(database_url="sqlite+aiosqlite://")).openapi()
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": "http://testserver",
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "mode": "all",
            },
        }
    )
    return schemathesis.openapi.from_dict(spec, config=config)


def _with_keys(schema: Any, keys: dict[str, str]) -> Any:
    class SideKey:
        def get(self, case: Any, ctx: Any) -> str | None:
            return keys.get(_side(ctx.operation.path))

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    schema.auth(SideKey, refresh_interval=None)
    return schema


OWN_KEYS: dict[str, str] = {}
WRONG_KEYS: dict[str, str] = {}
own_side = _with_keys(_schema(), OWN_KEYS)
wrong_side = _with_keys(_schema(), WRONG_KEYS)


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    """A fresh marketplace per operation, served by an app whose lifespan opens the platform."""
    seeded = asyncio.run(_seed(f"sqlite+aiosqlite:///{tmp_path}/m.db"))
    app = create_app(Settings(database_url=seeded.url, key_cache_seconds=0))
    own_side.app = wrong_side.app = app
    OWN_KEYS.update(admin=seeded.operator, supply=seeded.supplier, store=seeded.client)
    WRONG_KEYS.update(admin=seeded.client, supply=seeded.operator, store=seeded.supplier)
    try:
        yield seeded
    finally:
        schemathesis_asgi.shutdown_lifespans()


# One marketplace per operation, shared by that operation's examples (that is the intent).
SHARED_FIXTURE = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@own_side.parametrize()
@SHARED_FIXTURE
def test_every_operation_keeps_its_contract(case: Any, seeded: Seeded) -> None:
    case.call_and_validate(checks=CHECKS)


@wrong_side.parametrize()
@SHARED_FIXTURE
def test_a_key_of_another_side_gets_a_documented_refusal(case: Any, seeded: Seeded) -> None:
    response = case.call_and_validate(checks=CHECKS)
    if _side(case.path) != "ops":
        assert response.status_code in (401, 403, 404, 405, 422), response.text
