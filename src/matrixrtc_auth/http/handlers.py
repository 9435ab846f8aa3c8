"""One handler per endpoint: read the body, parse it, hand it on, answer."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from matrixrtc_auth.errors import NotJson, RequestTimeout, TooLarge, Unauthorized
from matrixrtc_auth.http.middleware import request_client
from matrixrtc_auth.http.requests import (
    JoinRequest,
    parse_delegate,
    parse_get_token,
    parse_json_object,
    parse_legacy,
)
from matrixrtc_auth.http.state import ISSUER, JOBS, WEBHOOKS
from matrixrtc_auth.logs import fields
from matrixrtc_auth.sfu.webhooks import WebhookRefused

log = logging.getLogger(__name__)

# A client that takes longer than this to send its body is cut off.
BODY_TIMEOUT = 5.0
# Token and delegation requests are small (PROTOCOL.md section 10).
MAX_BODY_BYTES = 3 * 1024
# LiveKit's webhook bodies describe a whole room and participant: more than 3 KiB.
WEBHOOK_MAX_BYTES = 256 * 1024


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, at most ``limit`` bytes (the application's own limit must allow it)."""
    # A declared length over the limit is refused at once, not after the timeout.
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge("The request body is too large")
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout("The request body did not arrive in time") from None
    except (RequestPayloadError, HttpProcessingError):
        # For example a Content-Encoding the body does not actually have.
        raise NotJson("The request body could not be decoded") from None


async def handle_sfu_get(request: web.Request) -> web.Response:
    return await _issue(request, parse_legacy(parse_json_object(await read_body(request))))


async def handle_get_token(request: web.Request) -> web.Response:
    return await _issue(request, parse_get_token(parse_json_object(await read_body(request))))


async def _issue(request: web.Request, join: JoinRequest) -> web.Response:
    token = await request.app[ISSUER].issue(join, request_client(request))
    return web.json_response({"url": token.url, "jwt": token.jwt})


async def handle_delegate_delayed_leave(request: web.Request) -> web.Response:
    join = parse_delegate(parse_json_object(await read_body(request)))
    await request.app[ISSUER].delegate_only(join, request_client(request))
    return web.json_response({})


async def handle_sfu_webhook(request: web.Request) -> web.Response:
    body = await read_body(
        request.clone(client_max_size=WEBHOOK_MAX_BYTES), limit=WEBHOOK_MAX_BYTES
    )
    try:
        event = request.app[WEBHOOKS].parse(body, request.headers.get("Authorization"))
    except WebhookRefused as exc:
        raise Unauthorized("The webhook signature is not valid", log_cause=exc.cause) from None
    if event is None:
        return web.json_response({})
    routed = request.app[JOBS].on_participant_event(event.room, event.identity, event.signal)
    log.log(
        logging.INFO if routed else logging.DEBUG,
        "participant webhook",
        extra=fields(
            event=event.event,
            room=event.room,
            lk_identity=event.identity,
            intentional=event.intentional,
            job=routed,
        ),
    )
    return web.json_response({})


async def handle_healthz(request: web.Request) -> web.Response:
    return web.Response(status=200, text="ok\n")


async def handle_preflight(request: web.Request) -> web.Response:
    # The CORS headers themselves are added to every response by a signal.
    return web.Response(status=200)
