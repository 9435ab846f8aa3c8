"""Finding a homeserver's client-server API, for the delayed-event calls (PROTOCOL.md 8.3).

``LIVEKIT_CS_API_URL_OVERRIDES`` wins; otherwise ``m.homeserver.base_url``
from ``https://<hostname>/.well-known/matrix/client``, cached for hours. The
URL a client puts in its request is never used: it could point anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from matrixrtc_auth.cache import SharedTtlCache
from matrixrtc_auth.logs import fields
from matrixrtc_auth.matrix.http import (
    REQUEST_FAILURES,
    describe_failure,
    json_object,
    read_capped,
)
from matrixrtc_auth.matrix.servername import parse_server_name
from matrixrtc_auth.netguard import NetworkGuard

log = logging.getLogger(__name__)

CLIENT_WELL_KNOWN_PATH = "/.well-known/matrix/client"
LOOKUP_TIMEOUT = 3.0
MAX_BYTES = 16 * 1024
FOUND_TTL = 4 * 3600.0
MISSING_TTL = 300.0


class CsApiResolver:
    def __init__(
        self,
        overrides: Mapping[str, str],
        session: aiohttp.ClientSession,
        guard: NetworkGuard,
        *,
        port: int = 443,
    ) -> None:
        self._overrides = overrides
        # The session's resolver must come from the same guard (see netguard.py).
        self._session = session
        self._guard = guard
        self._port = port  # always 443 in service
        self._cache: SharedTtlCache[str, str | None] = SharedTtlCache()

    async def base_url(self, server_name: str) -> str | None:
        """The client-server API base URL (no trailing slash), or None if unknown."""
        key = server_name.lower()
        override = self._overrides.get(key)
        if override is not None:
            return override
        return await self._cache.get(key, lambda: self._discover_and_keep(server_name))

    async def _discover_and_keep(self, server_name: str) -> tuple[str | None, float]:
        url = await self._discover(server_name)
        return url, FOUND_TTL if url is not None else MISSING_TTL

    async def _discover(self, server_name: str) -> str | None:
        host = parse_server_name(server_name).url_host
        authority = host if self._port == 443 else f"{host}:{self._port}"
        try:
            self._guard.check_host(host)
            async with self._session.get(
                f"https://{authority}{CLIENT_WELL_KNOWN_PATH}",
                timeout=aiohttp.ClientTimeout(total=LOOKUP_TIMEOUT),
                allow_redirects=False,
            ) as resp:
                if resp.status != 200:
                    return self._missing(server_name, f"well-known answered {resp.status}")
                body = await read_capped(resp, MAX_BYTES)
        except REQUEST_FAILURES as exc:
            return self._missing(server_name, describe_failure(exc))
        document = json_object(body)
        homeserver = document.get("m.homeserver") if document else None
        url = homeserver.get("base_url") if isinstance(homeserver, dict) else None
        if not isinstance(url, str):
            return self._missing(server_name, "no m.homeserver.base_url")
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            valid = False
        if not valid:
            return self._missing(server_name, "base_url is not an http(s) URL with a host")
        return url.rstrip("/")

    @staticmethod
    def _missing(server_name: str, cause: str) -> None:
        log.warning(
            "client-server API not found", extra=fields(server_name=server_name, cause=cause)
        )
        return None
