"""The SSRF guard: outgoing calls to homeservers reach public addresses only.

With ``LIVEKIT_IS_PUBLIC_FACING=true`` anyone on the internet picks the
homeserver the service calls, so a hostile client could aim it at the
operator's own network. The guard works in the connection layer: the resolver
the HTTP client connects with checks every address it returns, so the address
checked is the address connected to (a DNS server that answers a public
address once and a private one the next time gains nothing: there is no
second lookup). IP literals never reach a resolver, so callers check them with
``check_host`` before a request (server names, delegations, redirect hops).

Refused: loopback, RFC 1918, link-local, unique-local, unspecified,
multicast, reserved, CGNAT (100.64/10), and these same ranges wrapped in
IPv4-mapped, 6to4 or NAT64 IPv6 addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(OSError):
    """A connection target the guard refuses."""


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded: IPAddress | None = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    if address in _CGNAT or address.is_multicast or address.is_reserved:
        return False
    return address.is_global


def parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class NetworkGuard:
    """Decides which connection targets are allowed; off, it allows everything."""

    def __init__(self, enabled: bool, *, allow: Callable[[IPAddress], bool] = is_public) -> None:
        self.enabled = enabled
        self._allow = allow

    def check_address(self, host: str, address: IPAddress) -> None:
        if self.enabled and not self._allow(address):
            raise BlockedAddress(f"{host} leads to non-public address {address}")

    def check_host(self, host: str) -> None:
        """Refuses an IP-literal ``host`` that is not public (names go to the resolver)."""
        address = parse_ip(host)
        if address is not None:
            self.check_address(host, address)

    def resolver(self, inner: AbstractResolver | None = None) -> AbstractResolver:
        """A resolver for the HTTP client; with the guard off, the plain default."""
        resolver = inner or DefaultResolver()
        return GuardedResolver(self, resolver) if self.enabled else resolver


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and refuses the whole answer if any address is blocked."""

    def __init__(self, guard: NetworkGuard, inner: AbstractResolver) -> None:
        self._guard = guard
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = parse_ip(result["host"])
            if address is None:
                raise BlockedAddress(f"{host} resolved to something that is not an address")
            self._guard.check_address(host, address)
        return results

    async def close(self) -> None:
        await self._inner.close()
