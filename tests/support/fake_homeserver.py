"""A fake Matrix homeserver: the federation OpenID userinfo endpoint over HTTPS on loopback.

``FakeHomeserver`` answers
``GET /_matrix/federation/v1/openid/userinfo?access_token=...`` from a table of
tokens (``add_token``) the way Synapse does (``{"sub": ...}``, or 401
``M_UNKNOWN_TOKEN``), and ``GET /.well-known/matrix/server`` when told to. It
records every request (path, query with the token value redacted, ``Host``
header, which TCP connection carried it), so tests and benchmarks can check
what the service sent and whether it reused connections. Knobs make the
userinfo endpoint hang or answer any status and body.

TLS comes from the context given to the constructor, typically
``test_ca.server_context("localhost", "127.0.0.1")``; a context from another CA
gives a homeserver the service must not trust. It runs in a background thread
(see ``ThreadedServer``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.threaded_server import ThreadedServer

USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"
WELL_KNOWN_SERVER_PATH = "/.well-known/matrix/server"
REDACTED = "<redacted>"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake homeserver saw it."""

    method: str
    path: str
    # Query parameters, with the value of ``access_token`` replaced by ``REDACTED``.
    query: dict[str, str]
    host: str | None
    headers: dict[str, str]
    # Sequence number of the TCP connection that carried the request (1, 2, ...).
    connection: int
    # The OpenID access token sent, if any (kept apart so that it is not printed by accident).
    access_token: str | None = field(default=None, repr=False)
    at: float = field(default_factory=time.time)


class FakeHomeserver(ThreadedServer):
    """A homeserver's federation listener; its server name is :attr:`server_name`."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        hostname: str = "127.0.0.1",
        max_recorded: int | None = None,
    ) -> None:
        """``hostname`` is the host part of :attr:`server_name`: ``127.0.0.1`` or ``localhost``.

        ``max_recorded`` bounds :attr:`requests` to the latest ones (for long benchmarks);
        the counters keep counting everything.
        """
        if hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the fake homeserver only lives on loopback")
        self.hostname = hostname
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._userinfo_count = 0
        self._hang_userinfo = 0.0
        self._userinfo_override: tuple[int, Any] | None = None
        self._well_known: Any = None
        self._well_known_fetches = 0
        self._connections: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._connections_opened = 0
        self._connection_seq = 0
        app = web.Application()
        app.router.add_get(USERINFO_PATH, self._userinfo)
        app.router.add_get(WELL_KNOWN_SERVER_PATH, self._well_known_server)
        app.router.add_route("*", "/{tail:.*}", self._unrecognized)
        super().__init__(app, ssl_context=ssl_context)

    @property
    def server_name(self) -> str:
        return f"{self.hostname}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://{self.server_name}"

    # -- configuration ---------------------------------------------------------

    def add_token(self, token: str, user_id: str) -> None:
        """``token`` is an OpenID token of ``user_id`` (which may belong to another server)."""
        with self._lock:
            self._tokens[token] = user_id

    def remove_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def hang_userinfo(self, seconds: float) -> None:
        """Userinfo requests are answered only after ``seconds`` (0 turns it off)."""
        with self._lock:
            self._hang_userinfo = max(0.0, seconds)

    def userinfo_status(self, status: int | None, body: Any = None) -> None:
        """Every userinfo request answers ``status`` with ``body`` (``None`` restores tokens).

        ``body`` may be a JSON-able value, ``str`` or ``bytes`` (sent as is);
        ``None`` sends a Matrix error body.
        """
        with self._lock:
            self._userinfo_override = None if status is None else (status, body)

    def well_known_server(self, body: Any) -> None:
        """What ``/.well-known/matrix/server`` serves: a JSON-able value, str/bytes, or 404."""
        with self._lock:
            self._well_known = body

    # -- recording -------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def userinfo_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == USERINFO_PATH]

    @property
    def userinfo_count(self) -> int:
        """Userinfo requests received since start (or the last :meth:`clear_requests`)."""
        with self._lock:
            return self._userinfo_count

    @property
    def connections_opened(self) -> int:
        """Distinct TCP connections that carried at least one request (since the last clear)."""
        with self._lock:
            return self._connections_opened

    @property
    def well_known_fetches(self) -> int:
        with self._lock:
            return self._well_known_fetches

    def clear_requests(self) -> None:
        """Forgets recorded requests and resets the counters (e.g. after a warm-up)."""
        with self._lock:
            self._requests.clear()
            self._well_known_fetches = 0
            self._userinfo_count = 0
            # Connections already seen stay known; only new ones count from here on.
            self._connections_opened = 0

    # -- HTTP ------------------------------------------------------------------

    def _record(self, request: web.Request) -> None:
        query = dict(request.query)
        token = query.get("access_token")
        if token is not None:
            query["access_token"] = REDACTED
        with self._lock:
            transport = request.transport
            connection = self._connections.get(transport) if transport is not None else None
            if request.path == USERINFO_PATH:
                self._userinfo_count += 1
            if connection is None:
                self._connections_opened += 1
                self._connection_seq += 1
                connection = self._connection_seq
                if transport is not None:
                    self._connections[transport] = connection
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=query,
                    host=request.headers.get("Host"),
                    headers=dict(request.headers),
                    connection=connection,
                    access_token=token,
                )
            )

    async def _userinfo(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        with self._lock:
            delay = self._hang_userinfo
            override = self._userinfo_override
            user_id = self._tokens.get(request.query.get("access_token", ""))
        if delay:
            await asyncio.sleep(delay)
        if override is not None:
            status, body = override
            if body is None:
                body = {"errcode": "M_UNKNOWN", "error": f"Injected status {status}"}
            return _response(status, body)
        if user_id is None:
            return _response(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token"})
        return _response(200, {"sub": user_id})

    async def _well_known_server(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        with self._lock:
            self._well_known_fetches += 1
            body = self._well_known
        if body is None:
            return _response(404, {"errcode": "M_NOT_FOUND", "error": "Not found"})
        return _response(200, body)

    async def _unrecognized(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        return _response(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})


def _response(status: int, body: Any) -> web.Response:
    if isinstance(body, bytes):
        return web.Response(status=status, body=body, content_type="application/json")
    if isinstance(body, str):
        return web.Response(status=status, text=body, content_type="application/json")
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
