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
homeserver's web server per cache period. The final destination is cached as
long as its shortest-lived input.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

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
        self._clock = clock
        self._cache: dict[str, tuple[float, Destination]] = {}
        self._inflight: dict[str, asyncio.Task[tuple[Destination, float]]] = {}

    async def resolve(self, server: ServerName) -> Destination:
        if server.is_ip:
            port = server.port or DEFAULT_FEDERATION_PORT
            return Destination(server.host, port, server.original, server.host)
        if server.port is not None:
            return Destination(server.host, server.port, server.original, server.host)

        key = server.host.lower()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            DISCOVERY_CACHE.labels("hit").inc()
            return cached[1]
        DISCOVERY_CACHE.labels("miss").inc()
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._discover(server.host))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Shielded: one cancelled request must not cancel the lookup others share.
        destination, ttl = await asyncio.shield(task)
        self._cache[key] = (self._clock() + ttl, destination)
        return destination

    async def _discover(self, hostname: str) -> tuple[Destination, float]:
        answer = await self._well_known.fetch(hostname)
        if answer.server is not None:
            try:
                delegated = parse_server_name(answer.server)
            except InvalidServerName:
                log.warning(
                    "well-known names an invalid server; ignoring it",
                    extra=fields(server_name=hostname, cause=answer.server),
                )
            else:
                destination, ttl = await self._without_well_known(delegated)
                return destination, min(ttl, answer.ttl)
        destination, ttl = await self._without_well_known(
            ServerName(hostname, hostname, None, is_ip=False)
        )
        return destination, min(ttl, answer.ttl)

    async def _without_well_known(self, server: ServerName) -> tuple[Destination, float]:
        """Steps 1, 2, 4 and 5 of the resolution, for a name that gets no well-known."""
        if server.is_ip or server.port is not None:
            port = server.port or DEFAULT_FEDERATION_PORT
            host_header = server.original
            return Destination(server.host, port, host_header, server.host), WELL_KNOWN_MAX_TTL
        for prefix in ("_matrix-fed._tcp.", "_matrix._tcp."):
            answer = await self._srv.lookup(prefix + server.host)
            record = pick_srv(answer.records)
            if record is not None:
                ttl = min(max(answer.ttl, SRV_MIN_TTL), SRV_MAX_TTL)
                target = record.target.rstrip(".")
                return Destination(target, record.port, server.host, server.host), ttl
        return (
            Destination(server.host, DEFAULT_FEDERATION_PORT, server.host, server.host),
            SRV_NONE_TTL,
        )


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
