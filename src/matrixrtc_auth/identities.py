"""Who holds each hashed LiveKit identity the service issued (for duplicate checks).

``/get_token`` identities are hashes, so the SFU's participant list alone does
not say which user and device a participant is. The service remembers each
identity it issues for a little longer than the token lives: in memory, or in
Redis when ``LIVEKIT_REDIS_URL`` is set, so that every replica sees what the
others issued. The registry never fails a request: when Redis is unavailable
a write is logged and skipped, a read returns what it can.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from matrixrtc_auth.logs import fields
from matrixrtc_auth.sfu.tokens import TOKEN_LIFETIME

log = logging.getLogger(__name__)

# A token can be used until it expires; keep its owner a little longer.
RETENTION_SECONDS = int(TOKEN_LIFETIME.total_seconds()) + 300
MEMORY_MAX_ENTRIES = 200_000
REDIS_KEY_PREFIX = "matrixrtc-auth:identity:"


@dataclass(frozen=True)
class Owner:
    user_id: str
    device_id: str


class IdentityRegistry(Protocol):
    async def remember(self, identity: str, owner: Owner) -> None: ...

    async def lookup(self, identities: list[str]) -> dict[str, Owner]: ...


class MemoryIdentityRegistry:
    """Per-process registry; oldest entries go first when it is full."""

    def __init__(self, *, max_entries: int = MEMORY_MAX_ENTRIES) -> None:
        self._entries: OrderedDict[str, tuple[float, Owner]] = OrderedDict()
        self._max_entries = max_entries

    async def remember(self, identity: str, owner: Owner) -> None:
        self._entries[identity] = (time.monotonic() + RETENTION_SECONDS, owner)
        self._entries.move_to_end(identity)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def lookup(self, identities: list[str]) -> dict[str, Owner]:
        now = time.monotonic()
        found: dict[str, Owner] = {}
        for identity in identities:
            entry = self._entries.get(identity)
            if entry is not None and entry[0] > now:
                found[identity] = entry[1]
        return found


class RedisIdentityRegistry:
    """Registry shared by replicas; entries expire in Redis itself."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def remember(self, identity: str, owner: Owner) -> None:
        value = json.dumps({"user_id": owner.user_id, "device_id": owner.device_id})
        try:
            await self._redis.set(REDIS_KEY_PREFIX + identity, value, ex=RETENTION_SECONDS)
        except (RedisError, OSError) as exc:
            log.warning(
                "could not record an issued identity in Redis",
                extra=fields(lk_identity=identity, cause=type(exc).__name__),
            )

    async def lookup(self, identities: list[str]) -> dict[str, Owner]:
        if not identities:
            return {}
        try:
            values = await self._redis.mget([REDIS_KEY_PREFIX + i for i in identities])
        except (RedisError, OSError) as exc:
            log.warning(
                "could not read issued identities from Redis",
                extra=fields(cause=type(exc).__name__),
            )
            return {}
        found: dict[str, Owner] = {}
        for identity, value in zip(identities, values, strict=True):
            owner = _decode(value)
            if owner is not None:
                found[identity] = owner
        return found


def _decode(value: object) -> Owner | None:
    if not isinstance(value, (bytes, str)):
        return None
    try:
        data = json.loads(value)
        return Owner(str(data["user_id"]), str(data["device_id"]))
    except (ValueError, KeyError, TypeError):
        return None
