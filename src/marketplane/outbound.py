"""Outbound requests to addresses customers give us (feed URLs, webhook endpoints): the guard.

Requests to customer-given URLs are a server-side request forgery risk. Every URL we connect to
passes `check_target` first: http or https only, and every address its host resolves to must be
public unicast (not loopback, private, link-local, multicast, reserved, unspecified, site-local,
nor an IPv4-mapped, 6to4, NAT64 or Teredo form of one of those), unless it falls in the
operator's allow list (MARKETPLANE_ALLOW_PRIVATE_TARGETS).

Remaining DNS-rebinding window: `check_target` resolves the host, then httpx resolves it again
when it connects. A host whose DNS answers a public address to us and a private one a moment
later to httpx (short TTL, alternating answers) passes the check and is then reached at the
private address. Closing it means connecting to the very addresses we vetted: an httpcore
network backend whose `connect_tcp` resolves, checks and connects to the checked IP itself (TLS
still uses the original host name for SNI and certificate checks), or an egress proxy that
applies the same rules at connect time. Until then the window is one resolver round trip.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

import httpx

from marketplane.kernel.errors import BadRequest

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

SCHEMES = frozenset({"http", "https"})
NAT64 = IPv6Network("64:ff9b::/96")


def parse_allow(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse an allow list of IPs and CIDRs ("127.0.0.1", "10.0.0.0/8"); raises ValueError."""
    return tuple(ip_network(value.strip()) for value in values)


async def check_target(
    url: str,
    *,
    allow: Sequence[Network],
    refused: type[BadRequest],
    failed: type[BadRequest],
    label: str | None = None,
    resolve: bool = True,
) -> httpx.URL:
    """`url`, parsed, if it is http(s) and every address of its host may be reached; else
    `refused` (the URL or an address is not allowed) or `failed` (the host does not resolve).
    `resolve=False` checks what can be told without DNS (the scheme, an address written in the
    URL, `localhost`): for URLs stored now and checked fully when used."""
    return await _vet(
        url, allow, label=label or url, refused=refused, failed=failed, resolve=resolve
    )


async def _vet(
    url: str,
    allow: Sequence[Network],
    *,
    label: str,
    refused: type[BadRequest],
    failed: type[BadRequest],
    resolve: bool = True,
) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise refused(f"{label} refused: not a valid URL ({exc})", extra={"url": url}) from exc
    if target.scheme not in SCHEMES:
        reason = f"only http and https URLs can be fetched, not {target.scheme or 'no scheme'}"
        raise refused(f"{label} refused: {reason}", extra={"url": url})
    if not target.host:
        raise refused(f"{label} refused: the URL has no host", extra={"url": url})
    host = target.host
    literal = _literal(host)
    port = target.port or (443 if target.scheme == "https" else 80)
    if literal is None and not resolve:
        if not host.rstrip(".").lower().endswith("localhost"):
            return target
        literal = IPv4Address("127.0.0.1")  # loopback wherever it is looked up
    for address in [literal] if literal is not None else await _resolve(host, port, failed):
        if _allowed(address, allow):
            continue
        unfit = _unfit(address)
        if unfit is not None:
            said = f"{host} is" if literal is not None else f"{host} resolves to {address},"
            raise refused(
                f"{label} refused: {said} {unfit}",
                extra={"url": url, "host": host, "address": str(address)},
            )
    return target


def _literal(host: str) -> Address | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str, port: int, failed: type[BadRequest]) -> list[Address]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise failed(f"could not resolve {host}: {exc}", extra={"host": host}) from exc
    if not infos:
        raise failed(f"could not resolve {host}: no addresses", extra={"host": host})
    return [ip_address(info[4][0]) for info in infos]


def _allowed(address: Address, allow: Sequence[Network]) -> bool:
    same = [address]
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        same.append(address.ipv4_mapped)
    return any(one.version == net.version and one in net for one in same for net in allow)


def _unfit(address: Address) -> str | None:
    """Why `address` must not be fetched from, or None for a public unicast address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        form, ipv4 = embedded
        unfit = _unfit(ipv4)
        if unfit is not None:
            return f"{form} form of {ipv4}, {unfit}"
        if form == "an IPv4-mapped":
            return None
    checks = [
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (isinstance(address, IPv6Address) and address.is_site_local, "a site-local address"),
        (not address.is_global, "not a public address"),
    ]
    return next((unfit for hit, unfit in checks if hit), None)


def _embedded_ipv4(address: Address) -> tuple[str, IPv4Address] | None:
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "a 6to4", address.sixtofour
    if address.teredo is not None:
        return "a Teredo", address.teredo[1]
    if address in NAT64:
        return "a NAT64", IPv4Address(int(address) & 0xFFFFFFFF)
    return None
