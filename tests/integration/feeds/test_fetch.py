"""Fetching a supplier's feed URL against real HTTP servers on loopback: the allowed host
(127.0.0.1, the only address the tests allow) and traps on 127.0.0.2 and [::1] that count the
connections made to them, which must stay at zero."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import pytest

from marketplane.feeds.fetch import (
    FetchFailed,
    FetchRefused,
    check_target,
    fetch_to_file,
    parse_allow,
)

ALLOW = parse_allow(["127.0.0.1/32"])
FEED = b"sku,title,price\n" + b"".join(b"B%04d,Book %d,%d\n" % (i, i, 100 + i) for i in range(500))
CAP = 64 * 1024
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    """A tiny HTTP/1.1 server: one request per connection, routes by exact path."""

    host: str
    routes: dict[str, Handler] = field(default_factory=dict)
    connections: int = 0
    port: int = 0

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            await self.routes.get(path, respond(404, b"no such feed"))(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, which several tests make it do on purpose
        finally:
            writer.close()


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def respond(status: int, body: bytes = b"", **headers: str) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, {"Content-Length": str(len(body)), **headers}) + body)
        await writer.drain()

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    return respond(status, Location=location)


async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A chunked body with no end: only the client giving up stops it."""
    writer.write(head(200, {"Transfer-Encoding": "chunked"}))
    chunk = b"x" * 8192
    while True:
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Promise 1000 bytes, send 10, then wait until the client hangs up."""
    writer.write(head(200, {"Content-Length": "1000"}) + b"sku,title\n")
    await writer.drain()
    await reader.read()


@pytest.fixture
async def trap_v4() -> AsyncIterator[Server | None]:
    async with started(Server("127.0.0.2")) as server:
        yield server


@pytest.fixture
async def trap_v6() -> AsyncIterator[Server | None]:
    async with started(Server("::1")) as server:
        yield server


@pytest.fixture
async def origin(trap_v4: Server | None, trap_v6: Server | None) -> AsyncIterator[Server]:
    server = Server("127.0.0.1")
    async with started(server) as running:
        assert running is not None
        server.routes.update(
            {
                "/feed.csv": respond(200, FEED, **{"Content-Type": "text/csv"}),
                "/chain/1": redirect("/chain/2", 301),
                "/chain/2": redirect(server.url("/chain/3"), 307),
                "/chain/3": redirect("../feed.csv", 308),
                "/loop": redirect("/loop"),
                "/to-127.0.0.2": redirect(trap_url(trap_v4, "127.0.0.2")),
                "/to-ipv6-loopback": redirect(trap_url(trap_v6, "[::1]")),
                "/to-10.0.0.1": redirect("http://10.0.0.1/feed.csv"),
                "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
                "/to-file": redirect("file:///etc/passwd"),
                "/big": respond(200, b"x" * (CAP + 1)),
                "/endless": endless,
                "/stall": stall,
                "/broken": respond(500, b"oops"),
            }
        )
        yield server


@asynccontextmanager
async def started(server: Server) -> AsyncIterator[Server | None]:
    """Run `server` on a free port for the duration; yields None when its address cannot be
    bound here (no 127.0.0.2 on macOS, no IPv6 in some containers)."""
    try:
        running = await asyncio.start_server(server.serve, server.host, 0)
    except OSError:
        yield None
        return
    server.port = running.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        running.close()
        await running.wait_closed()


def trap_url(trap: Server | None, host: str) -> str:
    # Port 9 (discard) stands in when the trap could not be bound; nothing may connect anyway.
    return trap.url("/x") if trap is not None else f"http://{host}:9/x"


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "feeds"
    folder.mkdir()
    return folder / "feed.csv"


def content(path: Path) -> bytes:
    return path.read_bytes()


def assert_nothing_written(dest: Path) -> None:
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no partial file left behind either


async def test_streams_the_feed_to_the_file_and_hashes_it(origin: Server, dest: Path) -> None:
    # given a feed served on the allowed address
    url = origin.url("/feed.csv")

    # when it is fetched
    fetched = await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW)

    # then the file holds the body, and the result describes it
    assert content(dest) == FEED
    assert fetched.url == url
    assert fetched.path == dest
    assert fetched.bytes == len(FEED)
    assert fetched.sha256 == hashlib.sha256(FEED).hexdigest()
    assert fetched.content_type == "text/csv"
    assert fetched.status == 200
    assert list(dest.parent.iterdir()) == [dest]


async def test_follows_a_redirect_chain_within_the_allowed_host(origin: Server, dest: Path) -> None:
    # given a 301 to a relative path, a 307 to an absolute URL and a 308 to a "../" path
    url = origin.url("/chain/1")

    # when it is fetched
    fetched = await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW)

    # then the feed at the end of the chain is saved under its own URL
    assert fetched.url == origin.url("/feed.csv")
    assert content(dest) == FEED
    assert origin.connections == 4


async def test_refuses_a_redirect_to_another_loopback_address_before_connecting(
    origin: Server, trap_v4: Server | None, dest: Path
) -> None:
    # given a redirect from the allowed 127.0.0.1 to 127.0.0.2, which is not allowed
    target = trap_url(trap_v4, "127.0.0.2")

    # when it is fetched
    with pytest.raises(FetchRefused) as refused:
        await fetch_to_file(origin.url("/to-127.0.0.2"), dest, max_bytes=CAP, allow=ALLOW)

    # then the hop is refused, by name, and nothing ever connected to 127.0.0.2
    assert str(refused.value) == f"redirect to {target} refused: 127.0.0.2 is a loopback address"
    assert refused.value.code == "fetch_refused"
    assert refused.value.extra["address"] == "127.0.0.2"
    if trap_v4 is not None:
        assert trap_v4.connections == 0
    assert_nothing_written(dest)


@pytest.mark.parametrize(
    ("path", "target", "reason"),
    [
        ("/to-10.0.0.1", "http://10.0.0.1/feed.csv", "10.0.0.1 is a private address"),
        (
            "/to-metadata",
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a link-local address",
        ),
    ],
)
async def test_refuses_a_redirect_into_the_private_network_before_connecting(
    origin: Server, dest: Path, path: str, target: str, reason: str
) -> None:
    # given a redirect to an internal address, unreachable from here: connecting would hang
    url = origin.url(path)

    # when it is fetched with a generous budget, but only a few seconds to answer
    async with asyncio.timeout(5):
        with pytest.raises(FetchRefused) as refused:
            await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW, timeout=60)

    # then it was refused at once, which no connection attempt could have been
    assert str(refused.value) == f"redirect to {target} refused: {reason}"
    assert_nothing_written(dest)


async def test_refuses_a_redirect_to_ipv6_loopback_before_connecting(
    origin: Server, trap_v6: Server | None, dest: Path
) -> None:
    # given a redirect to [::1]
    target = trap_url(trap_v6, "[::1]")

    # when it is fetched
    with pytest.raises(FetchRefused) as refused:
        await fetch_to_file(origin.url("/to-ipv6-loopback"), dest, max_bytes=CAP, allow=ALLOW)

    # then it is refused and the trap on [::1] saw nothing
    assert str(refused.value) == f"redirect to {target} refused: ::1 is a loopback address"
    if trap_v6 is not None:
        assert trap_v6.connections == 0
    assert_nothing_written(dest)


async def test_refuses_a_redirect_to_a_file_url(origin: Server, dest: Path) -> None:
    # given a redirect to file:///etc/passwd
    url = origin.url("/to-file")

    # when it is fetched
    with pytest.raises(FetchRefused) as refused:
        await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW)

    # then the scheme is refused
    assert "only http and https URLs can be fetched, not file" in str(refused.value)
    assert str(refused.value).startswith("redirect to file:")
    assert_nothing_written(dest)


async def test_fails_after_too_many_redirects(origin: Server, dest: Path) -> None:
    # given a URL that redirects to itself forever
    url = origin.url("/loop")

    # when it is fetched allowing 3 redirects
    with pytest.raises(FetchFailed) as failed:
        await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW, max_redirects=3)

    # then the first request and 3 redirects were made, and the 4th redirect is the failure
    assert str(failed.value) == f"{url} redirected more than 3 times"
    assert failed.value.code == "fetch_failed"
    assert origin.connections == 4
    assert_nothing_written(dest)


async def test_refuses_a_body_whose_content_length_is_over_the_cap(
    origin: Server, dest: Path
) -> None:
    # given a body one byte over the cap, announced by its Content-Length
    url = origin.url("/big")

    # when it is fetched
    with pytest.raises(FetchFailed) as failed:
        await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW)

    # then it is refused before reading the body
    assert str(failed.value) == f"{url} is {CAP + 1} bytes, over the limit of {CAP} bytes"
    assert_nothing_written(dest)


async def test_aborts_a_body_that_grows_past_the_cap(origin: Server, dest: Path) -> None:
    # given a chunked body with no length and no end
    url = origin.url("/endless")

    # when it is fetched
    with pytest.raises(FetchFailed) as failed:
        await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW)

    # then it is cut off at the cap and the partial file removed
    assert str(failed.value) == f"{url} is over the limit of {CAP} bytes"
    assert_nothing_written(dest)


@pytest.mark.parametrize(
    ("path", "status"), [("/missing", "404 Not Found"), ("/broken", "500 Internal Server Error")]
)
async def test_a_non_2xx_answer_fails_naming_the_status(
    origin: Server, dest: Path, path: str, status: str
) -> None:
    # given a URL answering an error
    url = origin.url(path)

    # when it is fetched
    with pytest.raises(FetchFailed) as failed:
        await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW)

    # then the failure names the status
    assert str(failed.value) == f"{url} answered {status}"
    assert failed.value.extra["status"] == int(status[:3])
    assert_nothing_written(dest)


async def test_a_server_that_stalls_mid_body_times_out(origin: Server, dest: Path) -> None:
    # given a server that sends 10 of 1000 promised bytes, then nothing
    url = origin.url("/stall")

    # when it is fetched with a short timeout
    with pytest.raises(FetchFailed) as failed:
        await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW, timeout=0.5)

    # then it times out and the partial file is gone
    assert str(failed.value).startswith(f"{url} timed out")
    assert_nothing_written(dest)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/feed.csv"])
async def test_refuses_schemes_other_than_http(url: str, dest: Path) -> None:
    # given a URL that is not http(s)
    # when it is fetched
    with pytest.raises(FetchRefused) as refused:
        await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW)

    # then it is refused by its scheme
    scheme = url.split(":")[0]
    assert str(refused.value) == (
        f"{url} refused: only http and https URLs can be fetched, not {scheme}"
    )
    assert_nothing_written(dest)


async def test_refuses_loopback_when_the_allow_list_is_empty(origin: Server, dest: Path) -> None:
    # given the feed on 127.0.0.1, and no allow list
    url = origin.url("/feed.csv")

    # when it is fetched
    with pytest.raises(FetchRefused) as refused:
        await fetch_to_file(url, dest, max_bytes=CAP)

    # then it is refused without connecting
    assert str(refused.value) == f"{url} refused: 127.0.0.1 is a loopback address"
    assert origin.connections == 0
    assert_nothing_written(dest)


async def test_refuses_ipv6_loopback(trap_v6: Server | None, dest: Path) -> None:
    # given a URL to [::1], with only 127.0.0.1 allowed
    url = trap_url(trap_v6, "[::1]")

    # when it is fetched
    with pytest.raises(FetchRefused) as refused:
        await fetch_to_file(url, dest, max_bytes=CAP, allow=ALLOW)

    # then it is refused without connecting
    assert str(refused.value) == f"{url} refused: ::1 is a loopback address"
    if trap_v6 is not None:
        assert trap_v6.connections == 0
    assert_nothing_written(dest)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://[::]/", ":: is an unspecified address"),
        ("http://192.168.1.20/", "192.168.1.20 is a private address"),
        ("http://[fd00::1]/", "fd00::1 is a private address"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://224.0.0.251/", "224.0.0.251 is a multicast address"),
        ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
        ("http://100.64.0.1/", "100.64.0.1 is not a public address"),
        ("http://[fec0::1]/", "fec0::1 is a site-local address"),
        (
            "http://[::ffff:127.0.0.2]/",
            "::ffff:127.0.0.2 is an IPv4-mapped form of 127.0.0.2, a loopback address",
        ),
        (
            "http://[::ffff:a9fe:a9fe]/",
            "::ffff:a9fe:a9fe is an IPv4-mapped form of 169.254.169.254, a link-local address",
        ),
        (
            "http://[2002:a00:1::]/",
            "2002:a00:1:: is a 6to4 form of 10.0.0.1, a private address",
        ),
        (
            "http://[64:ff9b::7f00:1]/",
            "64:ff9b::7f00:1 is a NAT64 form of 127.0.0.1, a loopback address",
        ),
        ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a loopback address"),
        ("http://localhost:8080/", "localhost resolves to"),
    ],
)
async def test_check_target_names_the_host_and_the_address_it_refuses(
    url: str, reason: str
) -> None:
    # given an address literal, or a name resolved locally (hosts file, numeric forms)
    # when it is checked with nothing allowed
    with pytest.raises(FetchRefused) as refused:
        await check_target(url, allow=())

    # then the refusal says which address and why
    assert str(refused.value).startswith(f"{url} refused: {reason}")


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/feed.csv", "https://[2606:4700:4700::1111]/", "HTTP://8.8.8.8"]
)
async def test_check_target_passes_public_addresses(url: str) -> None:
    # given a public address literal: checking it needs no lookup and makes no connection
    # when it is checked
    # then nothing is raised
    await check_target(url, allow=())


async def test_check_target_passes_allowed_addresses_in_either_form() -> None:
    # given 127.0.0.1 allowed
    # when it, and its IPv4-mapped IPv6 form, are checked
    # then both pass
    await check_target("http://127.0.0.1:1/", allow=ALLOW)
    await check_target("http://[::ffff:127.0.0.1]:1/", allow=ALLOW)


def test_parse_allow_reads_ips_and_networks() -> None:
    # given IPs and CIDRs, v4 and v6
    # when they are parsed
    allow = parse_allow(["127.0.0.1", " 10.0.0.0/8 ", "::1", "fd00::/8"])

    # then single IPs become one-address networks
    assert [str(net) for net in allow] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]


@pytest.mark.parametrize("entry", ["", "localhost", "10.0.0.1/8", "300.0.0.1", "10.0.0.0/33"])
def test_parse_allow_rejects_bad_entries(entry: str) -> None:
    # given an entry that is not an IP or a network (host bits set, out of range, a name)
    # when it is parsed
    # then it raises ValueError
    with pytest.raises(ValueError, match=r"entry|appear|host bits|prefix"):
        parse_allow([entry])
