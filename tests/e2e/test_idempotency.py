"""Idempotency-Key on POST: a replay gets the first answer; another body with the key is 422."""

from __future__ import annotations

import json

from conftest import Market, book
from marketplane.bootstrap import Platform
from marketplane.http import idempotency


async def test_a_replay_returns_the_first_response_and_creates_nothing_new(market: Market) -> None:
    headers = {**market.auth(market.operator_key), "Idempotency-Key": "create-acme-1"}
    first = await market.api.post("/admin/v1/suppliers", json={"name": "Acme"}, headers=headers)
    again = await market.api.post("/admin/v1/suppliers", json={"name": "Acme"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    listed = await market.admin("GET", "/admin/v1/suppliers")
    assert [s["name"] for s in listed.json()["data"]] == ["Acme"]


async def test_the_same_key_with_another_body_is_422(market: Market) -> None:
    headers = {**market.auth(market.operator_key), "Idempotency-Key": "k-1"}
    await market.api.post("/admin/v1/suppliers", json={"name": "Acme"}, headers=headers)
    reused = await market.api.post("/admin/v1/suppliers", json={"name": "Other"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"


async def test_keys_are_scoped_to_the_api_key(market: Market) -> None:
    member = await market.admin("POST", "/admin/v1/operators", json={"name": "M", "role": "owner"})
    other = (await market.admin("POST", f"/admin/v1/operators/{member.json()['id']}/keys")).json()
    first = await market.api.post(
        "/admin/v1/suppliers",
        json={"name": "A"},
        headers={**market.auth(market.operator_key), "Idempotency-Key": "same"},
    )
    second = await market.api.post(
        "/admin/v1/suppliers",
        json={"name": "A"},
        headers={**market.auth(other["key"]), "Idempotency-Key": "same"},
    )
    assert first.json()["id"] != second.json()["id"]


async def test_a_failed_validation_is_replayed_too(market: Market) -> None:
    _, supplier = await market.supplier()
    headers = {**market.auth(supplier), "Idempotency-Key": "batch-1"}
    body = {"offers": [{"sku": "X"}]}
    first = await market.api.post("/supply/v1/offers/batch", json=body, headers=headers)
    again = await market.api.post("/supply/v1/offers/batch", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()


async def test_a_bad_idempotency_key_is_400(market: Market) -> None:
    response = await market.api.post(
        "/admin/v1/suppliers",
        json={"name": "A"},
        headers={**market.auth(market.operator_key), "Idempotency-Key": "x" * 300},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


async def test_a_duplicate_while_the_first_is_in_flight_is_409(
    market: Market, platform: Platform
) -> None:
    # given a request with this key still running (here, or in another process)
    _, supplier = await market.supplier()
    body = {"offers": [{**book(), "sku": "S-1"}]}
    raw = json.dumps(body).encode()
    headers = {
        **market.auth(supplier),
        "Idempotency-Key": "slow-batch",
        "content-type": "application/json",
    }
    holder = await idempotency.claim(
        platform,
        idempotency.scope_of(headers["Authorization"]),
        "slow-batch",
        idempotency.fingerprint_of("/supply/v1/offers/batch", b"", raw),
    )
    assert holder is None  # the key is now held, in flight
    # when the duplicate arrives
    response = await market.api.post("/supply/v1/offers/batch", content=raw, headers=headers)
    # then it is told to retry, and nothing was written
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_in_flight"
    listed = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    assert listed.json()["data"] == []
