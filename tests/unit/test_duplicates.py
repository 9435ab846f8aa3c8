"""Duplicate checks: reading owners back from identities, and the registry's memory."""

from __future__ import annotations

from matrixrtc_auth.duplicates import legacy_owner
from matrixrtc_auth.identities import MemoryIdentityRegistry, Owner


def test_legacy_identities_name_their_owner() -> None:
    assert legacy_owner("@alice:example.com:DEV") == Owner("@alice:example.com", "DEV")
    assert legacy_owner("@alice:example.com:8448:DEV") == Owner("@alice:example.com:8448", "DEV")
    assert legacy_owner("vYVt8NUMTb0rAawkFqilcAtxKgY26U3Ab7R9INviNnU") is None
    assert legacy_owner("@alice:") is None


async def test_memory_registry_remembers_and_forgets_the_oldest() -> None:
    registry = MemoryIdentityRegistry(max_entries=2)
    await registry.remember("a", Owner("@a:x", "A"))
    await registry.remember("b", Owner("@b:x", "B"))
    await registry.remember("c", Owner("@c:x", "C"))
    assert await registry.lookup(["a", "b", "c", "d"]) == {
        "b": Owner("@b:x", "B"),
        "c": Owner("@c:x", "C"),
    }
