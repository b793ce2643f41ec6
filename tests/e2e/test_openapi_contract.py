"""The API keeps its OpenAPI contract: schemathesis generates requests for every operation.

No request, valid or not, may end in a server error or in a status its operation does not
document; every response must match its declared schema and content type; a key must be needed
where the spec says so, an unsupported method gets 405, and a request the spec calls invalid is
refused. The app runs in-process (ASGI) on a SQLite marketplace seeded with categories, an
approved supplier with offers, and clients; each operation gets its own copy of it. Each side is
called with its own key, and in a second run with the key of another side. Generation is
derandomized with a fixed seed and bounded per operation.

Generated ids rarely exist, so chosen requests then walk every operation's success path with
real ones, on SQLite and PostgreSQL, validated the same way.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.python import asgi as schemathesis_asgi
from starlette.types import Receive, Scope, Send

from conftest import Market, asgi_client, book, open_platform, stay
from marketplane.access import service as access
from marketplane.http.app import create_app
from marketplane.settings import Settings

MAX_EXAMPLES = 12  # per operation, in the fuzzing phase (examples and coverage cases come on top)
WRONG_SIDE_EXAMPLES = 5
SEED = 20240611
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
    unsupported_method,
    negative_data_rejection,
]
SIDES = ("admin", "supply", "store")


def _side(path: str) -> str:
    return path.split("/")[1] if path.count("/") > 1 else "ops"


def _placeholder(side: str) -> str:
    return f"Bearer <{side}-key>"


# --- the marketplace under test ---------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    operator: str
    operator_id: str
    supplier: str
    supplier_id: str
    pending_supplier_id: str
    client: str
    client_id: str
    publishable: str
    offer_id: str
    product_id: str


async def _seed(url: str) -> Seeded:
    platform = await open_platform(url)
    try:
        async with platform.uow() as uow:
            created = await access.bootstrap_owner(uow)
            await uow.commit()
        assert created is not None
        operator, operator_key = created
        async with asgi_client(platform) as api:
            market = Market(api, operator_key)
            await market.standard_categories()
            supplier_id, supplier = await market.supplier("Paper Lane")
            pending_id, _ = await market.supplier("Pending Co", approve=False)
            client_id, client = await market.client("Web")
            _, publishable = await market.client("Widget", kind="publishable")
            offer = await market.put(supplier, "PL-1", book(title="The Golden River"))
            assert offer.status_code == 201, offer.text
            for sku, body in [
                ("PL-2", book(title="Lantern Harbor", isbn="9781402894626", amount=999)),
                ("PL-3", book(title="Salt and Ink", isbn="9780131103627", amount=2450)),
                ("ST-1", stay()),
            ]:
                put = await market.put(supplier, sku, body)
                assert put.status_code == 201, put.text
    finally:
        await platform.close()
    return Seeded(
        operator=operator_key,
        operator_id=operator.id,
        supplier=supplier,
        supplier_id=supplier_id,
        pending_supplier_id=pending_id,
        client=client,
        client_id=client_id,
        publishable=publishable,
        offer_id=offer.json()["id"],
        product_id=offer.json()["product"],
    )


@dataclass
class Served:
    """The ASGI app schemathesis calls: the current test's marketplace, behind a key swap.

    Examples and coverage cases are built when the tests are collected, before any key exists, so
    requests carry a placeholder naming their side (`Bearer <admin-key>`) and this swaps in the
    key the current test wants for that side. Requests whose credentials schemathesis removed or
    mangled on purpose (negative auth cases, `ignored_auth`) go through untouched.
    """

    app: FastAPI | None = None
    keys: dict[str, str] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no marketplace is being served"
        if scope["type"] == "http":
            swap = {_placeholder(s).encode(): f"Bearer {k}".encode() for s, k in self.keys.items()}
            scope = {
                **scope,
                "headers": [
                    (name, swap.get(value, value) if name == b"authorization" else value)
                    for name, value in scope["headers"]
                ],
            }
        await self.app(scope, receive, send)


SERVED = Served()


def _contract(max_examples: int) -> Any:
    """The app's spec (building it needs no database), served by SERVED, with side keys."""
    spec = create_app(Settings(database_url="sqlite+aiosqlite://")).openapi()
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": "http://testserver",
            "generation": {
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
                "mode": "all",
            },
        }
    )
    schema = schemathesis.openapi.from_dict(spec, config=config)
    schema.app = SERVED

    class SideKey:
        def get(self, case: Any, ctx: Any) -> str | None:
            side = _side(ctx.operation.path)
            return _placeholder(side) if side in SIDES else None

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": data}

    schema.auth(refresh_interval=None)(SideKey)
    return schema


