"""Every failure becomes a Matrix error body, with CORS headers, and nothing leaks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from matrixrtc_auth.errors import Forbidden, Unauthorized
from matrixrtc_auth.http.middleware import CORS_HEADERS, add_cors_headers, matrix_errors


async def refuse(request: web.Request) -> web.Response:
    raise Unauthorized(
        "The OpenID token could not be verified",
        log_cause="homeserver answered 401 M_UNKNOWN_TOKEN",
    )


async def forbid(request: web.Request) -> web.Response:
    raise Forbidden("no")


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("internal detail secret-xyz")


async def read_body(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="read")


def make_app() -> web.Application:
    app = web.Application(middlewares=[matrix_errors], client_max_size=100)
    app.router.add_post("/refuse", refuse)
    app.router.add_post("/forbid", forbid)
    app.router.add_post("/crash", crash)
    app.router.add_post("/read", read_body)
    app.on_response_prepare.append(add_cors_headers)
    return app


async def check(resp: Any, status: int, errcode: str) -> dict[str, Any]:
    assert resp.status == status
    for name, value in CORS_HEADERS.items():
        assert resp.headers[name] == value
    body: dict[str, Any] = await resp.json()
    assert body["errcode"] == errcode
    assert isinstance(body["error"], str) and body["error"]
    return body


async def test_matrix_errors_keep_their_status_and_hide_the_cause(aiohttp_client, caplog) -> None:
    client = await aiohttp_client(make_app())
    body = await check(await client.post("/refuse"), 401, "M_UNAUTHORIZED")
    assert "M_UNKNOWN_TOKEN" not in body["error"]
    causes = [getattr(r, "fields", {}).get("cause", "") for r in caplog.records]
    assert "homeserver answered 401 M_UNKNOWN_TOKEN" in causes
    await check(await client.post("/forbid"), 403, "M_FORBIDDEN")


async def test_unexpected_exception_is_a_500_without_details(aiohttp_client) -> None:
    client = await aiohttp_client(make_app())
    body = await check(await client.post("/crash"), 500, "M_UNKNOWN")
    assert "secret-xyz" not in body["error"]


async def test_unknown_path_and_wrong_method(aiohttp_client) -> None:
    client = await aiohttp_client(make_app())
    await check(await client.get("/nowhere"), 404, "M_UNRECOGNIZED")
    resp = await client.get("/refuse")
    await check(resp, 405, "M_UNRECOGNIZED")
    assert "POST" in resp.headers["Allow"]


async def test_oversize_body_is_413(aiohttp_client) -> None:
    client = await aiohttp_client(make_app())
    await check(await client.post("/read", data=b"x" * 500), 413, "M_TOO_LARGE")
