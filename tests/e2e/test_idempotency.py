"""Idempotency-Key on POST: a replay gets the first answer; another body with the key is 422."""

from __future__ import annotations

import asyncio

from conftest import Market, book


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


async def test_a_duplicate_while_the_first_is_in_flight_is_409(market: Market) -> None:
    # given a batch big enough to still be running when its duplicate arrives
    _, supplier = await market.supplier()
    body = {"offers": [{**book(), "sku": f"S-{n}"} for n in range(300)]}
    headers = {**market.auth(supplier), "Idempotency-Key": "slow-batch"}
    # when both are sent at once
    first, second = await asyncio.gather(
        market.api.post("/supply/v1/offers/batch", json=body, headers=headers),
        market.api.post("/supply/v1/offers/batch", json=body, headers=headers),
    )
    # then one ran and the other was told to retry; a retry now replays the first answer
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    refused = first if first.status_code == 409 else second
    assert refused.json()["code"] == "idempotency_in_flight"
    retry = await market.api.post("/supply/v1/offers/batch", json=body, headers=headers)
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
