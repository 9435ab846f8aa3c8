"""One delegation job: a single task that owns one participant's delayed leave event.

The job is the only code that changes its state. Everything from outside
(webhook events, replacement, shutdown) arrives as a ``Signal`` on its queue;
its own activities (polling, restarting, sending) end by returning a
``Signal``; ``fsm.TRANSITIONS`` decides what each one means. Each live state
runs one activity task, and leaving the state cancels it, so a state's
timers never outlive it.

``signal()`` and ``stop()`` return at once and may be called any number of
times from the event loop; ``wait()`` waits for the task to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Protocol

from matrixrtc_auth.delegation.backoff import Backoff
from matrixrtc_auth.delegation.csapi import CsApiResolver
from matrixrtc_auth.delegation.delayed_events import CallResult, DelayedEventsClient, Outcome
from matrixrtc_auth.delegation.fsm import LIVE_STATES, Signal, State, next_state
from matrixrtc_auth.delegation.store import StoredJob
from matrixrtc_auth.logs import fields
from matrixrtc_auth.sfu.naming import LiveKitIdentity, LiveKitRoomAlias
from matrixrtc_auth.sfu.rooms import SfuError, SfuRooms

log = logging.getLogger(__name__)

MAX_WAIT_FOR_JOIN = 3600.0
RESTART_FRACTION = 0.8
MIN_SEND_WINDOW = 1.0
MAX_SEND_WINDOW = 3600.0


@dataclass(frozen=True)
class JobServices:
    rooms: SfuRooms
    delayed_events: DelayedEventsClient
    cs_api: CsApiResolver
    sanity_interval: float = 0.0  # seconds; 0 turns the sanity check off


class JobOwner(Protocol):
    async def persist(self, job: DelegationJob) -> None: ...

    async def finished(self, job: DelegationJob) -> None: ...


class DelegationJob:
    def __init__(self, spec: StoredJob, services: JobServices, owner: JobOwner) -> None:
        self.spec = spec
        self.state = State.WAITING
        self._services = services
        self._owner = owner
        self._queue: asyncio.Queue[Signal] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def delay(self) -> float:
        return self.spec.delay_timeout_ms / 1000.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"delegation {self.key}")

    def signal(self, signal: Signal) -> None:
        self._queue.put_nowait(signal)

    def stop(self) -> None:
        """Ends the job without sending its event (shutdown)."""
        self.signal(Signal.SHUTDOWN)

    def cancel(self) -> None:
        """Last resort at shutdown, for a job that did not stop in time."""
        if self._task is not None:
            self._task.cancel()

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    # -- the loop -------------------------------------------------------------

    async def _run(self) -> None:
        self._log(logging.INFO, "delegation job started")
        try:
            while self.state in LIVE_STATES:
                signal = await self._run_state()
                new_state = next_state(self.state, signal)
                assert new_state is not None  # _run_state returns only handled signals
                self._log(
                    logging.INFO,
                    "delegation job transition",
                    event=signal.value,
                    state=f"{self.state.value}->{new_state.value}",
                )
                self.state = new_state
        except Exception:
            log.exception("delegation job failed", extra=self._fields())
            self.state = State.ABORTED
        finally:
            await self._owner.finished(self)

    async def _run_state(self) -> Signal:
        """Runs the state's activity until it, or a queued signal, ends the state."""
        activity = asyncio.create_task(self._activity())
        getter: asyncio.Task[Signal] | None = None
        try:
            while True:
                getter = asyncio.create_task(self._queue.get())
                await asyncio.wait({activity, getter}, return_when=asyncio.FIRST_COMPLETED)
                # A queued signal first: it must not be lost to a finishing activity.
                if getter.done():
                    signal = getter.result()
                    if next_state(self.state, signal) is not None:
                        return signal
                    # Late or repeated webhooks are normal, hence DEBUG.
                    self._log(logging.DEBUG, "signal ignored", event=signal.value)
                    continue
                getter.cancel()
                return activity.result()
        finally:
            for task in (activity, getter):
                if task is not None and not task.done():
                    task.cancel()

    def _activity(self) -> Coroutine[Any, Any, Signal]:
        if self.state is State.WAITING:
            return self._wait_for_participant()
        if self.state is State.CONNECTED:
            if self._services.sanity_interval > 0:
                return _first_of(self._keep_restarting(), self._sanity_check())
            return self._keep_restarting()
        return self._send_leave()

    # -- activities -----------------------------------------------------------

    async def _wait_for_participant(self) -> Signal:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(MAX_WAIT_FOR_JOIN, self.delay)
        backoff = Backoff()
        while True:
            if await self._participant_present() is True:
                return Signal.FOUND
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Signal.WAIT_EXPIRED
            await asyncio.sleep(min(backoff.next_delay(), remaining))

    async def _keep_restarting(self) -> Signal:
        while True:
            outcome = await self._restart_until_deadline()
            if outcome is not None:
                return outcome
            await asyncio.sleep(RESTART_FRACTION * self.delay)

    async def _restart_until_deadline(self) -> Signal | None:
        """One restart, retried until the event's deadline; None when it worked."""
        try:
            outcome = await self._call_until(
                self._services.delayed_events.restart, self.spec.deadline(), "restart"
            )
        except _NoCsApi:
            return Signal.CS_API_MISSING
        if outcome is None:
            return Signal.RESTART_EXPIRED
        if outcome is Outcome.GONE:
            self._log(logging.INFO, "delayed event is gone (sent or cancelled)")
            return Signal.EVENT_GONE
        self.spec = replace(self.spec, last_restart_at=time.time())
        await self._owner.persist(self)
        self._log(logging.DEBUG, "delayed event restarted")
        return None

    async def _sanity_check(self) -> Signal:
        interval = self._services.sanity_interval
        while True:
            await asyncio.sleep(interval)
            if await self._participant_present() is False:
                self._log(logging.INFO, "participant gone from the SFU (sanity check)")
                return Signal.GONE

    async def _send_leave(self) -> Signal:
        window = min(max(self.spec.deadline() - time.time(), MIN_SEND_WINDOW), MAX_SEND_WINDOW)
        try:
            outcome = await self._call_until(
                self._services.delayed_events.send, time.time() + window, "send"
            )
        except _NoCsApi:
            return Signal.CS_API_MISSING
        if outcome is None:
            return Signal.SEND_EXPIRED
        if outcome is Outcome.GONE:
            self._log(logging.INFO, "leave event already sent or cancelled")
        else:
            self._log(logging.INFO, "leave event sent")
        return Signal.SENT

    async def _call_until(
        self,
        call: Callable[[str, str], Awaitable[CallResult]],
        deadline: float,
        what: str,
    ) -> Outcome | None:
        """DONE or GONE from ``call``, retried with backoff; None once ``deadline`` passes.

        ``deadline`` is in seconds since the epoch. The client-server API is looked
        up before each try (the lookup is cached), raising ``_NoCsApi`` if unknown.
        """
        backoff = Backoff()
        while True:
            url = await self._services.cs_api.base_url(self.spec.server_name)
            if url is None:
                raise _NoCsApi
            result = await call(url, self.spec.delay_id)
            if result.outcome is not Outcome.RETRY:
                return result.outcome
            wait = max(result.retry_after or 0.0, backoff.next_delay())
            if time.time() + wait >= deadline:
                self._log(
                    logging.WARNING, f"{what} failed until the deadline", cause=result.detail
                )
                return None
            self._log(logging.WARNING, f"{what} failed; retrying", cause=result.detail)
            await asyncio.sleep(wait)

    async def _participant_present(self) -> bool | None:
        """True/False from GetParticipant; None when the SFU could not say."""
        try:
            return await self._services.rooms.participant_present(
                LiveKitRoomAlias(self.spec.room), LiveKitIdentity(self.spec.identity)
            )
        except SfuError as exc:
            self._log(logging.DEBUG, "GetParticipant failed", cause=exc.cause)
            return None

    # -- logging --------------------------------------------------------------

    def _fields(self, **extra: Any) -> dict[str, Any]:
        return fields(
            room=self.spec.room,
            lk_identity=self.spec.identity,
            matrix_id=self.spec.user_id,
            **extra,
        )

    def _log(self, level: int, message: str, **extra: Any) -> None:
        log.log(level, message, extra=self._fields(**extra))


class _NoCsApi(Exception):
    """The homeserver's client-server API cannot be found."""


async def _first_of(*activities: Awaitable[Signal]) -> Signal:
    """The signal of whichever activity ends first; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in activities]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
