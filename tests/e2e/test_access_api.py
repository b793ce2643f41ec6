"""Who may do what: sides, roles, supplier isolation and client visibility."""

from __future__ import annotations

import re

import pytest

from conftest import Market, book, stay
from marketplane.http.app import create_app


def _side_routes(prefix: str) -> list[tuple[str, str]]:
    """Every documented operation under a prefix, with placeholder path parameters."""
    routes = []
    for path, operations in create_app().openapi()["paths"].items():
        if path.startswith(prefix):
            concrete = re.sub(r"\{[^}]+\}", "x1", path)
            routes.extend((method.upper(), concrete) for method in sorted(operations))
    return routes


ADMIN_AND_SUPPLY = _side_routes("/admin/") + _side_routes("/supply/")


async def test_a_store_key_gets_403_on_every_admin_and_supply_route(market: Market) -> None:
    # given
    _, client = await market.client()
    _, publishable = await market.client(kind="publishable")
    assert len(ADMIN_AND_SUPPLY) > 20
    for key in (client, publishable):
        for method, path in ADMIN_AND_SUPPLY:
            # when
            response = await market.api.request(method, path, headers=market.auth(key), json={})
            # then
            assert response.status_code == 403, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "wrong_side"


async def test_a_supplier_key_gets_403_on_admin_and_store(market: Market) -> None:
    _, supplier = await market.supplier()
    for method, path in [*_side_routes("/admin/"), *_side_routes("/store/")]:
        response = await market.api.request(method, path, headers=market.auth(supplier), json={})
        assert response.status_code == 403, (method, path)


async def test_missing_invalid_and_revoked_keys_are_401(market: Market) -> None:
    # given
    client_id, key = await market.client()
    keys = (await market.admin("GET", "/admin/v1/keys", params={"owner": client_id})).json()
    # when
    missing = await market.api.get("/store/v1/offers")
    invalid = await market.store("mk_live_" + "a" * 48, "/store/v1/offers")
    before = await market.store(key, "/store/v1/offers")
    revoked = await market.admin("POST", f"/admin/v1/keys/{keys[0]['id']}/revoke")
    after = await market.store(key, "/store/v1/offers")
    # then
    assert missing.status_code == 401 and missing.json()["code"] == "missing_key"
    assert invalid.status_code == 401 and invalid.json()["code"] == "invalid_key"
    assert before.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert after.status_code == 401 and after.json()["code"] == "revoked_key"
    assert "key" not in keys[0]


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("support", [("GET", "/admin/v1/suppliers")], [("POST", "/admin/v1/suppliers")]),
        ("finance", [("POST", "/admin/v1/clients")], [("POST", "/admin/v1/suppliers")]),
        ("supply", [("POST", "/admin/v1/suppliers")], [("POST", "/admin/v1/clients")]),
    ],
)
async def test_operator_roles_limit_admin_routes(
    market: Market, role: str, allowed: list[tuple[str, str]], refused: list[tuple[str, str]]
) -> None:
    # given a team member with a role
    member = await market.admin("POST", "/admin/v1/operators", json={"name": "M", "role": role})
    key = (await market.admin("POST", f"/admin/v1/operators/{member.json()['id']}/keys")).json()[
        "key"
    ]
    body = {"name": "X"}
    # then
    for method, path in allowed:
        response = await market.api.request(method, path, headers=market.auth(key), json=body)
        assert response.status_code in (200, 201), response.text
    for method, path in refused:
        response = await market.api.request(method, path, headers=market.auth(key), json=body)
        assert response.status_code == 403
        assert response.json()["code"] == "role_not_allowed"


async def test_a_supplier_can_neither_read_nor_change_another_suppliers_offers(
    market: Market,
) -> None:
    # given
    _, alice = await market.supplier("Alice")
    _, bob = await market.supplier("Bob")
    mine = await market.put(alice, "SHARED-1", book(amount=1000))
    # when bob uses the same sku, it is his own, separate offer
    bobs = await market.put(bob, "SHARED-1", book(amount=5))
    bob_reads = await market.api.get("/supply/v1/offers", headers=market.auth(bob))
    bob_deletes = await market.api.delete("/supply/v1/offers/SHARED-1", headers=market.auth(bob))
    alice_reads = await market.api.get("/supply/v1/offers/SHARED-1", headers=market.auth(alice))
    # then
    assert bobs.json()["id"] != mine.json()["id"]
    assert [o["id"] for o in bob_reads.json()["data"]] == [bobs.json()["id"]]
    assert bob_deletes.status_code == 200
    assert alice_reads.status_code == 200
    assert alice_reads.json()["price"]["amount"] == 1000
    assert alice_reads.json()["status"] == "active"


