"""Matrix server names: the grammar check that runs before any lookup.

A server name is ``hostname | IPv4 | "[" IPv6 "]"`` with an optional
``:port``. Anything else is refused before discovery begins, which also keeps
a hostile ``matrix_server_name`` from smuggling a path, a user-info part or a
second host into the URLs the service builds.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_SERVER_NAME_LENGTH = 255
MAX_LABEL_LENGTH = 63

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9.-]{1,255}$")
_IPV4_SHAPE_RE = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")


class InvalidServerName(ValueError):
    """The string is not a Matrix server name."""


@dataclass(frozen=True)
class ServerName:
    """A parsed server name. ``host`` holds an IPv6 literal without brackets."""

    original: str
    host: str
    port: int | None
    is_ip: bool

    @property
    def url_host(self) -> str:
        """The host as it goes into a URL (IPv6 in brackets)."""
        return f"[{self.host}]" if ":" in self.host else self.host


def parse_server_name(value: str) -> ServerName:
    if not value or len(value) > MAX_SERVER_NAME_LENGTH:
        raise InvalidServerName("empty or too long")

    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise InvalidServerName("unclosed IPv6 literal")
        host, rest = value[1:end], value[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidServerName("bad IPv6 literal") from None
        return ServerName(value, host, _parse_port(rest), is_ip=True)

    host, sep, port_text = value.partition(":")
    port = _parse_port(sep + port_text)
    if _IPV4_SHAPE_RE.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidServerName("bad IPv4 literal") from None
        return ServerName(value, host, port, is_ip=True)
    if not _HOSTNAME_RE.fullmatch(host):
        raise InvalidServerName("bad hostname")
    # DNS itself refuses empty labels and labels over 63 characters; refusing them
    # here keeps such names from ever reaching a resolver.
    if any(not 0 < len(label) <= MAX_LABEL_LENGTH for label in host.split(".")):
        raise InvalidServerName("bad hostname label")
    return ServerName(value, host, port, is_ip=False)


def _parse_port(rest: str) -> int | None:
    if not rest:
        return None
    if not rest.startswith(":") or not _PORT_RE.fullmatch(rest[1:]):
        raise InvalidServerName("bad port")
    port = int(rest[1:])
    if not 0 < port < 65536:
        raise InvalidServerName("port out of range")
    return port
