"""A fake homeserver client-server API: MSC4140 delayed events over plain HTTP on loopback.

``FakeClientApi`` answers
``POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/{delay_id}/restart``
and ``.../send`` the way Synapse does: a pending delay ID (added by the test
with :meth:`add_event`) answers ``{}``; one that was sent already, or was never
known, answers 404 ``M_NOT_FOUND``. A pending event that nobody restarts before
its delay runs out is "sent" by the fake itself, which is recorded apart from a
send asked for by the service (:attr:`DelayedEvent.sent_by`).

Every call is recorded (action, delay ID, time, status answered). Knobs make the
next N restarts or sends answer another status (404, 500, 429 with a
``Retry-After`` header or a ``retry_after_ms`` body). The service is pointed at
it with ``LIVEKIT_CS_API_URL_OVERRIDES=<server name>=<url>``. It runs in a
background thread (see ``ThreadedServer``)::

    with FakeClientApi() as cs_api:
        cs_api.add_event("syd_abc", delay=3.0)
        env["LIVEKIT_CS_API_URL_OVERRIDES"] = f"{server_name}={cs_api.url}"
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.support.threaded_server import ThreadedServer

DELAYED_EVENTS_PREFIX = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/"
ACTIONS = ("restart", "send")
# How often pending events are checked for a delay that ran out.
_TICK = 0.02

PENDING = "pending"
SENT_BY_SERVICE = "service"
SENT_BY_TIMEOUT = "timeout"


@dataclasses.dataclass(frozen=True)
class DelayedCall:
    """One restart or send as the fake saw it."""

    action: str
    delay_id: str
    at: float  # time.time() when the request arrived
    status: int


@dataclasses.dataclass
class DelayedEvent:
    """A delayed event scheduled on the fake homeserver."""

    delay_id: str
    delay: float  # seconds
    # time.time() when the homeserver sends it by itself; None: it never times out.
    due: float | None
    # PENDING, SENT_BY_SERVICE or SENT_BY_TIMEOUT.
    sent_by: str = PENDING
    sent_at: float | None = None


@dataclasses.dataclass
class _Failure:
    status: int
    remaining: int
    retry_after: str | None
    retry_after_ms: int | None


class FakeClientApi(ThreadedServer):
    """The delayed-events part of a homeserver's client-server API, at :attr:`url`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, DelayedEvent] = {}
        self._calls: list[DelayedCall] = []
        self._failures: dict[str, _Failure] = {}
        # Requests that were not a restart or send, as "METHOD raw-path".
        self.other_requests: list[str] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.cleanup_ctx.append(self._ticker)
        super().__init__(app)

    @property
    def url(self) -> str:
        """The client-server API base URL (for ``LIVEKIT_CS_API_URL_OVERRIDES``)."""
        return f"http://127.0.0.1:{self.port}"

    # -- events ----------------------------------------------------------------

    def add_event(self, delay_id: str, delay: float, *, times_out: bool = True) -> None:
        """Schedules a delayed event; ``times_out=False``: it is only ever sent on request."""
        with self._lock:
            due = time.time() + delay if times_out else None
            self._events[delay_id] = DelayedEvent(delay_id, delay, due)

    def event(self, delay_id: str) -> DelayedEvent:
        """A copy of the event's current record."""
        with self._lock:
            return dataclasses.replace(self._events[delay_id])

    def sent_by(self, delay_id: str) -> str:
        """``PENDING``, ``SENT_BY_SERVICE`` or ``SENT_BY_TIMEOUT``."""
        return self.event(delay_id).sent_by

    # -- recording and knobs ---------------------------------------------------

    def calls(self, action: str | None = None, delay_id: str | None = None) -> list[DelayedCall]:
        """Restarts and sends received so far, oldest first."""
        with self._lock:
            return [
                c
                for c in self._calls
                if (action is None or c.action == action)
                and (delay_id is None or c.delay_id == delay_id)
            ]

    def fail_next(
        self,
        action: str,
        status: int,
        count: int = 1,
        *,
        retry_after: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """The next ``count`` calls of ``action`` answer ``status`` (and change nothing).

        ``retry_after`` becomes a ``Retry-After`` header, ``retry_after_ms`` a field
        of the error body (Synapse's ``M_LIMIT_EXCEEDED`` shape).
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        with self._lock:
            if count <= 0:
                self._failures.pop(action, None)
            else:
                self._failures[action] = _Failure(status, count, retry_after, retry_after_ms)

    # -- HTTP ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        # Read from the raw path: the delay ID must arrive as one escaped path segment.
        raw_path = request.raw_path.split("?", 1)[0]
        if request.method != "POST" or not raw_path.startswith(DELAYED_EVENTS_PREFIX):
            return self._unrecognized(request)
        segments = raw_path[len(DELAYED_EVENTS_PREFIX) :].split("/")
        if len(segments) != 2 or not segments[0] or segments[1] not in ACTIONS:
            return self._unrecognized(request)
        delay_id, action = unquote(segments[0]), segments[1]
        now = time.time()
        with self._lock:
            self._expire(now)
            response = self._injected_failure(action)
            if response is None:
                response = self._apply(action, delay_id, now)
            self._calls.append(DelayedCall(action, delay_id, now, response.status))
        return response

    def _injected_failure(self, action: str) -> web.Response | None:
        failure = self._failures.get(action)
        if failure is None:
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            del self._failures[action]
        headers = {} if failure.retry_after is None else {"Retry-After": failure.retry_after}
        body: dict[str, Any] = _error_body(failure.status)
        if failure.retry_after_ms is not None:
            body["retry_after_ms"] = failure.retry_after_ms
        return web.json_response(body, status=failure.status, headers=headers)

    def _apply(self, action: str, delay_id: str, now: float) -> web.Response:
        event = self._events.get(delay_id)
        if event is None or event.sent_by != PENDING:
            return web.json_response(
                {"errcode": "M_NOT_FOUND", "error": "Delayed event not found"}, status=404
            )
        if action == "restart":
            if event.due is not None:
                event.due = now + event.delay
        else:
            event.sent_by = SENT_BY_SERVICE
            event.sent_at = now
        return web.json_response({})

    def _expire(self, now: float) -> None:
        """Sends (as the homeserver would) every pending event whose delay ran out."""
        for event in self._events.values():
            if event.sent_by == PENDING and event.due is not None and event.due <= now:
                event.sent_by = SENT_BY_TIMEOUT
                event.sent_at = event.due

    async def _ticker(self, app: web.Application) -> AsyncIterator[None]:
        async def tick() -> None:
            while True:
                with self._lock:
                    self._expire(time.time())
                await asyncio.sleep(_TICK)

        task = asyncio.create_task(tick())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _unrecognized(self, request: web.Request) -> web.Response:
        with self._lock:
            self.other_requests.append(f"{request.method} {request.raw_path}")
        return web.json_response(
            {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, status=404
        )


def _error_body(status: int) -> dict[str, Any]:
    if status == 404:
        return {"errcode": "M_NOT_FOUND", "error": "Delayed event not found"}
    if status == 429:
        return {"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests"}
    return {"errcode": "M_UNKNOWN", "error": f"injected failure ({status})"}