async def test_a_client_never_sees_what_its_visibility_excludes(market: Market) -> None:
    # given two suppliers with the same book and a stay; a client limited to one supplier + books
    alice_id, alice = await market.supplier("Alice")
    _, bob = await market.supplier("Bob")
    a = await market.put(alice, "A", book(amount=1500))
    b = await market.put(bob, "B", book(amount=900))
    s = await market.put(alice, "S", stay())
    _, limited = await market.client(
        allowed_suppliers=[alice_id], allowed_categories=[market.categories["books"]]
    )
    # when
    listed = await market.store(limited, "/store/v1/offers", facets="category,attr.author")
    searched = await market.store(limited, "/store/v1/offers", q="golden river")
    product = await market.store(limited, f"/store/v1/products/{a.json()['product']}")
    bob_detail = await market.store(limited, f"/store/v1/offers/{b.json()['id']}")
    stay_detail = await market.store(limited, f"/store/v1/offers/{s.json()['id']}")
    categories = await market.store(limited, "/store/v1/categories")
    # then
    assert [o["id"] for o in listed.json()["data"]] == [a.json()["id"]]
    assert listed.json()["facets"]["category"] == [
        {"value": market.categories["books"], "count": 1}
    ]
    assert listed.json()["facets"]["attr.author"] == [{"value": "Ada Hartmann", "count": 1}]
    assert [o["id"] for o in searched.json()["data"]] == [a.json()["id"]]
    assert [o["id"] for o in product.json()["offers"]] == [a.json()["id"]]
    assert bob_detail.status_code == 404
    assert stay_detail.status_code == 404
    assert [c["slug"] for c in categories.json()] == ["books"]


async def test_suspended_and_pending_suppliers_offers_are_not_in_the_store(market: Market) -> None:
    # given
    supplier_id, supplier = await market.supplier("Alice")
    _, pending = await market.supplier("Newcomer", approve=False)
    _, client = await market.client()
    offer = await market.put(supplier, "A", book())
    sandbox = await market.put(pending, "P", book(isbn="9781402894626"))
    assert sandbox.status_code == 201  # a pending supplier works in its sandbox
    # when
    shown = await market.store(client, "/store/v1/offers")
    await market.admin(
        "POST", f"/admin/v1/suppliers/{supplier_id}/suspend", json={"reason": "audit"}
    )
    hidden = await market.store(client, "/store/v1/offers")
    detail = await market.store(client, f"/store/v1/offers/{offer.json()['id']}")
    product = await market.store(client, f"/store/v1/products/{offer.json()['product']}")
    history = await market.admin("GET", f"/admin/v1/suppliers/{supplier_id}/history")
    # then
    assert [o["id"] for o in shown.json()["data"]] == [offer.json()["id"]]
    assert hidden.json()["data"] == []
    assert detail.status_code == 404
    assert product.status_code == 404
    assert [h["to_status"] for h in history.json()] == ["active", "suspended"]
    assert history.json()[1]["reason"] == "audit"
    own = await market.api.get("/supply/v1/offers", headers=market.auth(pending))
    assert len(own.json()["data"]) == 1


async def test_invalid_supplier_transition_is_409_with_current_state(market: Market) -> None:
    supplier_id, _ = await market.supplier()
    response = await market.admin("POST", f"/admin/v1/suppliers/{supplier_id}/approve")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert response.json()["current_status"] == "active"


async def test_publishable_keys_read_the_store(market: Market) -> None:
    _, key = await market.client(kind="publishable")
    assert key.startswith("mk_pub_")
    assert (await market.store(key, "/store/v1/offers")).status_code == 200


async def test_only_clients_get_publishable_keys(market: Market) -> None:
    supplier_id, _ = await market.supplier()
    response = await market.admin(
        "POST", f"/admin/v1/suppliers/{supplier_id}/keys", json={"kind": "publishable"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "kind"


async def test_changing_a_clients_configuration_applies_at_once(market: Market) -> None:
    client_id, key = await market.client()
    _, supplier = await market.supplier()
    await market.put(supplier, "A", book(amount=1000))
    await market.admin("PATCH", f"/admin/v1/clients/{client_id}", json={"markup_bps": 250})
    page = await market.store(key, "/store/v1/offers")
    assert page.json()["data"][0]["price"]["amount"] == 1025
