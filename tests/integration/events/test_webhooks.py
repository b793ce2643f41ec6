"""Webhooks end to end against a real HTTP receiver on 127.0.0.1: signed per Standard Webhooks
(checked with the `standardwebhooks` package), retried, disabled by 410, never redirected,
replayable, seen only by those who may see the event, each attempt made once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import Market, book
from marketplane.bootstrap import Platform
from marketplane.events import webhooks
from marketplane.events.store import webhook_deliveries
from marketplane.kernel.clock import utcnow
from marketplane.outbound import parse_allow

ALLOW = parse_allow(["127.0.0.1/32"])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP/1.1 receiver: records each request, answers with the next scripted reply
    (status, headers) for its path, 200 when none is left."""

    replies: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(path, headers, body))
            script = self.replies.get(path) or []
            status, extra = script.pop(0) if script else (200, {})
            out = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Connection: close"]
            out += ["Content-Length: 0", *(f"{k}: {v}" for k, v in extra.items())]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    server = await asyncio.start_server(got.serve, "127.0.0.1", 0)
    got.port = server.sockets[0].getsockname()[1]
    try:
        yield got
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def allowing(platform: Platform) -> Platform:
    """The platform with deliveries to 127.0.0.1 allowed (as the tests' setting would)."""
    platform.settings = platform.settings.model_copy(update={"allow_private_targets": "127.0.0.1"})
    return platform


async def deliver(platform: Platform) -> int:
    """One round of the worker: fan out new events, attempt what is due."""
    await webhooks.fan_out(platform.uow)
    async with webhooks.http_client() as client:
        return await webhooks.deliver_due(platform.uow, client, worker="test", allow=ALLOW)


async def make_due(platform: Platform) -> None:
    """Moves every pending retry to now (instead of waiting out the back-off)."""
    async with platform.uow() as uow:
        await uow.conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        await uow.commit()


