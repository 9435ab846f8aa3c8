"""The job manager: replacement, ownership of store keys and the per-user cap."""

from __future__ import annotations

import asyncio

import pytest

from matrixrtc_auth.delegation.fsm import State
from matrixrtc_auth.delegation.job import JobServices
from matrixrtc_auth.delegation.manager import MAX_JOBS_PER_USER, JobManager, TooManyJobs
from matrixrtc_auth.delegation.store import StoredJob


class SlowStore:
    """A store whose saves take a while, recording what it was asked."""

    def __init__(self) -> None:
        self.saved: list[str] = []
        self.deleted: list[str] = []

    async def save(self, job: StoredJob) -> bool:
        await asyncio.sleep(0.05)
        self.saved.append(job.delay_id)
        return True

    async def delete(self, key: str) -> None:
        self.deleted.append(key)

    async def load_all(self) -> list[StoredJob]:
        return []


class NeverCalled:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"unexpected call: {name}")


def spec(delay_id: str, identity: str = "id", user: str = "@u:x") -> StoredJob:
    return StoredJob(
        room="room",
        identity=identity,
        delay_id=delay_id,
        delay_timeout_ms=60_000,
        server_name="x",
        user_id=user,
        created_at=0.0,
    )


class WaitingForever:
    """SFU stand-in: the participant never shows up, GetParticipant never fails."""

    async def participant_present(self, *args: object) -> bool:
        return False


def manager(store: SlowStore) -> JobManager:
    services = JobServices(WaitingForever(), NeverCalled(), NeverCalled())  # type: ignore[arg-type]
    return JobManager(services, store)


async def test_the_new_job_owns_the_key_while_it_is_being_saved() -> None:
    store = SlowStore()
    jobs = manager(store)
    await jobs.delegate(spec("old"))
    replacing = asyncio.create_task(jobs.delegate(spec("new")))
    await asyncio.sleep(0.01)  # the new save is in flight; the old job ends meanwhile
    await asyncio.sleep(0.1)
    await replacing
    assert store.saved == ["old", "new"]
    assert store.deleted == []
    assert jobs.counts() == {State.WAITING: 1}
    await jobs.close()


async def test_one_user_may_not_run_unlimited_jobs() -> None:
    store = SlowStore()
    jobs = manager(store)
    for n in range(MAX_JOBS_PER_USER):
        await jobs.delegate(spec(f"d{n}", identity=f"id{n}"))
    with pytest.raises(TooManyJobs):
        await jobs.delegate(spec("one-more", identity="another"))
    await jobs.delegate(spec("d0-again", identity="id0"))  # replacing is always allowed
    await jobs.delegate(spec("x", identity="other", user="@other:x"))
    await jobs.close()
