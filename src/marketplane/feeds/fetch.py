"""Fetch a supplier's feed URL to a file, refusing anything that could reach inside our network.

A feed URL is customer input, so fetching it is a server-side request forgery risk. Every URL we
connect to, the first and each redirect hop, passes `check_target` first: http or https only,
and every address its host resolves to must be public unicast (not loopback, private,
link-local, multicast, reserved, unspecified, site-local, nor an IPv4-mapped, 6to4, NAT64 or
Teredo form of one of those), unless it falls in the operator's allow list (the guard is
`marketplane.outbound`, shared with webhooks; its docstring tells the remaining DNS-rebinding
window). Redirects are followed by hand so that a hop to a refused address is stopped before
any connection to it.

The body streams to a temporary file beside `dest`, hashed (sha256) on the way and capped at
`max_bytes`; only a complete body is renamed to `dest`, and the temporary file is removed on any
failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from marketplane import outbound
from marketplane.kernel.errors import BadRequest
from marketplane.outbound import Network, parse_allow

__all__ = ["FetchFailed", "FetchRefused", "Fetched", "check_target", "fetch_to_file", "parse_allow"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CONNECT_TIMEOUT = 10.0


@dataclass
class FetchRefused(BadRequest):
    """A scheme, address or redirect we will not fetch."""

    code: str = "fetch_refused"


@dataclass
class FetchFailed(BadRequest):
    """The fetch was allowed but did not succeed: timeout, connection error, non-2xx answer,
    body too large, too many redirects."""

    code: str = "fetch_failed"


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    path: Path
    bytes: int
    sha256: str
    content_type: str | None
    status: int


async def check_target(url: str, *, allow: Sequence[Network]) -> None:
    """Raise FetchRefused unless `url` is http(s) and every address of its host may be fetched."""
    await _vet(url, allow, label=url)


async def _vet(url: str, allow: Sequence[Network], *, label: str) -> httpx.URL:
    return await outbound.check_target(
        url, allow=allow, refused=FetchRefused, failed=FetchFailed, label=label
    )


async def fetch_to_file(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float = 30.0,  # noqa: ASYNC109 - a per-fetch budget, not a caller's deadline
    allow: Sequence[Network] = (),
    max_redirects: int = 5,
) -> Fetched:
    """Fetch `url` into `dest`, following at most `max_redirects` redirects, each one checked.

    `timeout` bounds each read and the whole fetch (resolution, redirects and body); connecting
    is bounded by the smaller of it and `CONNECT_TIMEOUT`.
    """
    limits = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))
    try:
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=limits) as client,
        ):
            return await _follow(client, url, dest, allow, max_bytes, max_redirects)
    except TimeoutError as exc:
        raise FetchFailed(f"{url} timed out after {timeout:g}s", extra={"url": url}) from exc
    except httpx.TimeoutException as exc:
        raise FetchFailed(f"{url} timed out: {_describe(exc)}", extra={"url": url}) from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(
            f"{url} could not be fetched: {_describe(exc)}", extra={"url": url}
        ) from exc


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    allow: Sequence[Network],
    max_bytes: int,
    max_redirects: int,
) -> Fetched:
    target = await _vet(url, allow, label=url)
    redirects = 0
    while True:
        async with client.stream("GET", target) as response:
            if response.status_code not in REDIRECTS:
                return await _save(response, dest, max_bytes)
            location = response.headers.get("location")
            if not location:
                raise _failed(response, f"answered {_status(response)} without a Location")
            try:
                hop = str(response.url.join(location))
            except httpx.InvalidURL as exc:
                raise _failed(response, f"redirected to an invalid URL {location!r}") from exc
        if redirects == max_redirects:
            raise FetchFailed(
                f"{url} redirected more than {max_redirects} times", extra={"url": url, "next": hop}
            )
        redirects += 1
        target = await _vet(hop, allow, label=f"redirect to {hop}")


async def _save(response: httpx.Response, dest: Path, max_bytes: int) -> Fetched:
    if not response.is_success:
        raise _failed(response, f"answered {_status(response)}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _failed(response, f"is {declared} bytes, over the limit of {max_bytes} bytes")
    # Creating, committing and discarding are quick and stay on the loop, so a cancellation can
    # never leave a file behind; only the writes go to a worker thread.
    sink = _Sink(dest)
    try:
        async for chunk in response.aiter_bytes():
            if sink.size + len(chunk) > max_bytes:
                raise _failed(response, f"is over the limit of {max_bytes} bytes")
            await asyncio.to_thread(sink.write, chunk)
        sink.commit()
    except BaseException:
        sink.discard()
        raise
    return Fetched(
        url=str(response.url),
        path=dest,
        bytes=sink.size,
        sha256=sink.digest.hexdigest(),
        content_type=response.headers.get("content-type"),
        status=response.status_code,
    )


class _Sink:
    """A temporary file beside `dest` that counts and hashes what is written to it, renamed to
    `dest` on commit."""

    def __init__(self, dest: Path) -> None:
        descriptor, name = tempfile.mkstemp(
            prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
        )
        self.dest = dest
        self.partial = Path(name)
        self.file = os.fdopen(descriptor, "wb")
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def commit(self) -> None:
        self.file.close()
        self.partial.replace(self.dest)

    def discard(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


def _failed(response: httpx.Response, problem: str) -> FetchFailed:
    url = str(response.url)
    return FetchFailed(f"{url} {problem}", extra={"url": url, "status": response.status_code})


def _status(response: httpx.Response) -> str:
    # The standard phrase, not the server's: what we tell a supplier is ours to word.
    return f"{response.status_code} {httpx.codes.get_reason_phrase(response.status_code)}".strip()


def _describe(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__
