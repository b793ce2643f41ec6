"""Events survive the process dying: the server (and its worker) is killed with SIGKILL again and
again while a supplier changes prices, a client streams and webhooks are delivered. After every
restart, every committed event reaches every matching webhook endpoint at least once, and the
stream, resuming from the last id it saw, misses nothing and repeats nothing."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from test_server_process import _auth, _client, _env, _free_port, _init, _wait_ready, backend_url
from test_stream import put, setup

__all__ = ["backend_url"]
pytestmark = pytest.mark.slow
KILLS = 10
SETTLE = 60.0  # seconds for everything committed to arrive after the last restart


class Hooks:
    """A webhook receiver on 127.0.0.1: every verified delivery, by path."""

    def __init__(self) -> None:
        self.got: dict[str, list[dict[str, Any]]] = {}
        self.secrets: dict[str, str] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                event = Webhook(receiver.secrets[self.path]).verify(body, headers)
                with receiver.lock:
                    receiver.got.setdefault(self.path, []).append(event)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.request_queue_size = 128
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seqs(self, path: str) -> set[int]:
        with self.lock:
            return {e["seq"] for e in self.got.get(path, [])}


class Server:
    """`marketplane serve` on a fixed port, killed with SIGKILL and started again at will."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd, self.port = env, cwd, _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.cwd / f"server-{self.starts}.log"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "marketplane", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_ready(self.process, self.base, log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


class Follower:
    """A client's stream, reconnecting with Last-Event-ID whenever the server goes away."""

    def __init__(self, server: Server, key: str) -> None:
        self.server, self.key = server, key
        self.seqs: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.follow, daemon=True)
        self.thread.start()

    def follow(self) -> None:
        timeout = httpx.Timeout(5.0, read=10.0)
        while not self.stop.is_set():
            # From the start of the log, then from the last event seen.
            headers = {**_auth(self.key), "Last-Event-ID": str(self.seqs[-1] if self.seqs else 0)}
            try:
                with (
                    httpx.Client(
                        base_url=self.server.base, timeout=timeout, trust_env=False
                    ) as http,
                    http.stream("GET", "/store/v1/stream", headers=headers) as response,
                ):
                    for line in response.iter_lines():
                        if self.stop.is_set():
                            return
                        if line.startswith("id: "):
                            self.seqs.append(int(line[4:]))
            except httpx.HTTPError:
                time.sleep(0.1)  # the server is down: try again


class Writer:
    """A supplier changing prices as fast as the API takes them; errors while down are fine."""

    def __init__(self, server: Server, key: str) -> None:
        self.server, self.key = server, key
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.write, daemon=True)
        self.thread.start()

    def write(self) -> None:
        n = 0
        with httpx.Client(base_url=self.server.base, timeout=5.0, trust_env=False) as http:
            while not self.stop.is_set():
                n += 1
                try:
                    put(http, self.key, f"K{n % 7}", amount=1000 + n)
                except (httpx.HTTPError, AssertionError):
                    time.sleep(0.05)


def everything(http: httpx.Client, path: str, key: str) -> list[dict[str, Any]]:
    found, after = [], 0
    while True:
        page = http.get(path, params={"after": after, "limit": 100}, headers=_auth(key)).json()
        found.extend(page["data"])
        if not page["has_more"]:
            return found
        after = int(page["next_cursor"])


def test_every_event_arrives_though_the_server_is_killed_again_and_again(
    backend_url: str, tmp_path: Path
) -> None:
    hooks = Hooks()
    env = _env(
        backend_url,
        allow_private_targets="127.0.0.1",
        webhook_poll_seconds="0.2",
        webhook_timeout_seconds="2",
        webhook_lease_seconds="3",
        stream_heartbeat_seconds="0.5",
    )
    operator = _init(env, tmp_path)
    assert operator is not None
    server = Server(env, tmp_path)
    server.start()
    try:
        with _client(server.base) as http:
            supplier, client = setup(http, operator)
            for side, key, path in (
                ("store", client, "/client"),
                ("supply", supplier, "/supplier"),
            ):
                made = http.post(
                    f"/{side}/v1/webhook-endpoints",
                    headers=_auth(key),
                    json={"url": hooks.url + path},
                ).json()
                hooks.secrets[path] = made["secret"]
        follower, writer = Follower(server, client), Writer(server, supplier)
        draw = random.Random(11)
        for _ in range(KILLS):
            time.sleep(draw.uniform(0.3, 1.2))
            server.kill()
            server.start()
        time.sleep(0.5)
        writer.stop.set()
        writer.thread.join(timeout=10)
        with _client(server.base) as http:
            client_log = {e["seq"] for e in everything(http, "/store/v1/events", client)}
            # (its endpoint receives what happened after it was made: the writer's offer events)
            supplier_log = {
                e["seq"]
                for e in everything(http, "/supply/v1/events", supplier)
                if e["type"].startswith("offer.")
            }
            operator_log = everything(http, "/admin/v1/events", operator)
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline and not (
            client_log <= hooks.seqs("/client")
            and supplier_log <= hooks.seqs("/supplier")
            and set(follower.seqs) >= client_log
        ):
            time.sleep(0.2)
        follower.stop.set()
    finally:
        server.stop()
    offers = [e for e in operator_log if e["type"].startswith("offer.")]
    assert len(offers) > 20, "the writer got too few changes through to mean anything"
    assert client_log <= hooks.seqs("/client"), "a webhook missed a committed event"
    assert supplier_log <= hooks.seqs("/supplier"), "a webhook missed a committed event"
    seen = [s for s in follower.seqs if s in client_log]
    assert seen == sorted(client_log), "the stream skipped or repeated an event"


@pytest.mark.postgres
def test_two_servers_on_one_database_attempt_each_delivery_once(
    own_pg_url: str, tmp_path: Path
) -> None:
    # given two servers, each with its worker, on one PostgreSQL, and an endpoint
    hooks = Hooks()
    env = _env(own_pg_url, allow_private_targets="127.0.0.1", webhook_poll_seconds="0.2")
    operator = _init(env, tmp_path)
    assert operator is not None
    first, second = Server(env, tmp_path), Server(env, tmp_path)
    first.start()
    second.start()
    try:
        with _client(first.base) as a, _client(second.base) as b:
            supplier, _ = setup(a, operator)
            made = a.post(
                "/supply/v1/webhook-endpoints",
                headers=_auth(supplier),
                json={"url": hooks.url + "/both", "types": ["offer.created"]},
            ).json()
            hooks.secrets["/both"] = made["secret"]
            # when offers are created through both
            for n in range(40):
                put(a if n % 2 else b, supplier, f"T{n}")
            deadline = time.monotonic() + SETTLE
            while time.monotonic() < deadline and len(hooks.got.get("/both", [])) < 40:
                time.sleep(0.2)
            time.sleep(1.0)  # a second attempt, were there one, would have come by now
            listed = everything_deliveries(a, made["id"], supplier)
    finally:
        first.stop()
        second.stop()
    # then each delivery was attempted once, by one of the two workers
    received = [e["seq"] for e in hooks.got["/both"]]
    assert len(received) == 40 and len(set(received)) == 40
    assert len(listed) == 40 and {d["attempts"] for d in listed} == {1}


def everything_deliveries(http: httpx.Client, endpoint_id: str, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = http.get(
            f"/supply/v1/webhook-endpoints/{endpoint_id}/deliveries",
            params=params,
            headers=_auth(key),
        ).json()
        found.extend(page["data"])
        if not page["has_more"]:
            return found
        params["cursor"] = page["next_cursor"]