# The event stream never ends for a key that may read it: test_stream.py drives it over HTTP.
contract = _contract(MAX_EXAMPLES).exclude(operation_id="store_stream")
wrong_side_contract = _contract(WRONG_SIDE_EXAMPLES).include(path_regex="^/(admin|supply|store)/")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    """One seeded SQLite file; every test gets a copy of it."""
    path = tmp_path_factory.mktemp("contract") / "template.db"
    return path, asyncio.run(_seed(f"sqlite+aiosqlite:///{path}"))


@contextmanager
def _serving(url: str, keys: dict[str, str], data_dir: Path) -> Iterator[None]:
    # The app opens its own platform in its lifespan, which schemathesis runs on the event loop
    # of its ASGI transport; shutting the lifespans down closes it again.
    SERVED.app = create_app(Settings(database_url=url, key_cache_seconds=0, data_dir=data_dir))
    SERVED.keys = keys
    try:
        yield
    finally:
        schemathesis_asgi.shutdown_lifespans()
        SERVED.app, SERVED.keys = None, {}


def _copy(template: tuple[Path, Seeded], tmp_path: Path) -> str:
    shutil.copyfile(template[0], tmp_path / "m.db")
    return f"sqlite+aiosqlite:///{tmp_path}/m.db"


def _own(seeded: Seeded) -> dict[str, str]:
    return {"admin": seeded.operator, "supply": seeded.supplier, "store": seeded.client}


@pytest.fixture
def own_keys(template: tuple[Path, Seeded], tmp_path: Path) -> Iterator[None]:
    with _serving(_copy(template, tmp_path), _own(template[1]), tmp_path / "data"):
        yield


@pytest.fixture
def wrong_keys(template: tuple[Path, Seeded], tmp_path: Path) -> Iterator[None]:
    seeded = template[1]
    keys = {"admin": seeded.client, "supply": seeded.operator, "store": seeded.supplier}
    with _serving(_copy(template, tmp_path), keys, tmp_path / "data"):
        yield


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(
    request: pytest.FixtureRequest, template: tuple[Path, Seeded], tmp_path: Path
) -> Iterator[Seeded]:
    """The seeded marketplace on either backend, called with the keys of its own sides."""
    if request.param == "sqlite":
        url, seeded = _copy(template, tmp_path), template[1]
    else:
        url = str(request.getfixturevalue("pg_url"))
        seeded = asyncio.run(_seed(url))  # empties the database first
    with _serving(url, _own(seeded), tmp_path / "data"):
        yield seeded


# One marketplace per operation, shared by that operation's examples: that is the intent.
ONE_MARKET_PER_OPERATION = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- generated requests -----------------------------------------------------------------------


@contract.parametrize()
@ONE_MARKET_PER_OPERATION
def test_every_operation_keeps_its_contract(case: Any, own_keys: None) -> None:
    case.call_and_validate(checks=CHECKS)


@wrong_side_contract.parametrize()
@ONE_MARKET_PER_OPERATION
def test_a_key_of_another_side_gets_a_documented_refusal(case: Any, wrong_keys: None) -> None:
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code >= 400, response.text


# --- chosen requests --------------------------------------------------------------------------


def _call(
    side: str,
    method: str,
    path: str,
    *,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, Any] | None = None,
    body: Any = None,
    key: str | None = None,
) -> Any:
    """One request built from the spec, sent as `side`, and validated like the generated ones."""
    operation = contract[path][method]
    case = operation.Case(
        path_parameters=path_parameters,
        query=query,
        headers={"Authorization": f"Bearer {key}" if key else _placeholder(side)},
        **({} if body is None else {"body": body}),
    )
    return case.call_and_validate(checks=CHECKS)


