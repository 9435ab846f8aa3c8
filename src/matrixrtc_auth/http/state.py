"""Typed keys for what the application holds (set up in ``app.py``)."""

from __future__ import annotations

from aiohttp import web

from matrixrtc_auth.config import IPNetwork
from matrixrtc_auth.issuer import TokenIssuer

ISSUER = web.AppKey("issuer", TokenIssuer)
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[IPNetwork, ...])
