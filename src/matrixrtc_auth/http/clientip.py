"""The client's address for logs: the socket peer, or what a trusted proxy says.

Forwarding headers are believed only when the peer itself is a trusted proxy
(loopback unless ``LIVEKIT_TRUSTED_PROXIES`` says otherwise); anyone else could
write whatever they like into them. From ``X-Forwarded-For`` the rightmost
address that is not itself a trusted proxy is taken, since earlier entries
were written by the client.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from matrixrtc_auth.config import IPNetwork

_SINGLE_ADDRESS_HEADERS = ("X-Real-IP", "CF-Connecting-IP")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: tuple[IPNetwork, ...]
) -> bool:
    return any(address in network for network in proxies)


def client_address(request: web.BaseRequest, proxies: tuple[IPNetwork, ...]) -> str:
    peer = request.remote or "-"
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, proxies):
        return peer
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        for item in reversed(forwarded.split(",")):
            address = _address(item)
            if address is None:
                break
            if not _trusted(address, proxies):
                return str(address)
    for header in _SINGLE_ADDRESS_HEADERS:
        address = _address(request.headers.get(header, ""))
        if address is not None:
            return str(address)
    return peer
