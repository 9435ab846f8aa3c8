"""Keeps the delegation jobs, one per (LiveKit room, identity), and routes signals to them.

A new delegation for a pair replaces the job that pair had (the old one ends
without sending). Only the job the manager currently holds for a key may write
or delete that key in the store, so a replaced job finishing late can never
erase or overwrite its successor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from matrixrtc_auth.delegation.fsm import Signal, State
from matrixrtc_auth.delegation.job import DelegationJob, JobServices
from matrixrtc_auth.delegation.store import JobStore, StoredJob
from matrixrtc_auth.logs import fields
from matrixrtc_auth.metrics import JOBS_FINISHED

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
# Member IDs are the client's choice: without a cap one OpenID token could make
# the service run any number of jobs.
MAX_JOBS_PER_USER = 32


class TooManyJobs(Exception):
    """The user already has the most delegation jobs one user may have."""


class JobManager:
    def __init__(self, services: JobServices, store: JobStore) -> None:
        self._services = services
        self._store = store
        self._jobs: dict[str, DelegationJob] = {}

    @property
    def services(self) -> JobServices:
        return self._services

    async def delegate(self, spec: StoredJob) -> None:
        """Starts a job for ``spec``, stored before this returns (see PROTOCOL.md 8.4).

        The new job takes the key before the save is awaited, so that a replaced
        job finishing or restarting meanwhile can no longer write or delete it.
        Raises ``TooManyJobs`` when the user already has ``MAX_JOBS_PER_USER``.
        """
        mine = sum(
            1
            for job in self._jobs.values()
            if job.spec.user_id == spec.user_id and job.key != spec.key
        )
        if mine >= MAX_JOBS_PER_USER:
            raise TooManyJobs(spec.user_id)
        job = self._install(spec)
        if not await self._store.save(spec):
            log.warning(
                "delegation job kept in memory only until its next save",
                extra=fields(room=spec.room, lk_identity=spec.identity),
            )
        job.start()

    async def restore(self) -> int:
        """Starts the stored jobs whose events are still pending; returns how many."""
        now = time.time()
        restored = 0
        for spec in await self._store.load_all():
            if spec.deadline() <= now:
                log.info(
                    "dropping an expired stored job",
                    extra=fields(room=spec.room, lk_identity=spec.identity),
                )
                await self._store.delete(spec.key)
                continue
            self._install(spec).start()
            restored += 1
        return restored

    def on_participant_event(self, room: str, identity: str, signal: Signal) -> bool:
        """Routes a webhook event; False when no job has that participant."""
        job = self._jobs.get(f"{room}|{identity}")
        if job is None:
            return False
        job.signal(signal)
        return True

    def counts(self) -> Counter[State]:
        return Counter(job.state for job in self._jobs.values())

    async def close(self) -> None:
        """Stops every job without sending (they stay stored for the next start)."""
        jobs = list(self._jobs.values())
        for job in jobs:
            job.stop()
        if jobs:
            await asyncio.wait(
                [asyncio.ensure_future(job.wait()) for job in jobs], timeout=CLOSE_TIMEOUT
            )
            for job in jobs:
                job.cancel()

    # -- JobOwner -------------------------------------------------------------

    async def persist(self, job: DelegationJob) -> None:
        if self._jobs.get(job.key) is job:
            await self._store.save(job.spec)

    async def finished(self, job: DelegationJob) -> None:
        JOBS_FINISHED.labels(job.state.value).inc()
        if self._jobs.get(job.key) is not job:
            return  # replaced: the key belongs to the successor now
        del self._jobs[job.key]
        if job.state in (State.DONE, State.ABORTED):
            await self._store.delete(job.key)

    def _install(self, spec: StoredJob) -> DelegationJob:
        """Makes a (not yet started) job the owner of its key, replacing any old one."""
        old = self._jobs.get(spec.key)
        job = DelegationJob(spec, self._services, self)
        self._jobs[spec.key] = job
        if old is not None:
            old.signal(Signal.REPLACED)
        return job
