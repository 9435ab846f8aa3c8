"""One handler per endpoint: read the body, parse it, hand it on, answer."""

from __future__ import annotations

import asyncio

from aiohttp import web

from matrixrtc_auth.errors import RequestTimeout
from matrixrtc_auth.http.middleware import request_client
from matrixrtc_auth.http.requests import (
    JoinRequest,
    parse_get_token,
    parse_json_object,
    parse_legacy,
)
from matrixrtc_auth.http.state import ISSUER

# A client that takes longer than this to send its (at most 3 KiB) body is cut off.
BODY_TIMEOUT = 5.0


async def read_body(request: web.Request) -> bytes:
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout("The request body did not arrive in time") from None


async def handle_sfu_get(request: web.Request) -> web.Response:
    return await _issue(request, parse_legacy(parse_json_object(await read_body(request))))


async def handle_get_token(request: web.Request) -> web.Response:
    return await _issue(request, parse_get_token(parse_json_object(await read_body(request))))


async def _issue(request: web.Request, join: JoinRequest) -> web.Response:
    token = await request.app[ISSUER].issue(join, request_client(request))
    return web.json_response({"url": token.url, "jwt": token.jwt})


async def handle_healthz(request: web.Request) -> web.Response:
    return web.Response(status=200, text="ok\n")


async def handle_preflight(request: web.Request) -> web.Response:
    # The CORS headers themselves are added to every response by a signal.
    return web.Response(status=200)
