"""Small helpers for reading homeserver responses safely."""

from __future__ import annotations

import aiohttp


class BodyTooLarge(Exception):
    """The response body is larger than the caller accepts."""


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