def _expect(status: int, side: str, method: str, path: str, **request: Any) -> Any:
    response = _call(side, method, path, **request)
    assert response.status_code == status, (method, path, response.text)
    return response


# Random ids mostly meet 404s: these walk each operation's success path with real ones.


def test_admin_operations_answer_with_their_documented_shapes(served: Seeded) -> None:
    supplier = {"supplier_id": served.supplier_id}
    pending = {"supplier_id": served.pending_supplier_id}
    client = {"client_id": served.client_id}
    music = {"type": "object", "properties": {"artist": {"type": "string"}}}
    # team and keys
    operator = _expect(
        201, "admin", "POST", "/admin/v1/operators", body={"name": "Ops", "role": "support"}
    )
    key = _expect(
        201,
        "admin",
        "POST",
        "/admin/v1/operators/{operator_id}/keys",
        path_parameters={"operator_id": operator.json()["id"]},
        body={"label": "ci"},
    )
    _expect(200, "admin", "GET", "/admin/v1/operators")
    _expect(200, "admin", "GET", "/admin/v1/keys", query={"owner": served.supplier_id})
    _expect(
        200,
        "admin",
        "POST",
        "/admin/v1/keys/{key_id}/revoke",
        path_parameters={"key_id": key.json()["id"]},
    )
    # suppliers
    _expect(200, "admin", "GET", "/admin/v1/suppliers", query={"limit": 1, "status": "active"})
    _expect(200, "admin", "GET", "/admin/v1/suppliers/{supplier_id}", path_parameters=supplier)
    _expect(
        200, "admin", "GET", "/admin/v1/suppliers/{supplier_id}/history", path_parameters=supplier
    )
    _expect(
        200,
        "admin",
        "POST",
        "/admin/v1/suppliers/{supplier_id}/approve",
        path_parameters=pending,
        body={"reason": "documents checked"},
    )
    _expect(201, "admin", "POST", "/admin/v1/suppliers/{supplier_id}/keys", path_parameters=pending)
    _expect(
        200, "admin", "POST", "/admin/v1/suppliers/{supplier_id}/suspend", path_parameters=pending
    )
    # clients
    _expect(200, "admin", "GET", "/admin/v1/clients", query={"limit": 1})
    _expect(200, "admin", "GET", "/admin/v1/clients/{client_id}", path_parameters=client)
    _expect(
        200,
        "admin",
        "PATCH",
        "/admin/v1/clients/{client_id}",
        path_parameters=client,
        body={"markup_bps": 500},
    )
    _expect(
        201,
        "admin",
        "POST",
        "/admin/v1/clients/{client_id}/keys",
        path_parameters=client,
        body={"kind": "publishable", "label": "widget"},
    )
    # catalog
    _expect(200, "admin", "GET", "/admin/v1/categories")
    _expect(200, "admin", "GET", "/admin/v1/categories/{ref}", path_parameters={"ref": "books"})
    _expect(
        200,
        "admin",
        "PATCH",
        "/admin/v1/categories/{ref}",
        path_parameters={"ref": "stays"},
        body={"name": "Stays and nights"},
    )
    _expect(
        201,
        "admin",
        "POST",
        "/admin/v1/categories",
        body={"slug": "music", "name": "Music", "attribute_schema": music},
    )
    listing = {"supplier": served.supplier_id, "limit": 2}
    page = _expect(200, "admin", "GET", "/admin/v1/offers", query=listing)
    next_page = {**listing, "cursor": page.json()["next_cursor"]}
    _expect(200, "admin", "GET", "/admin/v1/offers", query=next_page)
    _expect(
        200,
        "admin",
        "GET",
        "/admin/v1/offers/{offer_id}",
        path_parameters={"offer_id": served.offer_id},
    )


