"""One handler per endpoint: read the body, parse it, hand it on, answer."""

from __future__ import annotations

from aiohttp import web

from matrixrtc_auth.http.middleware import client_address
from matrixrtc_auth.http.requests import (
    JoinRequest,
    parse_get_token,
    parse_json_object,
    parse_legacy,
)
from matrixrtc_auth.issuer import TokenIssuer

ISSUER = web.AppKey("issuer", TokenIssuer)


async def handle_sfu_get(request: web.Request) -> web.Response:
    return await _issue(request, parse_legacy(parse_json_object(await request.read())))


async def handle_get_token(request: web.Request) -> web.Response:
    return await _issue(request, parse_get_token(parse_json_object(await request.read())))


async def _issue(request: web.Request, join: JoinRequest) -> web.Response:
    token = await request.app[ISSUER].issue(join, client_address(request))
    return web.json_response({"url": token.url, "jwt": token.jwt})


async def handle_healthz(request: web.Request) -> web.Response:
    return web.Response(status=200, text="ok\n")


async def handle_preflight(request: web.Request) -> web.Response:
    # The CORS headers themselves are added to every response by the middleware.
    return web.Response(status=200)
