"""The homeserver's MSC4140 delayed-event calls: restart and send (PROTOCOL.md 8.2).

No authentication: the delay ID is the capability. Each call is classified for
the job: done, gone (404: already sent or cancelled), or retry, with the wait
the homeserver asked for when it answered 429.
"""

from __future__ import annotations

import email.utils
import enum
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp

from matrixrtc_auth.matrix.http import (
    REQUEST_FAILURES,
    describe_failure,
    json_object,
    read_capped,
)
from matrixrtc_auth.metrics import DELAYED_EVENT_CALLS
from matrixrtc_auth.netguard import NetworkGuard

DELAYED_EVENTS_PATH = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
CALL_TIMEOUT = 5.0
MAX_BODY_BYTES = 4096


class Outcome(enum.Enum):
    DONE = "done"
    GONE = "gone"
    RETRY = "retry"


@dataclass(frozen=True)
class CallResult:
    outcome: Outcome
    detail: str  # for the log: status or error, never the delay ID's URL
    retry_after: float | None = None


class DelayedEventsClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        guard: NetworkGuard,
        *,
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        # The session's resolver must come from the same guard (see netguard.py).
        self._session = session
        self._guard = guard
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def restart(self, cs_api_url: str, delay_id: str) -> CallResult:
        return await self._call(cs_api_url, delay_id, "restart")

    async def send(self, cs_api_url: str, delay_id: str) -> CallResult:
        return await self._call(cs_api_url, delay_id, "send")

    async def _call(self, cs_api_url: str, delay_id: str, action: str) -> CallResult:
        result = await self._request(cs_api_url, delay_id, action)
        DELAYED_EVENT_CALLS.labels(action, result.outcome.value).inc()
        return result

    async def _request(self, cs_api_url: str, delay_id: str, action: str) -> CallResult:
        url = f"{cs_api_url}{DELAYED_EVENTS_PATH}/{quote(delay_id, safe='')}/{action}"
        try:
            self._guard.check_host(urlsplit(cs_api_url).hostname or "")
            async with self._session.post(
                url, json={}, timeout=self._timeout, allow_redirects=False
            ) as resp:
                body = await read_capped(resp, MAX_BODY_BYTES)
                return classify(resp.status, resp.headers.get("Retry-After"), body)
        except REQUEST_FAILURES as exc:
            return CallResult(Outcome.RETRY, describe_failure(exc))


def classify(status: int, retry_after_header: str | None, body: bytes) -> CallResult:
    if status in (200, 204):
        return CallResult(Outcome.DONE, f"status {status}")
    if status == 404:
        return CallResult(Outcome.GONE, "status 404")
    if status == 429:
        wait = parse_retry_after(retry_after_header)
        if wait is None:
            wait = _retry_after_ms(body)
        return CallResult(Outcome.RETRY, "status 429", wait)
    return CallResult(Outcome.RETRY, f"status {status}")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _retry_after_ms(body: bytes) -> float | None:
    document = json_object(body)
    value = document.get("retry_after_ms") if document is not None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value) / 1000.0
