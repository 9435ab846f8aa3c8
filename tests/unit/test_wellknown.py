"""Fetching /.well-known/matrix/server from a real HTTPS server on loopback."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from matrixrtc_auth.matrix.discovery import WELL_KNOWN_FAILURE_TTL
from matrixrtc_auth.matrix.wellknown import HttpWellKnownFetcher, cache_ttl
from matrixrtc_auth.netguard import NetworkGuard
from tests.support.tls import TestCA

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve_well_known(test_ca: TestCA) -> AsyncIterator[Callable[..., object]]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(
        handler: Handler, *, host: str = "127.0.0.1", guard: NetworkGuard | None = None
    ) -> HttpWellKnownFetcher:
        app = web.Application()
        app.router.add_get("/.well-known/matrix/server", handler)
        app.router.add_get("/elsewhere", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        context = test_ca.server_context("localhost", "127.0.0.1", "127.0.0.2")
        site = web.TCPSite(runner, host, 0, ssl_context=context)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        used_guard = guard or NetworkGuard(False)
        connector = aiohttp.TCPConnector(
            ssl=test_ca.client_context(), resolver=used_guard.resolver()
        )
        session = aiohttp.ClientSession(connector=connector)
        sessions.append(session)
        return HttpWellKnownFetcher(session, used_guard, port=port, timeout=1.0)

    yield start
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()


async def test_delegation_and_cache_control(serve_well_known) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            {"m.server": "hs.example.com:443"}, headers={"Cache-Control": "public, max-age=7200"}
        )

    fetcher = await serve_well_known(handler)
    answer = await fetcher.fetch("127.0.0.1")
    assert answer.server == "hs.example.com:443"
    assert answer.ttl == 7200


async def test_certificate_for_the_name_is_required(serve_well_known) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"m.server": "hs.example.com"})

    fetcher = await serve_well_known(handler)
    # "localhost" is on the certificate; "127.0.0.2" is not.
    assert (await fetcher.fetch("localhost")).server == "hs.example.com"
    assert (await fetcher.fetch("127.0.0.2")).server is None


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"m.server": 5}', b"{}", json.dumps({"x": "y" * 20000}).encode()],
)
async def test_unusable_answers_mean_no_delegation(serve_well_known, body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    fetcher = await serve_well_known(handler)
    answer = await fetcher.fetch("localhost")
    assert answer.server is None
    assert answer.ttl == WELL_KNOWN_FAILURE_TTL


async def test_error_status_means_no_delegation(serve_well_known) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=404)

    fetcher = await serve_well_known(handler)
    assert (await fetcher.fetch("localhost")).server is None


async def test_redirects_are_followed(serve_well_known) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.path == "/elsewhere":
            return web.json_response({"m.server": "moved.example.com"})
        raise web.HTTPFound("/elsewhere")

    fetcher = await serve_well_known(handler)
    assert (await fetcher.fetch("localhost")).server == "moved.example.com"


async def test_unreachable_server_means_no_delegation(test_ca: TestCA) -> None:
    from tests.support.ports import free_port

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl.create_default_context())
    ) as session:
        fetcher = HttpWellKnownFetcher(session, NetworkGuard(False), port=free_port(), timeout=1.0)
        assert (await fetcher.fetch("127.0.0.1")).server is None


@pytest.mark.parametrize(
    ("cache_control", "expires", "ttl"),
    [
        (None, None, 24 * 3600),
        ("max-age=100", None, 300),
        ("max-age=999999999", None, 48 * 3600),
        ("no-store", None, 300),
        (None, "Thu, 01 Jan 1970 03:00:00 GMT", 3 * 3600),
        (None, "garbage", 24 * 3600),
    ],
)
def test_cache_lifetime_from_headers(
    cache_control: str | None, expires: str | None, ttl: float
) -> None:
    assert cache_ttl(cache_control, expires, now=0.0) == ttl


# In these tests 127.0.0.2 stands for a public address: the guard allows only it.
ONLY_127_0_0_2 = NetworkGuard(True, allow=lambda address: str(address) == "127.0.0.2")


@pytest.mark.parametrize(
    "target", ["https://127.0.0.1:{port}/elsewhere", "https://localhost:{port}/elsewhere"]
)
async def test_guard_refuses_redirect_hops_to_private_addresses(
    serve_well_known, target: str
) -> None:
    port_box: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/elsewhere":
            return web.json_response({"m.server": "should-not-be-read.example"})
        raise web.HTTPFound(target.format(port=port_box[0]))

    fetcher = await serve_well_known(handler, host="127.0.0.2", guard=ONLY_127_0_0_2)
    port_box.append(fetcher._port)
    assert (await fetcher.fetch("127.0.0.2")).server is None


async def test_guard_allows_public_targets(serve_well_known) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"m.server": "hs.example.com"})

    fetcher = await serve_well_known(handler, host="127.0.0.2", guard=ONLY_127_0_0_2)
    assert (await fetcher.fetch("127.0.0.2")).server == "hs.example.com"


async def test_redirect_to_plain_http_is_refused(serve_well_known) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://localhost/.well-known/matrix/server")

    fetcher = await serve_well_known(handler)
    assert (await fetcher.fetch("localhost")).server is None
