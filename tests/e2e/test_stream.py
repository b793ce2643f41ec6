"""`GET /store/v1/stream` against real server processes: live events, resumed with Last-Event-ID
without a gap, filtered, capped per key; a stream that stops reading dropped, told where to
resume, and resumed whole; on PostgreSQL, a change made through one process reaches a stream
held by another."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_server_process import _auth, _client, _created, _env, _init, _server, backend_url

from conftest import BOOKS_SCHEMA, book

__all__ = ["backend_url"]  # the fixture, on both backends
pytestmark = pytest.mark.slow
WAIT = 20.0  # seconds an expected event may take before the test fails (not a measurement)


class Stream:
    """An SSE connection read on a thread: its events arrive on `events`. The thread closes the
    connection itself once `close` is called (it wakes at least with every heartbeat)."""

    def __init__(self, base: str, auth: str | None, **params: Any) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: queue.Queue[int] = queue.Queue()
        self.headers: httpx.Headers | None = None
        self._stop = threading.Event()
        # Reads wait for heartbeats (15 s at most by default), never longer than a minute.
        timeout = httpx.Timeout(10.0, read=60.0)
        self._http = httpx.Client(base_url=base, timeout=timeout, trust_env=False)
        headers = _auth(auth) if auth else {}
        if "last_event_id" in params:
            headers["Last-Event-ID"] = str(params.pop("last_event_id"))
        self._thread = threading.Thread(target=self._read, args=(headers, params), daemon=True)
        self._thread.start()

    def _read(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        try:
            with self._http.stream(
                "GET", "/store/v1/stream", headers=headers, params=params
            ) as response:
                self.headers = response.headers
                self.status.put(response.status_code)
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return  # leaving the block closes the connection
                    if line == "":
                        if "data" in fields:
                            self.events.put({**fields, "body": json.loads(fields["data"])})
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        fields[name] = value
        except httpx.HTTPError:
            pass  # closed by the test

    def next(self) -> dict[str, Any]:
        return self.events.get(timeout=WAIT)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT)
        self._http.close()


@contextmanager
def streaming(base: str, auth: str | None, **params: Any) -> Iterator[Stream]:
    """An open stream. A stream closed just before may still count against the key's limit
    until its server notices the disconnect: a 429 is retried for a while."""
    deadline = time.monotonic() + WAIT
    while True:
        stream = Stream(base, auth, **dict(params))
        status = stream.status.get(timeout=WAIT)
        if status != 429 or time.monotonic() > deadline:
            break
        stream.close()
        time.sleep(0.1)
    try:
        assert status == 200
        # The start went through every middleware (the body goes past them: EventStream).
        assert stream.headers is not None and stream.headers["x-request-id"].startswith("req_")
        assert stream.headers["content-type"].startswith("text/event-stream")
        yield stream
    finally:
        stream.close()


def setup(http: httpx.Client, operator: str) -> tuple[str, str]:
    """A books category, an approved supplier and a client with a 10% markup: their keys."""
    _created(
        http.post(
            "/admin/v1/categories",
            headers=_auth(operator),
            json={"slug": "books", "name": "Books", "attribute_schema": BOOKS_SCHEMA},
        )
    )
    supplier = _created(
        http.post("/admin/v1/suppliers", headers=_auth(operator), json={"name": "Paper Lane"})
    )
    http.post(f"/admin/v1/suppliers/{supplier['id']}/approve", headers=_auth(operator))
    supplier_key = _created(
        http.post(f"/admin/v1/suppliers/{supplier['id']}/keys", headers=_auth(operator))
    )["key"]
    client = _created(
        http.post(
            "/admin/v1/clients", headers=_auth(operator), json={"name": "Web", "markup_bps": 1000}
        )
    )
    client_key = _created(
        http.post(f"/admin/v1/clients/{client['id']}/keys", headers=_auth(operator))
    )["key"]
    return supplier_key, client_key


def client_id(http: httpx.Client, operator: str) -> str:
    found: str = http.get("/admin/v1/clients", headers=_auth(operator)).json()["data"][0]["id"]
    return found


def put(http: httpx.Client, key: str, sku: str, **changes: Any) -> dict[str, Any]:
    response = http.put(f"/supply/v1/offers/{sku}", headers=_auth(key), json=book(**changes))
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_stream_receives_changes_and_resumes_without_a_gap(
    backend_url: str, tmp_path: Path
) -> None:
    env = _env(backend_url, stream_max_per_key="2", stream_heartbeat_seconds="0.5")
    operator = _init(env, tmp_path)
    assert operator is not None
    with _server(env, tmp_path) as base, _client(base) as http:
        supplier, client = setup(http, operator)
        # given a live stream
        with streaming(base, client) as stream:
            # when a supplier creates and reprices an offer
            offer = put(http, supplier, "S1", amount=1000)
            put(http, supplier, "S1", amount=2000)
            first, second = stream.next(), stream.next()
        # then the client sees both, as the store shows them
        assert (first["event"], second["event"]) == ("offer.created", "offer.price_changed")
        assert first["body"]["data"]["id"] == offer["id"]
        assert [
            first["body"]["data"]["price"]["amount"],
            second["body"]["data"]["price"]["amount"],
        ] == [1100, 2200]
        assert int(second["id"]) > int(first["id"])
        # when changes happen while it is away, and it comes back with the last id it saw
        put(http, supplier, "S1", amount=3000)
        put(http, supplier, "S2", title="Another")
        with streaming(base, client, last_event_id=second["id"]) as resumed:
            missed = [resumed.next(), resumed.next()]
            put(http, supplier, "S1", amount=3000, quantity=1)
            live = resumed.next()
        # then it gets exactly what it missed, in order, then what is new
        assert [e["event"] for e in missed] == ["offer.price_changed", "offer.created"]
        assert live["event"] == "offer.stock_changed"
        seqs = [int(e["id"]) for e in (second, *missed, live)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        # and a stream filtered to one offer sees only that offer's events
        with streaming(base, client, offers=offer["id"], last_event_id=0) as only:
            mine = [only.next() for _ in range(4)]
        assert {e["body"]["data"]["id"] for e in mine} == {offer["id"]}
        # and a browser's EventSource, which sends no headers, may name a publishable key
        publishable = _created(
            http.post(
                f"/admin/v1/clients/{client_id(http, operator)}/keys",
                headers=_auth(operator),
                json={"kind": "publishable"},
            )
        )["key"]
        with streaming(base, None, last_event_id=0, key=publishable) as browser:
            assert browser.next()["event"] == "offer.created"
        secret_in_url = http.get("/store/v1/stream", params={"key": client})
        assert secret_in_url.status_code == 422
        assert secret_in_url.json()["errors"][0]["code"] == "secret_key_in_url"
        # and a key holds at most stream_max_per_key streams at once
        with streaming(base, client), streaming(base, client):
            third = http.get("/store/v1/stream", headers=_auth(client))
        assert third.status_code == 429
        assert third.json()["code"] == "too_many_streams"
        # and the live deliveries were measured, commit to stream
        fresh = http.get("/admin/v1/events/freshness", headers=_auth(operator)).json()
        metrics = http.get("/metrics").text
    assert fresh["count"] >= 3 and 0 <= fresh["p50_ms"] <= fresh["p99_ms"]
    count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("marketplane_event_freshness_seconds_count")
    )
    assert count >= 3


def _chunks(sock: socket.socket) -> bytes:
    """A chunked HTTP body read from `sock` (its headers already read) until its last chunk or
    the end of the connection: the content, unframed."""
    raw, body = b"", b""
    while True:
        size_end = raw.find(b"\r\n")
        if size_end >= 0:
            size = int(raw[:size_end], 16)
            if size == 0:
                return body
            if len(raw) >= size_end + 2 + size + 2:
                body += raw[size_end + 2 : size_end + 2 + size]
                raw = raw[size_end + 2 + size + 2 :]
                continue
        data = sock.recv(1 << 20)
        if not data:
            return body
        raw += data


def test_a_stream_that_stops_reading_is_dropped_told_where_to_resume_and_resumes_whole(
    backend_url: str, tmp_path: Path
) -> None:
    env = _env(backend_url, stream_queue="3", stream_heartbeat_seconds="60")
    operator = _init(env, tmp_path)
    assert operator is not None
    with _server(env, tmp_path) as base, _client(base) as http:
        supplier, client = setup(http, operator)
        port = int(base.rsplit(":", 1)[1])
        # given a stream whose client reads its headers and then nothing more
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(
                b"GET /store/v1/stream HTTP/1.1\r\nHost: test\r\n"
                b"Authorization: Bearer " + client.encode() + b"\r\n\r\n"
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            assert head.startswith(b"HTTP/1.1 200")
            # when far more changes happen than the sockets between them hold (each event carries
            # its offer's 15,000-character description)
            text = "x" * 15_000
            for request in range(4):
                items = [
                    {**book(amount=1000 + n, description=text), "sku": f"B{request}-{n}"}
                    for n in range(400)
                ]
                response = http.post(
                    "/supply/v1/offers/batch", headers=_auth(supplier), json={"offers": items}
                )
                assert response.status_code == 200, response.text
            # then, once it reads again, it gets the events it had, then `dropped` with where to
            # resume, and its response ends
            body = _chunks(sock)
        frames = [f for f in body.decode().split("\n\n") if f and not f.startswith(":")]
        assert frames[0].startswith("retry:") and frames[-1].startswith("event: dropped")
        note = json.loads(frames[-1].split("data: ", 1)[1])
        assert note["reason"] == "too_slow"
        seqs = [int(f.split("\n", 1)[0].removeprefix("id: ")) for f in frames[1:-1]]
        assert seqs == sorted(set(seqs)) and seqs[-1] == note["resume_after"]
        assert len(seqs) < 1600  # it fell behind: not everything reached it before the drop
        # and resuming from there continues with the very next event of the log
        after = http.get(
            "/store/v1/events",
            headers=_auth(client),
            params={"after": note["resume_after"], "limit": 1},
        ).json()["data"]
        with streaming(base, client, last_event_id=note["resume_after"]) as resumed:
            assert int(resumed.next()["id"]) == after[0]["seq"]


@pytest.mark.postgres
def test_a_change_through_one_process_reaches_a_stream_on_another(
    own_pg_url: str, tmp_path: Path
) -> None:
    # events_poll_seconds far above WAIT: only NOTIFY can bring the event in time
    env = _env(
        own_pg_url, events_poll_seconds="300", feed_worker="false", stream_heartbeat_seconds="0.5"
    )
    operator = _init(env, tmp_path)
    assert operator is not None
    with (
        _server(env, tmp_path) as a,
        _server(env, tmp_path) as b,
        _client(a) as http_a,
    ):
        supplier, client = setup(http_a, operator)
        with streaming(b, client) as stream:
            # when
            offer = put(http_a, supplier, "X1", amount=500)
            # then
            event = stream.next()
        assert event["event"] == "offer.created" and event["body"]["data"]["id"] == offer["id"]
