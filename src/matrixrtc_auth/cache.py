"""A small TTL cache whose misses are computed once per key, however many ask at once.

Discovery and the client-server API lookup share this shape: when a meeting
starts, many joins ask for the same homeserver at the same moment, and they
should cost one lookup. The lookup runs as its own task and stores its result
itself, so a result is kept even when every request that waited for it has
given up; its exception, if any, is retrieved so it is never reported as lost.
The cache is bounded: expired entries go first, then the oldest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MAX_ENTRIES = 10_000


class SharedTtlCache(Generic[K, V]):
    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: dict[K, tuple[float, V]] = {}
        self._pending: dict[K, asyncio.Task[tuple[V, float]]] = {}
        self._max_entries = max_entries
        self._clock = clock

    def cached(self, key: K) -> tuple[bool, V | None]:
        """(True, value) while ``key`` has an unexpired value, else (False, None)."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return False, None
        return True, entry[1]

    async def get(self, key: K, compute: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        """The cached value, or the result of ``compute()``: (value, seconds to keep it)."""
        hit, value = self.cached(key)
        if hit:
            return value  # type: ignore[return-value]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(compute())
            self._pending[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        # Shielded: one cancelled request must not cancel the lookup others share.
        result, _ = await asyncio.shield(task)
        return result

    def _settle(self, key: K, task: asyncio.Task[tuple[V, float]]) -> None:
        self._pending.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        value, ttl = task.result()
        if ttl > 0:
            self._store(key, value, ttl)

    def _store(self, key: K, value: V, ttl: float) -> None:
        now = self._clock()
        self._entries.pop(key, None)
        self._entries[key] = (now + ttl, value)
        if len(self._entries) > self._max_entries:
            for stale in [k for k, (expires, _) in self._entries.items() if expires <= now]:
                del self._entries[stale]
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]