async def endpoint(market: Market, key: str, side: str, url: str, **extra: Any) -> dict[str, Any]:
    response = await market.api.post(
        f"/{side}/v1/webhook-endpoints", json={"url": url, **extra}, headers=market.auth(key)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def verify(secret: str, got: Received) -> Any:
    return Webhook(secret).verify(got.body, got.headers)


async def test_deliveries_are_signed_and_verify_and_tampering_does_not(
    market: Market, allowing: Platform, receiver: Receiver
) -> None:
    # given a client endpoint and a supplier endpoint
    supplier_id, supplier = await market.supplier("Alice")
    _, client = await market.client(markup_bps=1000)
    mine = await endpoint(market, client, "store", receiver.url("/client"))
    theirs = await endpoint(
        market, supplier, "supply", receiver.url("/supplier"), types=["offer.created"]
    )
    assert mine["secret"].startswith("whsec_")
    # when the supplier creates an offer
    assert (await market.put(supplier, "A1", book(amount=1000))).status_code == 201
    assert await deliver(allowing) == 2
    # then each endpoint gets its view of it, signed with its own secret
    (to_client,) = receiver.at("/client")
    (to_supplier,) = receiver.at("/supplier")
    shown = verify(mine["secret"], to_client)
    assert shown["type"] == "offer.created"
    assert shown["data"]["price"]["amount"] == 1100 and "sku" not in shown["data"]
    assert verify(theirs["secret"], to_supplier)["data"]["sku"] == "A1"
    with pytest.raises(WebhookVerificationError):
        verify(theirs["secret"], to_client)
    for tampered in (
        Received(to_client.path, to_client.headers, to_client.body.replace(b"1100", b"1")),
        Received(to_client.path, {**to_client.headers, "webhook-id": "msg_other"}, to_client.body),
        Received(
            to_client.path,
            {
                **to_client.headers,
                "webhook-timestamp": str(int(to_client.headers["webhook-timestamp"]) + 1),
            },
            to_client.body,
        ),
    ):
        with pytest.raises(WebhookVerificationError):
            verify(mine["secret"], tampered)
    assert supplier_id


async def test_a_failed_delivery_is_retried_until_it_succeeds(
    market: Market, allowing: Platform, receiver: Receiver
) -> None:
    # given an endpoint that fails twice (once asking to wait)
    _, supplier = await market.supplier("Alice")
    hook = await endpoint(
        market, supplier, "supply", receiver.url("/flaky"), types=["offer.created"]
    )
    receiver.replies["/flaky"] = [(500, {}), (503, {"Retry-After": "120"})]
    await market.put(supplier, "A1", book())
    # when
    before = utcnow()
    await deliver(allowing)
    listed = await market.api.get(
        f"/supply/v1/webhook-endpoints/{hook['id']}/deliveries", headers=market.auth(supplier)
    )
    (first,) = listed.json()["data"]
    await make_due(allowing)
    await deliver(allowing)
    after_503 = (
        await market.api.get(
            f"/supply/v1/webhook-deliveries/{first['id']}", headers=market.auth(supplier)
        )
    ).json()
    await make_due(allowing)
    await deliver(allowing)
    done = (
        await market.api.get(
            f"/supply/v1/webhook-deliveries/{first['id']}", headers=market.auth(supplier)
        )
    ).json()
    # then: retried after 5-6 s, then no sooner than the receiver asked, then delivered
    assert first["status"] == "pending" and first["attempts"] == 1
    wait = (httpx_time(first["next_attempt_at"]) - before).total_seconds()
    assert 4 <= wait <= 8
    assert (httpx_time(after_503["next_attempt_at"]) - before).total_seconds() >= 119
    assert done["status"] == "succeeded" and done["attempts"] == 3
    assert [a["status_code"] for a in done["attempt_log"]] == [500, 503, 200]
    ids = {r.headers["webhook-id"] for r in receiver.at("/flaky")}
    assert ids == {first["id"]}  # the same message id on every attempt


def httpx_time(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_410_disables_the_endpoint_and_redirects_are_not_followed(
    market: Market, allowing: Platform, receiver: Receiver
) -> None:
    # given
    _, supplier = await market.supplier("Alice")
    gone = await endpoint(
        market, supplier, "supply", receiver.url("/gone"), types=["offer.created"]
    )
    moved = await endpoint(
        market, supplier, "supply", receiver.url("/moved"), types=["offer.created"]
    )
    receiver.replies["/gone"] = [(410, {})]
    receiver.replies["/moved"] = [(302, {"Location": receiver.url("/elsewhere")})]
    # when
    await market.put(supplier, "A1", book())
    await deliver(allowing)
    # then
    shown = (
        await market.api.get(
            f"/supply/v1/webhook-endpoints/{gone['id']}", headers=market.auth(supplier)
        )
    ).json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]
    assert receiver.at("/elsewhere") == []
    moved_deliveries = (
        await market.api.get(
            f"/supply/v1/webhook-endpoints/{moved['id']}/deliveries", headers=market.auth(supplier)
        )
    ).json()["data"]
    assert moved_deliveries[0]["status"] == "pending" and moved_deliveries[0]["last_status"] == 302
    # and a disabled endpoint gets nothing more
    await market.put(supplier, "A2", book())
    await deliver(allowing)
    assert len(receiver.at("/gone")) == 1


async def test_private_targets_are_refused_unless_allowed(
    market: Market, platform: Platform
) -> None:
    _, supplier = await market.supplier("Alice")
    for url in (
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://localhost:8080/x",
        "ftp://example.com/",
    ):
        response = await market.api.post(
            "/supply/v1/webhook-endpoints", json={"url": url}, headers=market.auth(supplier)
        )
        assert response.status_code == 422, (url, response.text)


async def test_a_rotated_secret_signs_with_both_until_the_overlap_ends(
    market: Market, allowing: Platform, receiver: Receiver
) -> None:
    _, supplier = await market.supplier("Alice")
    hook = await endpoint(market, supplier, "supply", receiver.url("/r"), types=["offer.created"])
    rotated = await market.api.post(
        f"/supply/v1/webhook-endpoints/{hook['id']}/rotate-secret", headers=market.auth(supplier)
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != hook["secret"] and rotated.json()["previous_secret_until"]
    await market.put(supplier, "A1", book())
    await deliver(allowing)
    (got,) = receiver.at("/r")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert verify(new, got) and verify(hook["secret"], got)


async def test_any_delivery_can_be_replayed(
    market: Market, allowing: Platform, receiver: Receiver
) -> None:
    _, supplier = await market.supplier("Alice")
    hook = await endpoint(market, supplier, "supply", receiver.url("/p"), types=["offer.created"])
    await market.put(supplier, "A1", book())
    await deliver(allowing)
    (delivery,) = (
        await market.api.get(
            f"/supply/v1/webhook-endpoints/{hook['id']}/deliveries", headers=market.auth(supplier)
        )
    ).json()["data"]
    assert delivery["status"] == "succeeded"
    # when
    replayed = await market.api.post(
        f"/supply/v1/webhook-deliveries/{delivery['id']}/replay", headers=market.auth(supplier)
    )
    await deliver(allowing)
    # then the same message again, and another supplier cannot touch it
    assert replayed.status_code == 202 and replayed.json()["status"] == "pending"
    assert [r.headers["webhook-id"] for r in receiver.at("/p")] == [delivery["id"]] * 2
    _, bob = await market.supplier("Bob")
    foreign = await market.api.post(
        f"/supply/v1/webhook-deliveries/{delivery['id']}/replay", headers=market.auth(bob)
    )
    assert foreign.status_code == 404


async def test_a_client_endpoint_gets_only_events_it_may_see(
    market: Market, allowing: Platform, receiver: Receiver
) -> None:
    alice_id, alice = await market.supplier("Alice")
    _, bob = await market.supplier("Bob")
    _, pending = await market.supplier("Pending", approve=False)
    _, client = await market.client(allowed_suppliers=[alice_id])
    await endpoint(market, client, "store", receiver.url("/c"))
    await market.put(alice, "A1", book())
    await market.put(bob, "B1", book())
    await market.put(pending, "P1", book())
    await deliver(allowing)
    got = [r for r in receiver.at("/c")]
    assert len(got) == 1
    assert got[0].body.count(alice_id.encode()) >= 1


async def test_publishable_keys_cannot_manage_webhooks(market: Market, platform: Platform) -> None:
    _, key = await market.client(kind="publishable")
    response = await market.api.post(
        "/store/v1/webhook-endpoints",
        json={"url": "https://example.com/h"},
        headers=market.auth(key),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "secret_key_required"


async def test_each_attempt_is_made_by_one_worker(
    market: Market, allowing: Platform, receiver: Receiver
) -> None:
    # given 30 deliveries due
    _, supplier = await market.supplier("Alice")
    await endpoint(market, supplier, "supply", receiver.url("/once"), types=["offer.created"])
    for n in range(30):
        await market.put(supplier, f"A{n}", book())
    await webhooks.fan_out(allowing.uow)

    # when three workers take them at the same time
    async def worker(name: str) -> int:
        async with webhooks.http_client() as client:
            return await webhooks.deliver_due(
                allowing.uow, client, worker=name, allow=ALLOW, limit=30
            )

    taken = await asyncio.gather(*(worker(f"w{n}") for n in range(3)))
    # then every delivery was sent exactly once
    ids = [r.headers["webhook-id"] for r in receiver.at("/once")]
    assert sum(taken) == 30 and len(ids) == 30 and len(set(ids)) == 30
    async with allowing.uow(write=False) as uow:
        statuses = {r.status for r in await uow.fetch(sa.select(webhook_deliveries.c.status))}
    assert statuses == {"succeeded"}
