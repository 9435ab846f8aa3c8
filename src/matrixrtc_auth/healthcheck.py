"""``matrixrtc-auth healthcheck [URL]``: exit 0 when ``/healthz`` answers 200 within 2 s.

Meant for container ``HEALTHCHECK`` lines and systemd. Without a URL it asks
the service on this machine, at the port ``LIVEKIT_JWT_BIND`` (or the
deprecated ``LIVEKIT_JWT_PORT``) names.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from matrixrtc_auth.config import ConfigError, listen_address

TIMEOUT = 2.0


def default_url(env: Mapping[str, str]) -> str:
    host, port = listen_address(env)
    if host in (None, "", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def check(url: str, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """Whether ``url`` answered 200 within ``timeout`` seconds in all, and what happened.

    Socket timeouts bound each connect and read, not the whole exchange: a server
    that trickles its answer a byte at a time would keep resetting them. So the
    exchange runs in a daemon thread that is given up on at the deadline.
    """
    outcome: list[tuple[bool, str]] = []
    worker = threading.Thread(
        target=lambda: outcome.append(_exchange(url, timeout)), name="healthcheck", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if not outcome:
        return False, f"no complete answer within {timeout:g}s"
    return outcome[0]


def _exchange(url: str, timeout: float) -> tuple[bool, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False, f"not an http(s) URL: {url}"
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    started = time.monotonic()
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/healthz")
        # Each read from here on gets at most what is left of the deadline.
        connection.sock.settimeout(max(0.01, timeout - (time.monotonic() - started)))
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    if status != 200:
        return False, f"answered {status}"
    return True, "healthy"


def health_url(url: str) -> str:
    """``url`` itself if it names /healthz, else /healthz under it (a proxied prefix)."""
    parts = urlsplit(url)
    if parts.path.endswith("/healthz"):
        return url
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/healthz"))


def run_healthcheck(url: str | None, env: Mapping[str, str]) -> int:
    try:
        target = health_url(url) if url else default_url(env)
    except ConfigError as exc:
        print(f"matrixrtc-auth healthcheck: {exc}", file=sys.stderr)
        return 1
    healthy, detail = check(target)
    print(f"{target}: {detail}", file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1
