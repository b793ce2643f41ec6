"""Fixtures shared by every test layer.

Backends: SQLite (a temporary file per test) and PostgreSQL (one database per session, emptied
between tests). Without a PostgreSQL server the `postgres` tests skip, unless
MARKETPLANE_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from marketplane.access import service as access
from marketplane.bootstrap import Platform, migrated
from marketplane.catalog import service as catalog
from marketplane.db.metadata import metadata
from marketplane.demo import data
from marketplane.http.app import create_app
from marketplane.settings import Settings

PG_SERVER = "postgres@127.0.0.1:5432"
REQUIRE_SERVICES = os.environ.get("MARKETPLANE_REQUIRE_SERVICES") == "1"

BOOKS_SCHEMA = {
    "type": "object",
    "properties": {
        "isbn": {"type": "string", "x-gtin": True},
        "author": {"type": "string"},
        "year": {"type": "integer", "minimum": 1450, "maximum": 2100},
    },
    "required": ["isbn", "author"],
}
STAYS_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "check_in": {"type": "string", "format": "date"},
        "nights": {"type": "integer", "minimum": 1},
        "guests": {"type": "integer", "minimum": 1},
    },
    "required": ["city", "nights"],
}


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"PostgreSQL is required (MARKETPLANE_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_pg_database(name: str) -> str:
    """A new, empty PostgreSQL database; returns its SQLAlchemy URL."""
    try:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unavailable(str(exc))
    return f"postgresql+asyncpg://{PG_SERVER}/{name}"


async def remove_pg_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_pg_database(name: str) -> str:
    """`create_pg_database` for code outside an event loop."""
    return asyncio.run(create_pg_database(name))


def drop_pg_database(name: str) -> None:
    asyncio.run(remove_pg_database(name))


@pytest.fixture
def own_pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (for server processes to fill)."""
    name = f"mp_own_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}"
    url = make_pg_database(name)
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"mp_test_{os.getpid()}"
    url = make_pg_database(name)

    async def migrate() -> None:
        platform = await migrated(Settings(database_url=url))
        await platform.close()

    asyncio.run(migrate())
    yield url
    drop_pg_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/marketplane.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/marketplane.db"


async def open_platform(url: str, **overrides: Any) -> Platform:
    overrides.setdefault("data_dir", Path(tempfile.mkdtemp(prefix="marketplane-data-")))
    settings = Settings(database_url=url, key_cache_seconds=0, **overrides)
    platform = await migrated(settings)
    if platform.db.dialect == "postgresql":
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        async with platform.uow() as uow:
            await uow.conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await uow.commit()
    return platform


async def books_supplier(platform: Platform, name: str) -> str:
    """A books category and an approved supplier `name` whose offers go live; its id."""
    async with platform.uow() as uow:
        await catalog.create_category(
            uow, slug="books", name="Books", attribute_schema=data.BOOKS_SCHEMA
        )
        supplier = await access.create_supplier(uow, name=name, email=None)
        supplier = await access.transition_supplier(
            uow, supplier_id=supplier.id, action="approve", actor="test"
        )
        await catalog.apply_supplier_status(uow, supplier_id=supplier.id, status=supplier.status)
        await uow.commit()
    return supplier.id


@pytest.fixture
async def platform(database_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    platform = await open_platform(database_url, data_dir=tmp_path / "data")
    yield platform
    await platform.close()


@pytest.fixture
async def sqlite_platform(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    platform = await open_platform(sqlite_url, data_dir=tmp_path / "data")
    yield platform
    await platform.close()


@pytest.fixture
async def pg_platform(pg_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    platform = await open_platform(pg_url, data_dir=tmp_path / "data")
    yield platform
    await platform.close()


def asgi_client(platform: Platform) -> httpx.AsyncClient:
    app = create_app(platform.settings, platform)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


class Market:
    """Drives a marketplace through its API, the way its users do."""

    def __init__(self, api: httpx.AsyncClient, operator_key: str) -> None:
        self.api = api
        self.operator_key = operator_key
        self.categories: dict[str, str] = {}

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.api.request(method, path, headers=self.auth(self.operator_key), **kwargs)

    async def category(self, slug: str, schema: dict[str, Any]) -> str:
        response = await self.admin(
            "POST",
            "/admin/v1/categories",
            json={"slug": slug, "name": slug.title(), "attribute_schema": schema},
        )
        assert response.status_code == 201, response.text
        self.categories[slug] = response.json()["id"]
        return str(response.json()["id"])

    async def standard_categories(self) -> None:
        await self.category("books", BOOKS_SCHEMA)
        await self.category("stays", STAYS_SCHEMA)

    async def supplier(self, name: str = "Supplier", *, approve: bool = True) -> tuple[str, str]:
        response = await self.admin("POST", "/admin/v1/suppliers", json={"name": name})
        assert response.status_code == 201, response.text
        supplier_id = response.json()["id"]
        if approve:
            approved = await self.admin("POST", f"/admin/v1/suppliers/{supplier_id}/approve")
            assert approved.status_code == 200, approved.text
        key = await self.admin("POST", f"/admin/v1/suppliers/{supplier_id}/keys")
        assert key.status_code == 201, key.text
        return supplier_id, key.json()["key"]

    async def client(
        self,
        name: str = "Client",
        *,
        markup_bps: int = 0,
        allowed_suppliers: list[str] | None = None,
        allowed_categories: list[str] | None = None,
        kind: str = "secret",
    ) -> tuple[str, str]:
        response = await self.admin(
            "POST",
            "/admin/v1/clients",
            json={
                "name": name,
                "markup_bps": markup_bps,
                "allowed_suppliers": allowed_suppliers,
                "allowed_categories": allowed_categories,
            },
        )
        assert response.status_code == 201, response.text
        client_id = response.json()["id"]
        key = await self.admin("POST", f"/admin/v1/clients/{client_id}/keys", json={"kind": kind})
        assert key.status_code == 201, key.text
        return client_id, key.json()["key"]

    async def put(self, key: str, sku: str, body: dict[str, Any]) -> httpx.Response:
        return await self.api.put(f"/supply/v1/offers/{sku}", json=body, headers=self.auth(key))

    async def store(self, key: str, path: str, **params: Any) -> httpx.Response:
        return await self.api.get(path, params=params, headers=self.auth(key))


def book(
    *,
    title: str = "The Golden River",
    isbn: str = "9780306406157",
    author: str = "Ada Hartmann",
    amount: int = 1299,
    quantity: int = 5,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "category": "books",
        "title": title,
        "price": {"amount": amount, "currency": "EUR"},
        "quantity": quantity,
        "attributes": {"isbn": isbn, "author": author, "year": 2001},
    }
    body.update(extra)
    return body


def stay(
    *,
    title: str = "Quiet loft in Lisbon",
    city: str = "Lisbon",
    nights: int = 3,
    amount: int = 30000,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "category": "stays",
        "title": title,
        "price": {"amount": amount, "currency": "EUR"},
        "quantity": 1,
        "attributes": {"city": city, "nights": nights, "guests": 2, "check_in": "2027-05-01"},
    }
    body.update(extra)
    return body


@pytest.fixture
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(platform) as client:
        yield client


@pytest.fixture
async def market(platform: Platform, api: httpx.AsyncClient) -> Market:
    from marketplane.access import service as access

    async with platform.uow() as uow:
        created = await access.bootstrap_owner(uow)
        await uow.commit()
    assert created is not None
    market = Market(api, created[1])
    await market.standard_categories()
    return market
