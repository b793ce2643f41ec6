"""Supply feeds through the API: upload, runs, row errors, full feeds, mappings, the checklist."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import httpx

from conftest import Market
from marketplane.bootstrap import Platform
from marketplane.feeds import worker

HEADER = "sku,title,category,price,currency,quantity,attr.author,attr.year,attr.isbn\n"
ISBNS = ["9780306406157", "9781402894626", "9780262033848", "9780131103627", "9780201633610"]


def book_rows(count: int, *, price: str = "12.99", start: int = 0) -> str:
    return "".join(
        f"B{i},Book number {i},books,{price},EUR,3,Ada Hartmann,{1990 + i % 30},"
        f"{ISBNS[i % len(ISBNS)]}\n"
        for i in range(start, start + count)
    )


async def upload(
    market: Market, key: str, content: bytes | str, *, name: str = "feed.csv", **form: Any
) -> httpx.Response:
    body = content.encode() if isinstance(content, str) else content
    return await market.api.post(
        "/supply/v1/feeds",
        files={"file": (name, body, "application/octet-stream")},
        data={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in form.items()},
        headers=market.auth(key),
    )


async def run_feed(
    platform: Platform, market: Market, key: str, content: bytes | str, **form: Any
) -> dict[str, Any]:
    queued = await upload(market, key, content, **form)
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "queued"
    await worker.drain(platform.uow, platform.settings)
    done = await market.api.get(f"/supply/v1/feeds/{queued.json()['id']}", headers=market.auth(key))
    assert done.status_code == 200, done.text
    run: dict[str, Any] = done.json()
    c = run["counts"]
    assert c["read"] == c["inserted"] + c["updated"] + c["unchanged"] + c["deleted"] + c["failed"]
    return run


async def store_skus(market: Market, client: str) -> list[str]:
    page = await market.store(client, "/store/v1/offers", limit=100, fields="title")
    return sorted(o["title"] for o in page.json()["data"])


async def test_a_csv_feed_goes_live_and_the_same_file_twice_changes_nothing(
    platform: Platform, market: Market
) -> None:
    # given
    _, supplier = await market.supplier()
    _, client = await market.client()
    # when
    first = await run_feed(platform, market, supplier, HEADER + book_rows(3))
    second = await run_feed(platform, market, supplier, HEADER + book_rows(3))
    # then
    assert first["status"] == "complete"
    assert first["counts"]["inserted"] == 3 and first["counts"]["failed"] == 0
    assert first["format"] == "csv" and first["rows_per_s"] is not None
    assert second["counts"] == {**second["counts"], "read": 3, "unchanged": 3, "inserted": 0}
    offer = await market.api.get("/supply/v1/offers/B1", headers=market.auth(supplier))
    assert offer.json()["version"] == 1
    assert offer.json()["price"] == {"amount": 1299, "currency": "EUR"}
    assert offer.json()["attributes"]["year"] == 1991  # typed by the category's schema
    assert len(await store_skus(market, client)) == 3


async def test_each_bad_row_is_reported_and_the_good_ones_apply(
    platform: Platform, market: Market
) -> None:
    # given rows with a price too precise, a ragged row, a duplicate SKU and a formula
    _, supplier = await market.supplier()
    content = (
        HEADER
        + book_rows(2)
        + "B7,Too precise,books,12.999,EUR,1,Ada,2001,9780306406157\n"
        + "B8,Ragged\n"
        + "=cmd|' /C calc'!A0,Formula,books,1.00,EUR,1,Ada,2001,9780306406157\n"
        + "B0,Book number 0 again,books,9.99,EUR,1,Ada Hartmann,1990,9780306406157\n"
    )
    # when
    run = await run_feed(platform, market, supplier, content)
    errors = await market.api.get(
        f"/supply/v1/feeds/{run['id']}/errors", headers=market.auth(supplier)
    )
    report = await market.api.get(
        f"/supply/v1/feeds/{run['id']}/error-report", headers=market.auth(supplier)
    )
    # then
    assert run["status"] == "complete"
    assert run["counts"]["read"] == 6
    by_line = {(e["line"], e["code"]) for e in errors.json()["data"]}
    assert (4, "currency_precision") in by_line
    assert (5, "ragged_row") in by_line
    assert (6, "invalid_sku") in by_line
    assert (2, "duplicate_sku") in by_line  # the first B0: the last row wins
    precise = next(e for e in errors.json()["data"] if e["code"] == "currency_precision")
    assert precise["sku"] == "B7" and precise["field"] == "price.decimal"
    assert precise["value"] == "12.999"
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0] == ["line", "sku", "field", "code", "message", "value"]
    cells = [cell for row in rows for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert any(cell.startswith("'=cmd") for cell in cells)
    offer = await market.api.get("/supply/v1/offers/B0", headers=market.auth(supplier))
    assert offer.json()["title"] == "Book number 0 again"


async def test_json_lines_and_arrays_report_errors_in_their_own_format(
    platform: Platform, market: Market
) -> None:
    # given
    _, supplier = await market.supplier()
    good = {
        "sku": "J1",
        "category": "books",
        "title": "Json book",
        "price": {"amount": 1500, "currency": "EUR"},
        "quantity": 2,
        "attributes": {"isbn": "9780306406157", "author": "Ada", "year": 2001},
    }
    bad = {**good, "sku": "J2", "quantity": -1}
    lines = (json.dumps(good) + "\n" + json.dumps(bad) + "\nnot json\n").encode()
    # when
    jsonl = await run_feed(platform, market, supplier, gzip.compress(lines), name="f.jsonl.gz")
    array = await run_feed(
        platform, market, supplier, json.dumps([good, bad]).encode(), name="f.json"
    )
    jsonl_report = await market.api.get(
        f"/supply/v1/feeds/{jsonl['id']}/error-report", headers=market.auth(supplier)
    )
    array_report = await market.api.get(
        f"/supply/v1/feeds/{array['id']}/error-report", headers=market.auth(supplier)
    )
    # then
    assert jsonl["compressed"] is True and jsonl["format"] == "jsonl"
    assert jsonl["counts"]["inserted"] == 1 and jsonl["counts"]["failed"] == 2
    codes = [json.loads(line)["code"] for line in jsonl_report.text.splitlines()]
    assert sorted(codes) == ["invalid_json", "out_of_range"]
    assert array["counts"] == {**array["counts"], "unchanged": 1, "failed": 1}
    assert [e["code"] for e in array_report.json()] == ["out_of_range"]


async def test_delete_flags_remove_offers_once(platform: Platform, market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    await run_feed(platform, market, supplier, HEADER + book_rows(2))
    deletion = "sku,delete\nB0,yes\nB9,yes\n"
    # when
    first = await run_feed(platform, market, supplier, deletion)
    again = await run_feed(platform, market, supplier, deletion)
    # then
    assert first["counts"]["deleted"] == 1 and first["counts"]["unchanged"] == 1
    assert again["counts"]["deleted"] == 0 and again["counts"]["unchanged"] == 2
    gone = await market.api.get("/supply/v1/offers/B0", headers=market.auth(supplier))
    assert gone.status_code == 404


async def test_a_full_feed_deactivates_what_it_leaves_out_and_holds_a_drastic_one(
    platform: Platform, market: Market
) -> None:
    # given ten live offers
    _, supplier = await market.supplier()
    _, client = await market.client()
    await run_feed(platform, market, supplier, HEADER + book_rows(10))
    # when a full feed names eight of them (two go), then one names only three (seven would go)
    modest = await run_feed(platform, market, supplier, HEADER + book_rows(8), mode="full")
    drastic = await run_feed(platform, market, supplier, HEADER + book_rows(3), mode="full")
    held_titles = await store_skus(market, client)
    confirmed = await market.api.post(
        f"/supply/v1/feeds/{drastic['id']}/confirm", headers=market.auth(supplier)
    )
    # then
    assert modest["status"] == "complete"
    assert modest["counts"]["deactivated"] == 2 and modest["to_deactivate"] == 2
    assert drastic["status"] == "held"
    assert drastic["to_deactivate"] == 5 and drastic["live_before"] == 8
    assert drastic["error"]["code"] == "held_for_confirmation"
    assert len(held_titles) == 8  # nothing deactivated while held
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "complete"
    assert confirmed.json()["counts"]["deactivated"] == 5
    assert len(await store_skus(market, client)) == 3
    again = await market.api.post(
        f"/supply/v1/feeds/{drastic['id']}/confirm", headers=market.auth(supplier)
    )
    assert again.status_code == 409


async def test_a_discarded_hold_deactivates_nothing_and_offers_come_back_when_sent(
    platform: Platform, market: Market
) -> None:
    # given
    _, supplier = await market.supplier()
    _, client = await market.client()
    await run_feed(platform, market, supplier, HEADER + book_rows(4))
    drastic = await run_feed(platform, market, supplier, HEADER + book_rows(1), mode="full")
    # when
    discarded = await market.api.post(
        f"/supply/v1/feeds/{drastic['id']}/discard", headers=market.auth(supplier)
    )
    await run_feed(platform, market, supplier, HEADER + book_rows(3), mode="full")
    back = await run_feed(platform, market, supplier, HEADER + book_rows(4))
    # then
    assert discarded.json()["status"] == "complete"
    assert discarded.json()["counts"]["deactivated"] == 0
    assert back["counts"]["updated"] == 1  # the deactivated one, active again
    assert len(await store_skus(market, client)) == 4


async def test_a_dry_run_counts_without_writing(platform: Platform, market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    await run_feed(platform, market, supplier, HEADER + book_rows(2))
    # when
    dry = await run_feed(
        platform, market, supplier, HEADER + book_rows(3, price="9.99"), dry_run=True
    )
    # then
    assert dry["dry_run"] is True and dry["status"] == "complete"
    assert dry["counts"]["updated"] == 2 and dry["counts"]["inserted"] == 1
    listed = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    assert len(listed.json()["data"]) == 2
    assert {o["price"]["amount"] for o in listed.json()["data"]} == {1299}


async def test_a_saved_mapping_reads_nested_json_and_its_preview_writes_nothing(
    platform: Platform, market: Market
) -> None:
    # given a feed in the supplier's own shape
    _, supplier = await market.supplier()
    mapping = {
        "fields": {
            "sku": {"path": "ref"},
            "title": {"path": "info.name"},
            "category": {"value": "books"},
            "price": {"path": "pricing.eur"},
            "currency": {"value": "EUR"},
            "quantity": {"path": "stock.available"},
        },
        "attributes": {
            "author": {"path": "info.writers[0]"},
            "year": {"path": "info.published"},
            "isbn": {"path": "codes.isbn13"},
        },
    }
    row = {
        "ref": "N1",
        "info": {"name": "Nested", "writers": ["Ada Hartmann", "Bo"], "published": "2003"},
        "pricing": {"eur": "19.90"},
        "stock": {"available": 4},
        "codes": {"isbn13": "978-0-306-40615-7"},
    }
    content = (json.dumps(row) + "\n").encode()
    # when
    saved = await market.api.put(
        "/supply/v1/feed-mapping", json={"mapping": mapping}, headers=market.auth(supplier)
    )
    preview = await market.api.post(
        "/supply/v1/feed-mapping/preview",
        files={"file": ("f.jsonl", content, "application/x-ndjson")},
        headers=market.auth(supplier),
    )
    before = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    run = await run_feed(platform, market, supplier, content, name="f.jsonl")
    # then
    assert saved.status_code == 200 and saved.json()["version"] == 1
    shown = preview.json()["rows"][0]
    assert shown["outcome"] == "valid", shown
    assert shown["offer"]["price"] == {"amount": 1990, "currency": "EUR"}
    assert shown["offer"]["attributes"] == {
        "author": "Ada Hartmann",
        "year": 2003,
        "isbn": "978-0-306-40615-7",
    }
    assert shown["offer"]["gtin"] == "9780306406157"
    assert before.json()["data"] == []
    assert run["counts"]["inserted"] == 1 and run["mapping_version"] == 1


async def test_a_bad_mapping_is_refused_naming_the_place(market: Market) -> None:
    # given
    _, supplier = await market.supplier()
    mapping = {"fields": {"colour": "c", "price": {"column": "p", "units": "cents"}}}
    # when
    response = await market.api.put(
        "/supply/v1/feed-mapping", json={"mapping": mapping}, headers=market.auth(supplier)
    )
    # then
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"fields.colour", "fields.price.units"}


async def test_a_file_fails_whole_only_when_unreadable_or_all_bad(
    platform: Platform, market: Market
) -> None:
    # given
    _, supplier = await market.supplier()
    await market.api.put(
        "/supply/v1/feed-mapping",
        json={"mapping": {"fields": {"title": "name"}}},
        headers=market.auth(supplier),
    )
    # when
    mismatch = await run_feed(platform, market, supplier, HEADER + book_rows(1))
    await market.api.put(
        "/supply/v1/feed-mapping", json={"mapping": {}}, headers=market.auth(supplier)
    )
    all_bad = await run_feed(platform, market, supplier, HEADER + book_rows(2, price="x"))
    broken = await run_feed(
        platform, market, supplier, gzip.compress((HEADER + book_rows(50)).encode())[:-30]
    )
    # then
    assert mismatch["status"] == "failed" and mismatch["error"]["code"] == "mapping_mismatch"
    assert "name" in mismatch["error"]["detail"]
    assert all_bad["status"] == "failed" and all_bad["error"]["code"] == "all_rows_failed"
    assert broken["status"] == "failed" and broken["error"]["code"] == "feed_unreadable"


async def test_a_pending_supplier_feeds_a_sandbox_and_the_checklist_tracks_its_way(
    platform: Platform, market: Market
) -> None:
    # given a supplier not yet approved
    supplier_id, supplier = await market.supplier("Newcomer", approve=False)
    _, client = await market.client()
    # when it maps, validates and feeds, then is approved
    await market.api.put(
        "/supply/v1/feed-mapping", json={"mapping": {}}, headers=market.auth(supplier)
    )
    await run_feed(platform, market, supplier, HEADER + book_rows(2), dry_run=True)
    await run_feed(platform, market, supplier, HEADER + book_rows(2))
    hidden = await store_skus(market, client)
    own = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    before = await market.api.get("/supply/v1/integration", headers=market.auth(supplier))
    await market.admin("POST", f"/admin/v1/suppliers/{supplier_id}/approve")
    after = await market.api.get("/supply/v1/integration", headers=market.auth(supplier))
    metrics = await market.admin("GET", "/admin/v1/feed-metrics")
    # then
    assert hidden == [] and len(own.json()["data"]) == 2
    steps = {s["name"]: s["done"] for s in before.json()["steps"]}
    assert steps == {
        "key_created": True,
        "mapping_saved": True,
        "first_feed_validated": True,
        "first_offer_live": False,
        "first_order_accepted": False,
    }
    assert before.json()["integration_seconds"] is None
    assert {s["name"]: s["done"] for s in after.json()["steps"]}["first_offer_live"] is True
    assert after.json()["integration_seconds"] >= 0
    assert len(await store_skus(market, client)) == 2
    mine = next(i for i in metrics.json()["integration"] if i["supplier"] == supplier_id)
    assert mine["integration_seconds"] == after.json()["integration_seconds"]
    assert metrics.json()["rows_per_s_median"] > 0
    assert metrics.json()["error_rate"] == 0


async def test_a_supplier_sees_only_its_own_runs_and_an_operator_sees_all(
    platform: Platform, market: Market
) -> None:
    # given
    supplier_id, first = await market.supplier("One")
    _, second = await market.supplier("Two")
    run = await run_feed(platform, market, first, HEADER + book_rows(1))
    # when
    other = await market.api.get(f"/supply/v1/feeds/{run['id']}", headers=market.auth(second))
    other_errors = await market.api.get(
        f"/supply/v1/feeds/{run['id']}/errors", headers=market.auth(second)
    )
    others_list = await market.api.get("/supply/v1/feeds", headers=market.auth(second))
    admin_list = await market.admin("GET", "/admin/v1/feeds", params={"supplier": supplier_id})
    # then
    assert other.status_code == other_errors.status_code == 404
    assert others_list.json()["data"] == []
    assert [r["id"] for r in admin_list.json()["data"]] == [run["id"]]


async def test_an_operator_runs_a_feed_on_a_suppliers_behalf(
    platform: Platform, market: Market
) -> None:
    # given
    supplier_id, supplier = await market.supplier()
    # when
    queued = await market.admin(
        "POST",
        f"/admin/v1/suppliers/{supplier_id}/feeds",
        files={"file": ("feed.csv", (HEADER + book_rows(2)).encode(), "text/csv")},
    )
    await worker.drain(platform.uow, platform.settings)
    listed = await market.api.get("/supply/v1/offers", headers=market.auth(supplier))
    # then
    assert queued.status_code == 202, queued.text
    assert len(listed.json()["data"]) == 2
