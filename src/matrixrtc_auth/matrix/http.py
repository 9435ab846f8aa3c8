"""Small helpers for reading homeserver responses safely."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from matrixrtc_auth.netguard import BlockedAddress


class BodyTooLarge(Exception):
    """The response body is larger than the caller accepts."""


# What can go wrong asking a homeserver something, short of getting an answer.
# ValueError covers names the IDNA codec refuses and malformed URLs or Locations.
REQUEST_FAILURES = (aiohttp.ClientError, TimeoutError, ValueError, BlockedAddress, BodyTooLarge)


def describe_failure(exc: BaseException) -> str:
    """A short cause for the log line; never a URL (it may carry a token)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or "invalid"
        return f"TLS certificate rejected: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, BlockedAddress):
        exc = exc.os_error
    if isinstance(exc, (BlockedAddress, BodyTooLarge)):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.strerror:
        return f"cannot connect: {exc.os_error.strerror}"
    return type(exc).__name__


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or ``BodyTooLarge`` once more than ``limit`` bytes arrive."""
    length = resp.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"{length} bytes announced")
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
    return b"".join(chunks)


def json_object(body: bytes | str) -> dict[str, Any] | None:
    """The JSON object in ``body``, or None for anything else.

    Never raises: a hostile server's answer may be invalid UTF-8, not JSON, or
    nested deeply enough to exhaust the parser's recursion limit.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