def test_supply_operations_answer_with_their_documented_shapes(served: Seeded) -> None:
    sku = {"sku": "NEW-1"}
    fresh = book(title="Night Train", isbn="9780596007126")
    _expect(201, "supply", "PUT", "/supply/v1/offers/{sku}", path_parameters=sku, body=fresh)
    _expect(
        200,
        "supply",
        "PUT",
        "/supply/v1/offers/{sku}",
        path_parameters=sku,
        body={**fresh, "quantity": 1},
    )
    _expect(200, "supply", "GET", "/supply/v1/offers/{sku}", path_parameters=sku)
    listing = {"limit": 2, "status": "active"}
    page = _expect(200, "supply", "GET", "/supply/v1/offers", query=listing)
    next_page = {**listing, "cursor": page.json()["next_cursor"]}
    _expect(200, "supply", "GET", "/supply/v1/offers", query=next_page)
    _expect(200, "supply", "GET", "/supply/v1/categories")
    batch = _expect(
        200,
        "supply",
        "POST",
        "/supply/v1/offers/batch",
        body={"offers": [{**stay(), "sku": "ST-2"}, {"sku": "BAD", "title": ""}]},
    )
    _expect(200, "supply", "DELETE", "/supply/v1/offers/{sku}", path_parameters=sku)
    assert batch.json()["counts"] == {"created": 1, "updated": 0, "unchanged": 0, "failed": 1}


def test_store_operations_answer_with_their_documented_shapes(served: Seeded) -> None:
    search = {"q": "golden river", "facets": "category,attr.author", "limit": 1}
    _expect(
        200,
        "store",
        "GET",
        "/store/v1/offers/{offer_id}",
        path_parameters={"offer_id": served.offer_id},
    )
    _expect(
        200,
        "store",
        "GET",
        "/store/v1/products/{product_id}",
        path_parameters={"product_id": served.product_id},
    )
    found = _expect(200, "store", "GET", "/store/v1/offers", query=search)
    listing = {"sort": "price", "limit": 2}
    page = _expect(200, "store", "GET", "/store/v1/offers", query=listing)
    next_page = {**listing, "cursor": page.json()["next_cursor"]}
    _expect(200, "store", "GET", "/store/v1/offers", query=next_page)
    _expect(
        200,
        "store",
        "GET",
        "/store/v1/offers",
        query={"fields": "title,price", "attr.nights_min": 1},
    )
    _expect(200, "store", "GET", "/store/v1/categories")
    _expect(200, "store", "GET", "/store/v1/offers", key=served.publishable)
    assert found.json()["facets"]["attr.author"] == [{"value": "Ada Hartmann", "count": 1}]


def test_values_the_database_cannot_hold_are_refused_not_a_server_error(served: Seeded) -> None:
    # given text with NUL (PostgreSQL cannot store it) and integers over 64 bits (no backend can)
    big = 2**70
    nul = "Ada\x00Hartmann"
    # when
    responses = {
        "nul in a path": _call(
            "admin",
            "GET",
            "/admin/v1/suppliers/{supplier_id}",
            path_parameters={"supplier_id": "sup_\x00"},
        ),
        "nul in a query": _call("admin", "GET", "/admin/v1/keys", query={"owner": "\x00"}),
        "nul in a filter": _call("store", "GET", "/store/v1/offers", query={"category": nul}),
        "nul in a body": _call("admin", "POST", "/admin/v1/suppliers", body={"name": nul}),
        "nul in attributes": _call(
            "supply",
            "PUT",
            "/supply/v1/offers/{sku}",
            path_parameters={"sku": "NUL-1"},
            body=book(author=nul),
        ),
        "big int in a schema": _call(
            "admin",
            "POST",
            "/admin/v1/categories",
            body={
                "slug": "big",
                "name": "Big",
                "attribute_schema": {"type": "object", "properties": {"n": {"maximum": big}}},
            },
        ),
        "big int in attributes": _call(
            "supply",
            "PUT",
            "/supply/v1/offers/{sku}",
            path_parameters={"sku": "BIG-1"},
            body=stay(nights=big),
        ),
    }
    # then every answer was documented and matched its schema (checked by _call), and
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses["big int in a schema"] == statuses["big int in attributes"] == 422
    assert all(status < 500 for status in statuses.values()), statuses


def test_store_search_refuses_values_over_their_documented_length(served: Seeded) -> None:
    # given values one character over each documented limit
    limits = {"q": 200, "category": 400, "supplier": 400, "cursor": 500}
    # when
    statuses = {
        name: _call("store", "GET", "/store/v1/offers", query={name: "a" * (limit + 1)}).status_code
        for name, limit in limits.items()
    }
    # then
    assert all(400 <= status < 500 for status in statuses.values()), statuses
