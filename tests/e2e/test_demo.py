"""`marketplane demo`, as a newcomer runs it: every curl line it prints works."""

from __future__ import annotations

import shlex
from pathlib import Path

import httpx
import pytest
from test_server_process import _client, _env, _server

pytestmark = pytest.mark.slow


def _curl_lines(log: str) -> list[list[str]]:
    return [shlex.split(line) for line in log.splitlines() if line.startswith("curl ")]


def _send(http: httpx.Client, argv: list[str]) -> httpx.Response:
    method, url, headers, body = "GET", "", {}, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, value = next(args).split(": ", 1)
            headers[name] = value
        elif arg == "-d":
            body = next(args)
        elif arg.startswith("http"):
            url = arg
    if "-N" in argv:  # a stream: it answers, then runs until closed; its head is enough
        with http.stream(method, url, headers=headers) as streamed:
            return streamed
    return http.request(method, url, headers=headers, content=body)


def test_the_demo_serves_a_marketplace_and_its_curl_lines_work(tmp_path: Path) -> None:
    # given the demo built and served from an empty directory
    env = _env("sqlite+aiosqlite:///unused.db")
    command = ("demo", "--offers", "2000", "--path", "demo.db")
    with _server(env, tmp_path, *command) as base, _client(base) as http:
        log = next(tmp_path.glob("server-*.log")).read_text()
        lines = _curl_lines(log)
        # when every printed line is run
        responses = [_send(http, argv) for argv in lines]
        # then each works, and the marketplace is populated and configured as printed
        assert len(lines) >= 5
        assert all(r.status_code in (200, 201) for r in responses), [
            (r.request.url, r.status_code, r.text[:200]) for r in responses
        ]
        web_key = lines[0][-1].removeprefix("Authorization: Bearer ")
        everything = http.get(
            "/store/v1/offers",
            params={"facets": "category", "limit": 1},
            headers={"Authorization": f"Bearer {web_key}"},
        ).json()
        counts = {f["value"]: f["count"] for f in everything["facets"]["category"]}
        assert len(counts) == 2  # books and stays
        assert sum(counts.values()) == 1500  # the pending supplier's 500 stay in its sandbox
        travel = next(r for r in responses if "fields=title" in str(r.request.url)).json()
        assert travel["data"]
        assert set(travel["data"][0]) == {"id", "title", "price"}
        orders = next(r for r in responses if "/store/v1/orders" in str(r.request.url)).json()
        assert len(orders["data"]) == 3 and orders["has_more"]
        waiting = next(r for r in responses if "/supply/v1/orders" in str(r.request.url)).json()
        assert [o["status"] for o in waiting["data"]] == ["awaiting_acceptance"]
        paid = next(r for r in responses if "/supply/v1/payouts" in str(r.request.url)).json()
        assert [p["status"] for p in paid["data"]] == ["paid"]
        statement = next(r for r in responses if "/statements" in str(r.request.url))
        assert statement.headers["content-type"].startswith("text/csv")
        assert "payout_opened" in statement.text
        sponsored = next(r for r in responses if "category=books&limit=4" in str(r.request.url))
        first, *rest = sponsored.json()["data"]
        assert first["sponsored"] is True and rest and all("sponsored" not in o for o in rest)
    assert (tmp_path / "demo.db").exists()
