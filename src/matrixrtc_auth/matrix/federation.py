"""Outgoing federation requests: discovery, the right names, pooled TLS connections.

Requests go to the destination discovery chose, carry the ``Host`` header the
specification asks for and check the certificate against the destination's
TLS name. The session behind this client is long-lived, so connections to a
homeserver stay open across requests; aiohttp keys its pool by host, port, TLS
settings and server name, so a connection verified for one name is never
reused for another.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp

from matrixrtc_auth.matrix.discovery import ServerDiscovery
from matrixrtc_auth.matrix.http import BodyTooLarge, read_capped
from matrixrtc_auth.matrix.servername import ServerName
from matrixrtc_auth.netguard import BlockedAddress, NetworkGuard
from matrixrtc_auth.ocsp_gate import StapleRefused

log = logging.getLogger(__name__)


class FederationError(Exception):
    """The homeserver could not be asked; ``cause`` says why (no URLs, no tokens)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class FederationClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        discovery: ServerDiscovery,
        guard: NetworkGuard,
    ) -> None:
        # The session's resolver must come from the same guard (see netguard.py).
        self._session = session
        self._discovery = discovery
        self._guard = guard

    async def get(
        self,
        server: ServerName,
        path: str,
        params: Mapping[str, str],
        *,
        request_timeout: float,
        max_bytes: int,
    ) -> tuple[int, bytes]:
        """GETs ``path`` from ``server``; returns status and body (at most ``max_bytes``)."""
        return await self._send(
            "GET", server, path, params, None, request_timeout=request_timeout, max_bytes=max_bytes
        )

    async def post(
        self,
        server: ServerName,
        path: str,
        body: object,
        *,
        request_timeout: float,
        max_bytes: int,
    ) -> tuple[int, bytes]:
        """POSTs ``body`` as JSON to ``path`` on ``server``, discovered and checked as GETs are."""
        return await self._send(
            "POST", server, path, {}, body, request_timeout=request_timeout, max_bytes=max_bytes
        )

    async def _send(
        self,
        method: str,
        server: ServerName,
        path: str,
        params: Mapping[str, str],
        body: object,
        *,
        request_timeout: float,
        max_bytes: int,
    ) -> tuple[int, bytes]:
        if self._guard.enabled and server.is_ip:
            raise FederationError(
                "refused by the SSRF guard: IP-literal server names are refused "
                "(LIVEKIT_IS_PUBLIC_FACING)"
            )
        destination = await self._discovery.resolve(server)
        try:
            self._guard.check_host(destination.host)
        except BlockedAddress as exc:
            raise FederationError(f"refused by the SSRF guard: {exc}") from None
        server_hostname = (
            destination.tls_name if destination.tls_name != destination.host else None
        )
        client_timeout = aiohttp.ClientTimeout(total=request_timeout)
        for attempt in (1, 2):
            try:
                async with self._session.request(
                    method,
                    destination.url(path),
                    params=params,
                    json=body,
                    headers={"Host": destination.host_header},
                    server_hostname=server_hostname,
                    allow_redirects=False,
                    timeout=client_timeout,
                ) as resp:
                    return resp.status, await read_capped(resp, max_bytes)
            except aiohttp.ServerDisconnectedError:
                # A kept-alive connection the homeserver closed while idle: the
                # request is idempotent (a V2 POST carries a one-time nonce, so a
                # homeserver that did see it refuses the replay: that fails closed),
                # so one more try on a fresh connection.
                if attempt == 2:
                    raise FederationError("homeserver closed the connection") from None
            except BodyTooLarge as exc:
                raise FederationError(f"response too large ({exc})") from None
            except TimeoutError:
                raise FederationError(f"no answer within {request_timeout:g}s") from None
            except aiohttp.ClientConnectorCertificateError as exc:
                reason = getattr(exc.certificate_error, "verify_message", None) or "invalid"
                raise FederationError(f"TLS certificate rejected: {reason}") from None
            except aiohttp.ClientSSLError as exc:
                raise FederationError(f"TLS failure: {type(exc).__name__}") from None
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress):
                    raise FederationError(f"refused by the SSRF guard: {exc.os_error}") from None
                reason = exc.os_error.strerror or type(exc.os_error).__name__
                raise FederationError(
                    f"cannot connect to {destination.host}:{destination.port}: {reason}"
                ) from None
            except StapleRefused as exc:
                raise FederationError(f"refused by the OCSP check: {exc.cause}") from None
            except aiohttp.ClientError as exc:
                raise FederationError(f"request failed: {type(exc).__name__}") from None
            except ValueError as exc:
                # A name the IDNA codec refuses while resolving, or a malformed URL.
                raise FederationError(f"unusable destination: {type(exc).__name__}") from None
        raise AssertionError("unreachable")
