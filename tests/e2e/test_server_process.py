"""The real thing: `marketplane init` and `marketplane serve` as processes, spoken to over HTTP.

Each test starts its own server on a free port of 127.0.0.1 and always stops it. Every wait is
bounded: the server must answer /readyz within STARTUP_SECONDS, and a stopped server must exit
within STOP_SECONDS.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import BOOKS_SCHEMA, book, drop_pg_database, make_pg_database

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 60.0
STOP_SECONDS = 15.0
COMMAND_SECONDS = 120.0
POLL_SECONDS = 0.1
MAX_BODY_BYTES = 2048


def _env(database_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPLANE_")}
    env["MARKETPLANE_DATABASE_URL"] = database_url
    env.update({f"MARKETPLANE_{name.upper()}": value for name, value in settings.items()})
    return env


def _marketplane(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marketplane", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


def _init(env: dict[str, str], cwd: Path) -> str | None:
    done = _marketplane("init", "--json", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    key: str | None = json.loads(done.stdout)["operator_key"]
    return key


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _server(env: dict[str, str], cwd: Path, *command: str) -> Iterator[str]:
    """`marketplane serve` (or another serving command) on a free port; yields its base URL once
    /readyz answers 200."""
    command = command or ("serve", "--host", "127.0.0.1")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = cwd / f"server-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "marketplane", *command, "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(process, base, log_path)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_SECONDS)


def _wait_ready(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=base, timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(POLL_SECONDS)
    pytest.fail(f"the server was not ready within {STARTUP_SECONDS}s:\n{log_path.read_text()}")


def _client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=10.0, trust_env=False)  # no proxy for 127.0.0.1


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- the flow, on any backend -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/m.db"
        return
    name = f"mp_process_{os.getpid()}"
    url = make_pg_database(name)
    try:
        yield url
    finally:
        drop_pg_database(name)


def test_init_creates_the_operator_key_once(backend_url: str, tmp_path: Path) -> None:
    # given
    env = _env(backend_url)
    # when
    first = _init(env, tmp_path)
    second = _init(env, tmp_path)
    # then
    assert first is not None and first.startswith("mk_live_")
    assert second is None


def test_a_served_marketplace_takes_supply_and_serves_the_store(
    backend_url: str, tmp_path: Path
) -> None:
    # given an initialised marketplace, served
    env = _env(backend_url, max_body_bytes=str(MAX_BODY_BYTES))
    operator = _init(env, tmp_path)
    assert operator is not None
    with _server(env, tmp_path) as base, _client(base) as http:
        ready = http.get("/readyz")
        # when the operator sets it up, a supplier puts an offer and a client searches
        category = _created(
            http.post(
                "/admin/v1/categories",
                headers=_auth(operator),
                json={"slug": "books", "name": "Books", "attribute_schema": BOOKS_SCHEMA},
            )
        )
        supplier = _created(
            http.post("/admin/v1/suppliers", headers=_auth(operator), json={"name": "Paper Lane"})
        )
        approved = http.post(
            f"/admin/v1/suppliers/{supplier['id']}/approve", headers=_auth(operator)
        )
        supplier_key = _created(
            http.post(f"/admin/v1/suppliers/{supplier['id']}/keys", headers=_auth(operator))
        )["key"]
        client = _created(
            http.post("/admin/v1/clients", headers=_auth(operator), json={"name": "Web"})
        )
        client_key = _created(
            http.post(f"/admin/v1/clients/{client['id']}/keys", headers=_auth(operator))
        )["key"]
        offer = _created(
            http.put(
                "/supply/v1/offers/PL-1",
                headers=_auth(supplier_key),
                json=book(title="The Golden River"),
            )
        )
        found = http.get(
            "/store/v1/offers",
            params={"q": "golden", "category": "books"},
            headers={**_auth(client_key), "X-Request-Id": "front-end-42"},
        )
    # then
    assert ready.json()["database"] == (
        "sqlite" if backend_url.startswith("sqlite") else "postgresql"
    )
    assert category["slug"] == "books"
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    assert supplier_key.startswith("mk_live_") and client_key.startswith("mk_live_")
    assert found.status_code == 200, found.text
    assert [o["id"] for o in found.json()["data"]] == [offer["id"]]
    assert found.json()["data"][0]["price"] == {"amount": 1299, "currency": "EUR"}
    assert found.headers["x-request-id"] == "front-end-42"


def test_errors_leave_as_problem_json_with_the_request_id(backend_url: str, tmp_path: Path) -> None:
    # given a server refusing bodies over MAX_BODY_BYTES
    env = _env(backend_url, max_body_bytes=str(MAX_BODY_BYTES))
    operator = _init(env, tmp_path)
    assert operator is not None
    oversized = {"name": "x" * (MAX_BODY_BYTES + 1)}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
        yield b'{"name": "'
        for _ in range(MAX_BODY_BYTES // 512 + 1):
            yield b"y" * 512
        yield b'"}'

    with _server(env, tmp_path) as base, _client(base) as http:
        # when
        healthy = http.get("/healthz")
        anonymous = http.get("/store/v1/offers")
        declared = http.post("/admin/v1/suppliers", headers=_auth(operator), json=oversized)
        streamed = http.post(
            "/admin/v1/suppliers",
            headers={**_auth(operator), "Content-Type": "application/json"},
            content=chunks(),
        )
        listed = http.get("/admin/v1/suppliers", headers=_auth(operator))
    # then
    assert healthy.status_code == 200
    assert healthy.headers["x-request-id"].startswith("req_")
    assert anonymous.status_code == 401
    for refused, status in ((anonymous, 401), (declared, 413), (streamed, 413)):
        assert refused.status_code == status, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["status"] == status
        assert problem["type"] == f"urn:marketplane:problem:{problem['code']}"
        assert problem["request_id"] == refused.headers["x-request-id"]
    assert declared.json()["code"] == streamed.json()["code"] == "payload_too_large"
    assert listed.json()["data"] == []  # nothing was half-written


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan that exited waits as one for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_an_uploaded_feed_runs_in_the_worker_beside_the_server(
    backend_url: str, tmp_path: Path
) -> None:
    # given a served marketplace with a supplier
    env = _env(backend_url, data_dir=str(tmp_path / "data"))
    operator = _init(env, tmp_path)
    assert operator is not None
    feed = "sku,title,category,price,currency,quantity,attr.author,attr.year,attr.isbn\n"
    feed += "W1,Worker book,books,9.99,EUR,1,Ada Hartmann,2001,9780306406157\n"
    with _server(env, tmp_path) as base, _client(base) as http:
        http.post(
            "/admin/v1/categories",
            headers=_auth(operator),
            json={"slug": "books", "name": "Books", "attribute_schema": BOOKS_SCHEMA},
        )
        supplier = _created(
            http.post("/admin/v1/suppliers", headers=_auth(operator), json={"name": "Worker"})
        )
        key = _created(
            http.post(f"/admin/v1/suppliers/{supplier['id']}/keys", headers=_auth(operator))
        )["key"]
        # when it uploads a feed
        queued = http.post(
            "/supply/v1/feeds", headers=_auth(key), files={"file": ("f.csv", feed.encode())}
        )
        deadline = time.monotonic() + COMMAND_SECONDS
        run = queued.json()
        while run["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            run = http.get(f"/supply/v1/feeds/{run['id']}", headers=_auth(key)).json()
    # then the worker process ran it
    assert queued.status_code == 202, queued.text
    assert run["status"] == "complete", run
    assert run["counts"]["inserted"] == 1


def test_a_server_killed_outright_leaves_no_worker_behind(tmp_path: Path) -> None:
    # given a server (SQLite) and its worker
    env = _env(f"sqlite+aiosqlite:///{tmp_path}/m.db", data_dir=str(tmp_path / "data"))
    port = _free_port()
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "marketplane", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(server, f"http://127.0.0.1:{port}", tmp_path / "server.log")
        workers = _children(server.pid)
        # when the server is killed with SIGKILL
        server.kill()
        server.wait(timeout=STOP_SECONDS)
        deadline = time.monotonic() + STOP_SECONDS
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
    finally:
        if server.poll() is None:
            server.kill()
    # then its worker stopped by itself
    assert len(workers) == 1
    assert not any(_running(pid) for pid in workers)
