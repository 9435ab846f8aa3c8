"""Fetching ``/.well-known/matrix/server`` and working out how long to trust it.

The fetch never raises: any failure (unreachable, non-200, not JSON, no
``m.server``, oversize) is an answer with no delegation, cached for an hour,
after which discovery carries on with SRV and port 8448.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time

import aiohttp
from yarl import URL

from matrixrtc_auth.logs import fields
from matrixrtc_auth.matrix.discovery import (
    WELL_KNOWN_DEFAULT_TTL,
    WELL_KNOWN_FAILURE_TTL,
    WELL_KNOWN_MAX_TTL,
    WellKnownAnswer,
)
from matrixrtc_auth.matrix.http import (
    REQUEST_FAILURES,
    describe_failure,
    json_object,
    read_capped,
)
from matrixrtc_auth.netguard import BlockedAddress, NetworkGuard

log = logging.getLogger(__name__)

WELL_KNOWN_TIMEOUT = 3.0
WELL_KNOWN_MAX_BYTES = 16 * 1024
MAX_REDIRECTS = 10
WELL_KNOWN_PATH = "/.well-known/matrix/server"
# Shorter lifetimes would let a misconfigured server make every join refetch.
WELL_KNOWN_MIN_TTL = 300.0

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class _Unusable(Exception):
    """The well-known could not be used; the message says why."""


class HttpWellKnownFetcher:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        guard: NetworkGuard,
        *,
        timeout: float = WELL_KNOWN_TIMEOUT,
        port: int = 443,
    ) -> None:
        # The session's resolver must come from the same guard (see netguard.py).
        self._session = session
        self._guard = guard
        self._timeout = timeout
        # Always 443 in service; tests serve the well-known on a free port.
        self._port = port

    async def fetch(self, hostname: str) -> WellKnownAnswer:
        authority = hostname if self._port == 443 else f"{hostname}:{self._port}"
        try:
            async with asyncio.timeout(self._timeout):
                body, ttl = await self._get(URL(f"https://{authority}{WELL_KNOWN_PATH}"))
        except _Unusable as exc:
            return self._failed(hostname, str(exc))
        except REQUEST_FAILURES as exc:
            return self._failed(hostname, describe_failure(exc))
        document = json_object(body)
        if document is None:
            return self._failed(hostname, "not a JSON object")
        server = document.get("m.server")
        if not isinstance(server, str) or not server:
            return self._failed(hostname, "no m.server")
        log.debug("well-known delegation", extra=fields(server_name=hostname, cause=server))
        return WellKnownAnswer(server, ttl)

    async def _get(self, url: URL) -> tuple[bytes, float]:
        """Follows up to ``MAX_REDIRECTS`` redirects by hand, so each hop is checked."""
        for _ in range(MAX_REDIRECTS + 1):
            if url.scheme != "https" or not url.host:
                raise _Unusable("redirected away from https")
            try:
                self._guard.check_host(url.host)
            except BlockedAddress as exc:
                raise _Unusable(str(exc)) from None
            async with self._session.get(url, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise _Unusable(f"status {resp.status} without Location")
                    url = url.join(URL(location))
                    continue
                if resp.status != 200:
                    raise _Unusable(f"status {resp.status}")
                body = await read_capped(resp, WELL_KNOWN_MAX_BYTES)
                return body, cache_ttl(
                    resp.headers.get("Cache-Control"), resp.headers.get("Expires")
                )
        raise _Unusable("too many redirects")

    @staticmethod
    def _failed(hostname: str, cause: str) -> WellKnownAnswer:
        log.debug("no usable well-known", extra=fields(server_name=hostname, cause=cause))
        return WellKnownAnswer(None, WELL_KNOWN_FAILURE_TTL)


def cache_ttl(cache_control: str | None, expires: str | None, now: float | None = None) -> float:
    """Seconds to cache a well-known answer, from its response headers."""
    ttl: float | None = None
    if cache_control:
        lowered = cache_control.lower()
        if "no-store" in lowered or "no-cache" in lowered:
            ttl = 0.0
        elif match := _MAX_AGE.search(cache_control):
            ttl = float(match.group(1))
    if ttl is None and expires:
        try:
            when = email.utils.parsedate_to_datetime(expires).timestamp()
        except (TypeError, ValueError):
            when = None
        if when is not None:
            ttl = when - (time.time() if now is None else now)
    if ttl is None:
        ttl = WELL_KNOWN_DEFAULT_TTL
    return min(max(ttl, WELL_KNOWN_MIN_TTL), WELL_KNOWN_MAX_TTL)
