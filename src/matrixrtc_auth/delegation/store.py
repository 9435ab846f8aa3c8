"""Where delegation jobs are kept across restarts (PROTOCOL.md 8.4).

A store is a small protocol: ``save`` (create or update), ``delete`` and
``load_all``. The manager makes every call, and only for the job that
currently owns a key (see ``manager.py``), so no locking is needed.
Without Redis the store is a no-op: jobs live only in memory. With Redis each
job is one JSON value; failures while serving are logged and survived (the
job goes on in memory and is saved again at its next restart), failures at
start stop the service.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from matrixrtc_auth.logs import fields

log = logging.getLogger(__name__)

KEY_PREFIX = "matrixrtc-auth:job:"
EXPIRY_MARGIN = 3600


@dataclass(frozen=True)
class StoredJob:
    room: str
    identity: str
    delay_id: str
    delay_timeout_ms: int
    server_name: str
    user_id: str
    created_at: float  # seconds since the epoch
    last_restart_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.room}|{self.identity}"

    def deadline(self) -> float:
        """When the homeserver sends the event by itself, if nobody restarts it."""
        reference = self.last_restart_at or self.created_at
        return reference + self.delay_timeout_ms / 1000.0


class JobStore(Protocol):
    async def save(self, job: StoredJob) -> bool:
        """True when the job is safely stored."""
        ...

    async def delete(self, key: str) -> None: ...

    async def load_all(self) -> list[StoredJob]: ...


class MemoryJobStore:
    """Keeps nothing: without Redis a restart forgets the jobs (warned at start)."""

    async def save(self, job: StoredJob) -> bool:
        return True

    async def delete(self, key: str) -> None:
        return None

    async def load_all(self) -> list[StoredJob]:
        return []


class RedisJobStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def save(self, job: StoredJob) -> bool:
        # Kept an hour past the event's deadline: a job nobody deletes (a crash at
        # the wrong moment) must not stay in Redis forever.
        expiry = max(1, int(job.deadline() - time.time())) + EXPIRY_MARGIN
        try:
            await self._redis.set(KEY_PREFIX + job.key, json.dumps(asdict(job)), ex=expiry)
        except (RedisError, OSError) as exc:
            log.warning(
                "could not save a delegation job in Redis",
                extra=fields(room=job.room, lk_identity=job.identity, cause=type(exc).__name__),
            )
            return False
        return True

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(KEY_PREFIX + key)
        except (RedisError, OSError) as exc:
            log.warning(
                "could not delete a delegation job from Redis",
                extra=fields(cause=type(exc).__name__),
            )

    async def load_all(self) -> list[StoredJob]:
        """All stored jobs; raises on Redis errors (the service cannot start then)."""
        jobs: list[StoredJob] = []
        async for key in self._redis.scan_iter(match=KEY_PREFIX + "*", count=500):
            raw = await self._redis.get(key)
            job = _decode(raw)
            if job is None:
                log.warning(
                    "skipping an unreadable stored job", extra=fields(cause=_safe_key(key))
                )
                continue
            jobs.append(job)
        return jobs


def _decode(raw: object) -> StoredJob | None:
    if not isinstance(raw, (bytes, str)):
        return None
    try:
        data = json.loads(raw)
        return StoredJob(
            room=str(data["room"]),
            identity=str(data["identity"]),
            delay_id=str(data["delay_id"]),
            delay_timeout_ms=int(data["delay_timeout_ms"]),
            server_name=str(data["server_name"]),
            user_id=str(data["user_id"]),
            created_at=float(data["created_at"]),
            last_restart_at=(
                None if data.get("last_restart_at") is None else float(data["last_restart_at"])
            ),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _safe_key(key: object) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
