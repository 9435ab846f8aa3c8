"""Matrix server discovery: from a server name to where and how to connect.

Implements "Resolving server names" of the server-server API (PROTOCOL.md
section 7). The result is a ``Destination``: the host and port to connect to,
the ``Host`` header to send and the name the TLS certificate must be valid for.

    IP literal                      -> ip:(port or 8448)       Host/cert: the server name
    hostname:port                   -> hostname:port           Host/cert: hostname
    .well-known m.server = ...      -> the delegated name, again by these rules (no
                                       further well-known), SRV and 8448 as below;
                                       Host/cert: the delegated hostname
    SRV _matrix-fed._tcp / _matrix._tcp -> target:port         Host/cert: hostname
    otherwise                       -> hostname:8448           Host/cert: hostname

Well-known answers are cached (``Cache-Control``/``Expires``, default 24 h, at
most 48 h; failures 1 h), and concurrent lookups of one server share a single
fetch, so a call that many people join at once costs one request to the
homeserver's web server per cache period. SRV answers are cached for their
DNS TTL (1 minute to 1 hour; "none" for 5 minutes).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from matrixrtc_auth.cache import SharedTtlCache
from matrixrtc_auth.logs import fields
from matrixrtc_auth.matrix.servername import InvalidServerName, ServerName, parse_server_name
from matrixrtc_auth.metrics import DISCOVERY_CACHE

log = logging.getLogger(__name__)

DEFAULT_FEDERATION_PORT = 8448
WELL_KNOWN_DEFAULT_TTL = 24 * 3600.0
WELL_KNOWN_MAX_TTL = 48 * 3600.0
WELL_KNOWN_FAILURE_TTL = 3600.0
SRV_MIN_TTL = 60.0
SRV_MAX_TTL = 3600.0
SRV_NONE_TTL = 300.0


@dataclass(frozen=True)
class Destination:
    """Where a federation request goes, and the names it must carry."""

    host: str  # hostname or IP literal (IPv6 without brackets) to connect to
    port: int
    host_header: str
    tls_name: str  # the certificate must be valid for this name

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{path}"


class SrvRecord(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str


class SrvAnswer(NamedTuple):
    records: list[SrvRecord]
    ttl: float


class WellKnownAnswer(NamedTuple):
    # The delegated server name, or None when there is no usable well-known.
    server: str | None
    ttl: float


class SrvResolver(Protocol):
    async def lookup(self, name: str) -> SrvAnswer:
        """SRV records for ``name``; an empty list when there are none."""


class WellKnownFetcher(Protocol):
    async def fetch(self, hostname: str) -> WellKnownAnswer:
        """``/.well-known/matrix/server`` of ``hostname``; never raises."""


class ServerDiscovery:
    """Resolves server names to destinations, with caching and shared lookups."""

    def __init__(
        self,
        well_known: WellKnownFetcher,
        srv: SrvResolver,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._well_known = well_known
        self._srv = srv
        # Each answer is kept as long as its own rules say: a well-known for a day,
        # an SRV answer for its DNS TTL.
        self._well_knowns: SharedTtlCache[str, str | None] = SharedTtlCache(clock=clock)
        self._srv_records: SharedTtlCache[str, SrvRecord | None] = SharedTtlCache(clock=clock)

    async def resolve(self, server: ServerName) -> Destination:
        if server.is_ip or server.port is not None:
            return _direct(server)
        hostname = server.host.lower()
        hit, _ = self._well_knowns.cached(hostname)
        DISCOVERY_CACHE.labels("hit" if hit else "miss").inc()
        delegated = await self._well_knowns.get(
            hostname, lambda: self._fetch_well_known(server.host)
        )
        if delegated is None:
            return await self._without_well_known(server)
        return await self._without_well_known(parse_server_name(delegated))

    async def _fetch_well_known(self, hostname: str) -> tuple[str | None, float]:
        answer = await self._well_known.fetch(hostname)
        if answer.server is None:
            return None, answer.ttl
        try:
            parse_server_name(answer.server)
        except InvalidServerName:
            log.warning(
                "well-known names an invalid server; ignoring it",
                extra=fields(server_name=hostname, cause=answer.server),
            )
            return None, WELL_KNOWN_FAILURE_TTL
        return answer.server, answer.ttl

    async def _without_well_known(self, server: ServerName) -> Destination:
        """The resolution steps after the well-known: literal, explicit port, SRV, 8448."""
        if server.is_ip or server.port is not None:
            return _direct(server)
        record = await self._srv_records.get(
            server.host.lower(), lambda: self._lookup_srv(server.host)
        )
        if record is None:
            return Destination(server.host, DEFAULT_FEDERATION_PORT, server.host, server.host)
        return Destination(record.target.rstrip("."), record.port, server.host, server.host)

    async def _lookup_srv(self, hostname: str) -> tuple[SrvRecord | None, float]:
        for prefix in ("_matrix-fed._tcp.", "_matrix._tcp."):
            answer = await self._srv.lookup(prefix + hostname)
            record = pick_srv(answer.records)
            if record is not None:
                return record, min(max(answer.ttl, SRV_MIN_TTL), SRV_MAX_TTL)
        return None, SRV_NONE_TTL


def _direct(server: ServerName) -> Destination:
    """IP literals and explicit ports need no lookup; Host is the name as given."""
    port = server.port or DEFAULT_FEDERATION_PORT
    return Destination(server.host, port, server.original, server.host)


def pick_srv(records: list[SrvRecord]) -> SrvRecord | None:
    """RFC 2782 choice: lowest priority, then at random weighted by weight."""
    usable = [r for r in records if r.target not in (".", "")]
    if not usable:
        return None
    best = min(r.priority for r in usable)
    candidates = [r for r in usable if r.priority == best]
    total = sum(r.weight for r in candidates)
    if total == 0:
        return random.choice(candidates)
    point = random.uniform(0, total)
    for record in candidates:
        point -= record.weight
        if point <= 0:
            return record
    return candidates[-1]
