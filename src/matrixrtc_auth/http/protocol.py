"""The connection-level request handler: limits and Matrix-shaped protocol errors.

Requests that fail before they reach the application (malformed HTTP, too
many or too long header lines) are answered here. aiohttp would answer them in
plain text and log them as server errors; they are the client's fault, so they
get a Matrix error body and a WARNING line instead.

Slow clients: aiohttp arms the keep-alive timer when a connection opens and
after each response, and closes the connection when it fires while no
complete request has arrived. With a short keep-alive timeout this also cuts
off a client that trickles its request headers.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from matrixrtc_auth.http.middleware import CORS_HEADERS
from matrixrtc_auth.logs import fields

log = logging.getLogger(__name__)

MAX_HEADERS = 100
MAX_HEADER_LINE = 8190
# Idle keep-alive connections, and requests whose headers do not arrive, end after this.
KEEPALIVE_TIMEOUT = 5.0


class MatrixRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        too_large = isinstance(exc, LineTooLong) or "too many headers" in str(exc).lower()
        if status >= 500:
            log.error("failure while handling a request", exc_info=exc)
            body = {"errcode": "M_UNKNOWN", "error": "Internal error"}
        elif too_large:
            status = 431
            body = {"errcode": "M_TOO_LARGE", "error": "Request headers are too large"}
        else:
            body = {"errcode": "M_UNRECOGNIZED", "error": "Malformed HTTP request"}
        if status < 500:
            log.warning(
                "malformed request refused",
                extra=fields(
                    status=status,
                    client=request.remote,
                    cause=type(exc).__name__ if exc else message,
                ),
            )
        response = web.json_response(body, status=status, headers=CORS_HEADERS)
        response.force_close()
        return response


def make_protocol(server: web.Server, loop: asyncio.AbstractEventLoop) -> RequestHandler:
    """One connection's handler; give this (bound) to ``loop.create_server``."""
    return MatrixRequestHandler(
        server,
        loop=loop,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        access_log=None,  # type: ignore[arg-type]
        max_headers=MAX_HEADERS,
        max_line_size=MAX_HEADER_LINE,
        max_field_size=MAX_HEADER_LINE,
    )
