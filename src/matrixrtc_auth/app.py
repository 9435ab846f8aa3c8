"""Assembles the aiohttp application and serves it until SIGTERM or SIGINT.

``build_app`` wires routes, middleware and, in a cleanup context, the
long-lived client sessions: one for federation requests, one for plain
HTTPS lookups (well-known), one for the SFU. Sessions live as long as the
application so that connections stay pooled across requests.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from matrixrtc_auth import __version__
from matrixrtc_auth.access import AccessPolicy
from matrixrtc_auth.config import Config
from matrixrtc_auth.http import handlers
from matrixrtc_auth.http.middleware import add_cors_headers, matrix_errors
from matrixrtc_auth.issuer import TokenIssuer
from matrixrtc_auth.matrix.discovery import ServerDiscovery
from matrixrtc_auth.matrix.federation import FederationClient
from matrixrtc_auth.matrix.openid import OpenIDVerifier
from matrixrtc_auth.matrix.srv import DnsSrvResolver
from matrixrtc_auth.matrix.wellknown import HttpWellKnownFetcher
from matrixrtc_auth.sfu.rooms import SFU_CALL_TIMEOUT, SfuRooms
from matrixrtc_auth.sfu.tokens import TokenMinter
from matrixrtc_auth.tls import client_ssl_context

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
MAX_BODY_BYTES = 3 * 1024
KEEPALIVE_TIMEOUT = 5.0
SHUTDOWN_TIMEOUT = 10.0
USER_AGENT = f"matrixrtc-auth/{__version__}"

# (path, handler) for each token endpoint, aliases included.
_TOKEN_ROUTES = (
    ("/sfu/get", handlers.handle_sfu_get),
    ("/livekit/jwt/sfu/get", handlers.handle_sfu_get),
    ("/get_token", handlers.handle_get_token),
)
_HEALTH_ROUTES = ("/healthz", "/livekit/healthz")


def build_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[matrix_errors])
    app[CONFIG] = config
    for path, handler in _TOKEN_ROUTES:
        app.router.add_post(path, handler)
        app.router.add_route("OPTIONS", path, handlers.handle_preflight)
    for path in _HEALTH_ROUTES:
        app.router.add_get(path, handlers.handle_healthz)  # HEAD comes with GET
    app.on_response_prepare.append(add_cors_headers)
    app.cleanup_ctx.append(_clients)
    return app


def _session(
    config: Config, *, limit_per_host: int, timeout: float | None = None, keepalive: float = 60.0
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        ssl=client_ssl_context(config),
        limit=256,
        limit_per_host=limit_per_host,
        keepalive_timeout=keepalive,
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def _clients(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    federation_session = _session(config, limit_per_host=16)
    web_session = _session(config, limit_per_host=4)
    sfu_session = _session(config, limit_per_host=32, timeout=SFU_CALL_TIMEOUT)
    try:
        discovery = ServerDiscovery(HttpWellKnownFetcher(web_session), DnsSrvResolver())
        app[handlers.ISSUER] = TokenIssuer(
            livekit_url=config.livekit_url,
            policy=AccessPolicy(config),
            verifier=OpenIDVerifier(FederationClient(federation_session, discovery)),
            rooms=SfuRooms(
                sfu_session, config.livekit_url, config.livekit_key, config.livekit_secret
            ),
            minter=TokenMinter(config.livekit_key, config.livekit_secret),
        )
        yield
    finally:
        for session in (federation_session, web_session, sfu_session):
            await session.close()


async def serve(config: Config) -> int:
    """Serves until SIGTERM/SIGINT; returns the process exit status."""
    runner = web.AppRunner(
        build_app(config),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    site = web.TCPSite(runner, config.bind_host, config.bind_port)
    try:
        await site.start()
    except OSError as exc:
        log.error(
            "cannot listen on %s:%s: %s",
            config.bind_host or "*",
            config.bind_port,
            exc.strerror or exc,
        )
        await runner.cleanup()
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("listening on %s:%s", config.bind_host or "*", config.bind_port)
    await stop.wait()
    log.info("shutting down: finishing requests in flight")
    await runner.cleanup()
    log.info("stopped")
    return 0
