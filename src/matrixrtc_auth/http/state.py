"""Typed keys for what the application holds (set up in ``app.py``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from matrixrtc_auth.config import IPNetwork
from matrixrtc_auth.delegation.manager import JobManager
from matrixrtc_auth.issuer import TokenIssuer
from matrixrtc_auth.sfu.webhooks import WebhookVerifier

ISSUER = web.AppKey("issuer", TokenIssuer)
JOBS = web.AppKey("jobs", JobManager)
WEBHOOKS = web.AppKey("webhooks", WebhookVerifier)
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[IPNetwork, ...])
# Set once shutdown begins: requests still arriving are answered 503.
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)
