"""Assembles the aiohttp application and serves it until SIGTERM or SIGINT.

``build_app`` wires routes, middleware and, in a cleanup context, the
long-lived clients: one session for federation requests, one for the other
calls to homeservers (well-known lookups, delayed-event restarts and sends), one
for the SFU, and Redis when configured. They live as long as the application so
that connections stay pooled across requests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client.core import REGISTRY
from redis.exceptions import RedisError

from matrixrtc_auth import __version__
from matrixrtc_auth.access import AccessPolicy
from matrixrtc_auth.config import Config, mask_url_password
from matrixrtc_auth.delegation.csapi import CsApiResolver
from matrixrtc_auth.delegation.delayed_events import DelayedEventsClient
from matrixrtc_auth.delegation.fsm import LIVE_STATES
from matrixrtc_auth.delegation.job import JobServices
from matrixrtc_auth.delegation.manager import JobManager
from matrixrtc_auth.delegation.store import JobStore, MemoryJobStore, RedisJobStore
from matrixrtc_auth.duplicates import DuplicateChecker
from matrixrtc_auth.http import handlers
from matrixrtc_auth.http.middleware import add_cors_headers, count_requests, matrix_errors
from matrixrtc_auth.http.protocol import make_protocol
from matrixrtc_auth.http.state import ISSUER, JOBS, SHUTTING_DOWN, TRUSTED_PROXIES, WEBHOOKS
from matrixrtc_auth.identities import (
    IdentityRegistry,
    MemoryIdentityRegistry,
    RedisIdentityRegistry,
)
from matrixrtc_auth.issuer import TokenIssuer
from matrixrtc_auth.matrix.discovery import ServerDiscovery
from matrixrtc_auth.matrix.federation import FederationClient
from matrixrtc_auth.matrix.openid import OpenIDVerifier
from matrixrtc_auth.matrix.srv import DnsSrvResolver
from matrixrtc_auth.matrix.v2 import V2Verifier, run_self_test
from matrixrtc_auth.matrix.wellknown import HttpWellKnownFetcher
from matrixrtc_auth.metrics import JobStateCollector, metrics_app
from matrixrtc_auth.netguard import NetworkGuard
from matrixrtc_auth.ocsp_gate import StapleGate, StaplingConnector
from matrixrtc_auth.sfu.rooms import SFU_CALL_TIMEOUT, SfuRooms
from matrixrtc_auth.sfu.tokens import TokenMinter
from matrixrtc_auth.sfu.webhooks import WebhookVerifier
from matrixrtc_auth.tls import client_ssl_context

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
SHUTDOWN_TIMEOUT = 10.0
RESOLVER_THREADS = 64
REDIS_TIMEOUT = 3.0
USER_AGENT = f"matrixrtc-auth/{__version__}"

# (path, handler) for each POST endpoint.
_POST_ROUTES = (
    ("/sfu/get", handlers.handle_sfu_get),
    ("/get_token", handlers.handle_get_token),
    ("/delegate_delayed_leave", handlers.handle_delegate_delayed_leave),
    ("/sfu_webhook", handlers.handle_sfu_webhook),
)
# Every endpoint also answers under this prefix, for proxies that cannot strip it
# (the seed had /livekit/jwt/sfu/get); /livekit/healthz is the seed's own alias.
ALIAS_PREFIX = "/livekit/jwt"
_HEALTH_ROUTES = ("/healthz", f"{ALIAS_PREFIX}/healthz", "/livekit/healthz")


class StartupError(Exception):
    """A dependency the configuration names cannot be used; one line, no secrets."""


def build_app(config: Config) -> web.Application:
    app = web.Application(
        client_max_size=handlers.MAX_BODY_BYTES, middlewares=[count_requests, matrix_errors]
    )
    app[CONFIG] = config
    app[TRUSTED_PROXIES] = config.trusted_proxies
    app[SHUTTING_DOWN] = asyncio.Event()
    app[WEBHOOKS] = WebhookVerifier(config.livekit_key, config.livekit_secret)
    for path, handler in _POST_ROUTES:
        for prefixed in (path, ALIAS_PREFIX + path):
            app.router.add_post(prefixed, handler)
            app.router.add_route("OPTIONS", prefixed, handlers.handle_preflight)
    for path in _HEALTH_ROUTES:
        app.router.add_get(path, handlers.handle_healthz)  # HEAD comes with GET
    app.on_response_prepare.append(add_cors_headers)
    app.cleanup_ctx.append(_clients)
    return app


def _session(
    config: Config,
    *,
    limit_per_host: int,
    timeout: float | None = None,
    guard: NetworkGuard | None = None,
    staples: StapleGate | None = None,
) -> aiohttp.ClientSession:
    # Homeserver connections pass the OCSP gate (ocsp_gate.py) when one is given.
    make_connector: Callable[..., aiohttp.TCPConnector] = (
        aiohttp.TCPConnector
        if staples is None
        else functools.partial(StaplingConnector, gate=staples)
    )
    connector = make_connector(
        ssl=client_ssl_context(config),
        resolver=guard.resolver() if guard is not None else None,
        limit=256,
        limit_per_host=limit_per_host,
        keepalive_timeout=60.0,
        ttl_dns_cache=60,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def _connect_redis(url: str) -> aioredis.Redis:
    client = aioredis.from_url(
        url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise StartupError(
            f"LIVEKIT_REDIS_URL: cannot reach Redis at {mask_url_password(url)} "
            f"({type(exc).__name__})"
        ) from None
    log.info("connected to Redis at %s", mask_url_password(url))
    return client


async def _restore(jobs: JobManager) -> int:
    try:
        return await jobs.restore()
    except (RedisError, OSError) as exc:
        raise StartupError(
            f"LIVEKIT_REDIS_URL: cannot read stored delegation jobs ({type(exc).__name__})"
        ) from None


async def _clients(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    redis_client = await _connect_redis(config.redis_url) if config.redis_url else None
    # The guard protects calls whose targets clients choose; the SFU is the operator's.
    guard = NetworkGuard(config.public_facing)
    # Stapled OCSP is checked on homeserver connections unless TLS checks are off altogether.
    staples = (
        None
        if config.skip_verify_tls
        else StapleGate(require=config.require_ocsp_staple, cafile=config.ssl_cert_file)
    )
    federation_session = _session(config, limit_per_host=16, guard=guard, staples=staples)
    self_test: asyncio.Task[bool] | None = None
    jobs: JobManager | None = None
    job_states: JobStateCollector | None = None
    web_session = _session(config, limit_per_host=4, guard=guard)
    sfu_session = _session(config, limit_per_host=32, timeout=SFU_CALL_TIMEOUT)
    try:
        discovery = ServerDiscovery(HttpWellKnownFetcher(web_session, guard), DnsSrvResolver())
        rooms = SfuRooms(
            sfu_session, config.livekit_url, config.livekit_key, config.livekit_secret
        )
        delayed_events = DelayedEventsClient(web_session, guard)
        cs_api = CsApiResolver(config.cs_api_overrides, web_session, guard)
        services = JobServices(rooms, delayed_events, cs_api, config.sanity_check_interval)
        store: JobStore = RedisJobStore(redis_client) if redis_client else MemoryJobStore()
        jobs = JobManager(services, store)
        app[JOBS] = jobs
        job_states = JobStateCollector(
            lambda: {state.value: count for state, count in jobs.counts().items()},
            [state.value for state in LIVE_STATES],
        )
        REGISTRY.register(job_states)
        restored = await _restore(jobs)
        if restored:
            log.info("restored %d delegation jobs", restored)
        registry: IdentityRegistry | None = None
        duplicates: DuplicateChecker | None = None
        if config.tracks_identities:
            registry = (
                RedisIdentityRegistry(redis_client) if redis_client else MemoryIdentityRegistry()
            )
            duplicates = DuplicateChecker(
                rooms,
                registry,
                same_device=config.block_same_device,
                same_user=config.block_same_user_devices,
            )
        federation = FederationClient(federation_session, discovery, guard)
        v2 = V2Verifier(federation, config.v2) if config.v2 is not None else None
        app[ISSUER] = TokenIssuer(
            livekit_url=config.livekit_url,
            policy=AccessPolicy(config),
            verifier=OpenIDVerifier(federation),
            rooms=rooms,
            minter=TokenMinter(config.livekit_key, config.livekit_secret),
            delegations=jobs,
            duplicates=duplicates,
            registry=registry,
            v2=v2,
        )
        if v2 is not None and config.v2 is not None and config.v2.test_server is not None:
            # In the background: the service starts (and /healthz answers) whatever it finds.
            self_test = asyncio.create_task(run_self_test(v2, config.v2.test_server))
        yield
    finally:
        if jobs is not None:
            await jobs.close()
        if job_states is not None:
            REGISTRY.unregister(job_states)
        if self_test is not None:
            self_test.cancel()
            await asyncio.gather(self_test, return_exceptions=True)
        for session in (federation_session, web_session, sfu_session):
            await session.close()
        if staples is not None:
            staples.close()
        if redis_client is not None:
            await redis_client.aclose()


async def _start_metrics(config: Config) -> web.AppRunner | None:
    """The /metrics listener, when LIVEKIT_METRICS_BIND asks for one."""
    if config.metrics_bind is None:
        return None
    host, port = config.metrics_bind
    runner = web.AppRunner(metrics_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.error("cannot listen for metrics on %s:%s: %s", host or "*", port, exc.strerror)
        await runner.cleanup()
        return None
    log.info("serving /metrics on %s:%s", host or "*", port)
    return runner


async def serve(config: Config) -> int:
    """Serves until SIGTERM/SIGINT; returns the process exit status."""
    runner = web.AppRunner(
        build_app(config),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    loop = asyncio.get_running_loop()
    # Name resolution runs getaddrinfo in the default executor; a client naming
    # homeservers whose DNS never answers must not be able to occupy all of it.
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="resolver")
    )
    try:
        await runner.setup()
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        await runner.cleanup()
        return 1

    server = runner.server
    assert server is not None
    host = config.bind_host or "*"
    where = f"[{host}]:{config.bind_port}" if ":" in host else f"{host}:{config.bind_port}"
    try:
        listener = await loop.create_server(
            lambda: make_protocol(server, loop),
            config.bind_host,
            config.bind_port,
            reuse_address=True,
        )
    except OSError as exc:
        log.error("cannot listen on %s: %s", where, exc.strerror or exc)
        await runner.cleanup()
        return 1

    metrics_runner = await _start_metrics(config)
    if config.metrics_bind is not None and metrics_runner is None:
        listener.close()
        await runner.cleanup()
        return 1

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("listening on %s", where)
    await stop.wait()
    log.info("shutting down: finishing requests in flight")
    runner.app[SHUTTING_DOWN].set()
    listener.close()
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await runner.cleanup()
    log.info("stopped")
    return 0
