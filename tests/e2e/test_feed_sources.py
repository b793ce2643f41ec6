"""Feeds fetched from a registered URL on a schedule, from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from conftest import Market, asgi_client, open_platform
from marketplane.access import service as access
from marketplane.bootstrap import Platform
from marketplane.feeds import worker

FEED = (
    "sku,title,category,price,currency,quantity,attr.author,attr.year,attr.isbn\n"
    "U1,Fetched book,books,9.99,EUR,1,Ada Hartmann,2001,9780306406157\n"
)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/feed.csv":
            body = FEED.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", "http://" + self.path[len("/to/") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def fetching(database_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    """A platform that may fetch from 127.0.0.1 (and nothing else private)."""
    platform = await open_platform(
        database_url, data_dir=tmp_path / "data", allow_private_targets="127.0.0.1"
    )
    yield platform
    await platform.close()


@pytest.fixture
async def fetching_market(fetching: Platform) -> AsyncIterator[Market]:
    async with asgi_client(fetching) as api:
        async with fetching.uow() as uow:
            created = await access.bootstrap_owner(uow)
            await uow.commit()
        assert created is not None
        market = Market(api, created[1])
        await market.standard_categories()
        yield market


async def register(market: Market, key: str, url: str) -> httpx.Response:
    return await market.api.post(
        "/supply/v1/feed-sources",
        json={"url": url, "interval_minutes": 60},
        headers=market.auth(key),
    )


async def test_a_registered_url_is_fetched_and_imported_when_due(
    fetching: Platform, fetching_market: Market, origin: str
) -> None:
    # given
    market = fetching_market
    _, supplier = await market.supplier()
    source = await register(market, supplier, f"{origin}/feed.csv")
    # when
    runs = await worker.drain(fetching.uow, fetching.settings)
    again = await worker.drain(fetching.uow, fetching.settings)  # not due for an hour
    listed = await market.api.get("/supply/v1/feed-sources", headers=market.auth(supplier))
    # then
    assert source.status_code == 201, source.text
    assert [(r.status, r.origin, r.counts.inserted) for r in runs] == [("complete", "url", 1)]
    assert again == []
    assert listed.json()[0]["last_run"] == runs[0].id
    offer = await market.api.get("/supply/v1/offers/U1", headers=market.auth(supplier))
    assert offer.json()["price"]["amount"] == 999


@pytest.mark.parametrize("target", ["127.0.0.2:9/feed.csv", "10.0.0.1/feed.csv", "[::1]:9/x"])
async def test_a_redirect_to_a_private_address_is_refused(
    fetching: Platform, fetching_market: Market, origin: str, target: str
) -> None:
    # given a URL on an allowed address that redirects to a private one
    market = fetching_market
    _, supplier = await market.supplier()
    await register(market, supplier, f"{origin}/to/{target}")
    # when
    runs = await worker.drain(fetching.uow, fetching.settings)
    # then
    assert [(r.status, r.error_code) for r in runs] == [("failed", "fetch_refused")]
    assert "refused" in (runs[0].error_detail or "")
    listed = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    assert listed.json()["data"] == []


async def test_a_url_on_a_private_address_is_refused_without_an_allowance(
    platform: Platform, market: Market, origin: str
) -> None:
    # given the default settings: no private address allowed
    _, supplier = await market.supplier()
    await register(market, supplier, f"{origin}/feed.csv")
    # when
    runs = await worker.drain(platform.uow, platform.settings)
    # then
    assert [(r.status, r.error_code) for r in runs] == [("failed", "fetch_refused")]


async def test_a_missing_file_fails_the_run_with_the_status(
    fetching: Platform, fetching_market: Market, origin: str
) -> None:
    # given
    market = fetching_market
    _, supplier = await market.supplier()
    await register(market, supplier, f"{origin}/nothing-here.csv")
    # when
    runs = await worker.drain(fetching.uow, fetching.settings)
    # then
    assert [(r.status, r.error_code) for r in runs] == [("failed", "fetch_failed")]
    assert "404" in (runs[0].error_detail or "")
