"""Middleware and signals shared by every endpoint.

- ``matrix_errors`` gives each request an ID for the log, turns every failure
  into a Matrix error body (one shape for all: ``{"errcode", "error"}``) and
  logs refusals with their precise cause at WARNING; anything unexpected is
  logged with its traceback and answered 500 ``M_UNKNOWN``.
- ``add_cors_headers`` runs on every prepared response, errors included, so a
  browser client can read why it was refused.
"""

from __future__ import annotations

import logging
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from matrixrtc_auth.errors import (
    HeadersTooLarge,
    MatrixError,
    MethodNotAllowed,
    ShuttingDown,
    TooLarge,
    Unknown,
    Unrecognized,
)
from matrixrtc_auth.http.clientip import client_address
from matrixrtc_auth.http.state import SHUTTING_DOWN, TRUSTED_PROXIES
from matrixrtc_auth.logs import fields, request_id
from matrixrtc_auth.metrics import REQUEST_LATENCY, REQUESTS

log = logging.getLogger(__name__)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token"
    ),
}


MAX_HEADER_BYTES = 8 * 1024
_CLIENT = web.RequestKey("client", str)


def request_client(request: web.Request) -> str:
    """The client address for logs (see ``clientip.py``), worked out once per request."""
    client = request.get(_CLIENT)
    if client is None:
        client = client_address(request, request.app.get(TRUSTED_PROXIES, ()))
        request[_CLIENT] = client
    return client


@web.middleware
async def matrix_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request_id.set(uuid.uuid4().hex[:12])
    started = time.monotonic()
    try:
        try:
            shutting_down = request.app.get(SHUTTING_DOWN)
            if shutting_down is not None and shutting_down.is_set():
                raise ShuttingDown("The service is shutting down; try again")
            header_bytes = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
            if header_bytes > MAX_HEADER_BYTES:
                raise HeadersTooLarge(
                    "Request headers are too large", log_cause=f"{header_bytes} bytes of headers"
                )
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            raise TooLarge("The request body is too large") from None
        except web.HTTPMethodNotAllowed as exc:
            error = MethodNotAllowed(f"Method {request.method} is not allowed here")
            return _error_response(
                error, request, started, headers={"Allow": exc.headers.get("Allow", "")}
            )
        except web.HTTPNotFound:
            raise Unrecognized("Unrecognized request") from None
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            other = MatrixError(exc.reason)
            other.status = exc.status  # keep what aiohttp decided, e.g. 400 or 416
            other.errcode = "M_UNKNOWN" if exc.status >= 500 else "M_UNRECOGNIZED"
            raise other from None
    except MatrixError as error:
        return _error_response(error, request, started)
    except Exception:
        log.exception("unexpected failure", extra=fields(method=request.method, path=request.path))
        return _error_response(Unknown("Internal error"), request, started, logged=True)
    finally:
        request_id.reset(token)


def _error_response(
    error: MatrixError,
    request: web.Request,
    started: float,
    *,
    headers: dict[str, str] | None = None,
    logged: bool = False,
) -> web.Response:
    response = web.json_response(error.body(), status=error.status, headers=headers)
    if error.close_connection:
        response.force_close()
    if not logged:
        # Refusals are the client's or a remote server's doing: WARNING, not ERROR.
        # Unknown paths and wrong methods are what scanners send all day: DEBUG.
        level = logging.DEBUG if error.errcode == "M_UNRECOGNIZED" else logging.WARNING
        log.log(
            level,
            "request refused",
            extra=fields(
                method=request.method,
                path=request.path,
                status=error.status,
                client=request_client(request),
                cause=error.log_cause,
                elapsed_ms=round((time.monotonic() - started) * 1000),
            ),
        )
    return response


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests by endpoint (the route, never the raw path) and status, with latency."""
    started = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    endpoint = resource.canonical if resource is not None else "unmatched"
    REQUESTS.labels(endpoint, str(response.status)).inc()
    REQUEST_LATENCY.labels(endpoint).observe(time.perf_counter() - started)
    return response


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(CORS_HEADERS)
