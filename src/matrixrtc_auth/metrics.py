"""Prometheus metrics: what the service counts, and the listener that serves them.

The counters are always kept (they are cheap); they are served only when
``LIVEKIT_METRICS_BIND`` names a listener of its own, so that the metrics
never show through the public reverse proxy. Labels carry endpoints,
statuses, outcomes and states: never user IDs, rooms or tokens, which would
leak and would make the series unbounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.core import Metric

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "matrixrtc_auth_requests",
    "HTTP requests answered, by endpoint and status.",
    ["endpoint", "status"],
)
REQUEST_LATENCY = Histogram(
    "matrixrtc_auth_request_duration_seconds",
    "Time to answer HTTP requests, by endpoint.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
VERIFICATIONS = Counter(
    "matrixrtc_auth_homeserver_verifications",
    "OpenID verifications with homeservers, by outcome (verified, refused).",
    ["outcome"],
)
VERIFICATION_LATENCY = Histogram(
    "matrixrtc_auth_homeserver_verification_duration_seconds",
    "Time homeservers took to answer OpenID verifications (discovery included).",
    buckets=_LATENCY_BUCKETS,
)
DISCOVERY_CACHE = Counter(
    "matrixrtc_auth_discovery_cache",
    "Server discovery lookups answered from the cache (hit) or not (miss).",
    ["result"],
)
SFU_CALLS = Counter(
    "matrixrtc_auth_sfu_calls",
    "LiveKit RoomService calls, by method and outcome (ok, error).",
    ["method", "outcome"],
)
SFU_LATENCY = Histogram(
    "matrixrtc_auth_sfu_call_duration_seconds",
    "Time LiveKit RoomService calls took, by method.",
    ["method"],
    buckets=_LATENCY_BUCKETS,
)
DELAYED_EVENT_CALLS = Counter(
    "matrixrtc_auth_delayed_event_calls",
    "Delayed-event calls to homeservers, by action (restart, send) and outcome.",
    ["action", "outcome"],
)


JOBS_FINISHED = Counter(
    "matrixrtc_auth_delegation_jobs_finished",
    "Delegation jobs that ended, by final state (done, aborted, replaced, stopped).",
    ["state"],
)


class JobStateCollector(Collector):
    """Running delegation jobs by state, read from the job manager at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]], states: Iterable[str]) -> None:
        self._counts = counts
        self._states = tuple(states)

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "matrixrtc_auth_delegation_jobs", "Running delegation jobs by state.", labels=["state"]
        )
        counts = self._counts()
        for state in self._states:
            family.add_metric([state], counts.get(state, 0))
        yield family


async def handle_metrics(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", handle_metrics)
    return app
