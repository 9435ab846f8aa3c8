"""The shared TTL cache: one computation per key at a time, kept as long as it says."""

from __future__ import annotations

import asyncio
import gc

import pytest

from matrixrtc_auth.cache import SharedTtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_misses_share_one_computation() -> None:
    cache: SharedTtlCache[str, int] = SharedTtlCache()
    calls = 0

    async def compute() -> tuple[int, float]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return 7, 60.0

    assert await asyncio.gather(*(cache.get("k", compute) for _ in range(20))) == [7] * 20
    assert calls == 1
    assert await cache.get("k", compute) == 7
    assert calls == 1


async def test_values_expire_after_their_ttl() -> None:
    clock = Clock()
    cache: SharedTtlCache[str, str] = SharedTtlCache(clock=clock)
    answers = iter(["first", "second"])

    async def compute() -> tuple[str, float]:
        return next(answers), 10.0

    assert await cache.get("k", compute) == "first"
    clock.now = 9.9
    assert await cache.get("k", compute) == "first"
    clock.now = 10.0
    assert await cache.get("k", compute) == "second"


async def test_result_is_kept_when_every_waiter_gave_up() -> None:
    cache: SharedTtlCache[str, str] = SharedTtlCache()
    release = asyncio.Event()

    async def compute() -> tuple[str, float]:
        await release.wait()
        return "late", 60.0

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await cache.get("k", compute)
    release.set()
    await asyncio.sleep(0.01)
    assert cache.cached("k") == (True, "late")


async def test_failures_are_not_cached_and_not_reported_as_lost(recwarn) -> None:
    cache: SharedTtlCache[str, str] = SharedTtlCache()

    async def fail() -> tuple[str, float]:
        raise OSError("boom")

    with pytest.raises(OSError):
        await cache.get("k", fail)
    assert cache.cached("k") == (False, None)
    gc.collect()
    assert not [w for w in recwarn if "never retrieved" in str(w.message)]


async def test_zero_ttl_is_not_stored() -> None:
    cache: SharedTtlCache[str, str] = SharedTtlCache()

    async def compute() -> tuple[str, float]:
        return "x", 0.0

    assert await cache.get("k", compute) == "x"
    assert cache.cached("k") == (False, None)


async def test_size_is_bounded_oldest_first() -> None:
    clock = Clock()
    cache: SharedTtlCache[int, int] = SharedTtlCache(max_entries=3, clock=clock)
    for key in range(5):

        async def compute(key: int = key) -> tuple[int, float]:
            return key, 100.0

        await cache.get(key, compute)
    assert [cache.cached(k)[0] for k in range(5)] == [False, False, True, True, True]
