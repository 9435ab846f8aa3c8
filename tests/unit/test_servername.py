"""Server-name grammar: what may reach discovery and what is refused up front."""

from __future__ import annotations

import pytest

from matrixrtc_auth.matrix.servername import InvalidServerName, parse_server_name


@pytest.mark.parametrize(
    ("name", "host", "port", "is_ip"),
    [
        ("example.com", "example.com", None, False),
        ("example.com:8448", "example.com", 8448, False),
        ("localhost:1", "localhost", 1, False),
        ("1.2.3.4", "1.2.3.4", None, True),
        ("1.2.3.4:65535", "1.2.3.4", 65535, True),
        ("[::1]", "::1", None, True),
        ("[2001:db8::1]:8448", "2001:db8::1", 8448, True),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", None, False),
        ("a-b.c-d.e", "a-b.c-d.e", None, False),
    ],
)
def test_valid_server_names(name: str, host: str, port: int | None, is_ip: bool) -> None:
    server = parse_server_name(name)
    assert (server.host, server.port, server.is_ip, server.original) == (host, port, is_ip, name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "example.com/path",
        "example.com:",
        "example.com:0",
        "example.com:65536",
        "example.com:80a",
        "user@example.com",
        "example.com?x=1",
        "exa mple.com",
        "bücher.example",
        "[::1",
        "[not-ip]:80",
        "::1",
        "999.1.1.1",
        "example.com:8448:1",
        "a" * 256,
        "example.com#frag",
        "example.com\n",
        "a..b",
        ".example.com",
        "example.com.",
        "a" * 64 + ".com",
    ],
)
def test_invalid_server_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidServerName):
        parse_server_name(name)


def test_ipv6_url_host_has_brackets() -> None:
    assert parse_server_name("[::1]:8448").url_host == "[::1]"
    assert parse_server_name("example.com").url_host == "example.com"
