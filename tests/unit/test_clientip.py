"""Client addresses: forwarding headers count only from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest
from aiohttp.test_utils import make_mocked_request

from matrixrtc_auth.http.clientip import client_address

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8"))


def remote(peer: str, **headers: str) -> str:
    req = make_mocked_request("POST", "/get_token", headers=headers)
    return client_address(req.clone(remote=peer), LOOPBACK)


def test_untrusted_peer_headers_are_ignored() -> None:
    assert remote("203.0.113.9", **{"X-Forwarded-For": "1.2.3.4"}) == "203.0.113.9"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Forwarded-For": "198.51.100.7"}, "198.51.100.7"),
        ({"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"),
        ({"X-Real-IP": "198.51.100.8"}, "198.51.100.8"),
        ({"CF-Connecting-IP": "2001:db8::8"}, "2001:db8::8"),
        ({"X-Forwarded-For": "not-an-ip"}, "127.0.0.1"),
        ({}, "127.0.0.1"),
    ],
)
def test_trusted_proxy_headers(headers: dict[str, str], expected: str) -> None:
    assert remote("127.0.0.1", **headers) == expected
