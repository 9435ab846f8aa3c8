"""Room management on the LiveKit SFU through the official RoomService client.

One long-lived ``LiveKitAPI`` on a session owned by the application; each call
has its own deadline so that a slow or dead SFU turns into a prompt 500 rather
than a hanging join.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from livekit import api
from livekit.protocol.room import (
    CreateRoomRequest,
    ListParticipantsRequest,
    ListRoomsRequest,
    RoomParticipantIdentity,
)

from matrixrtc_auth.cache import SharedTtlCache
from matrixrtc_auth.logs import fields
from matrixrtc_auth.metrics import SFU_CALLS, SFU_LATENCY
from matrixrtc_auth.sfu.naming import LiveKitIdentity, LiveKitRoomAlias

log = logging.getLogger(__name__)
T = TypeVar("T")

SFU_CALL_TIMEOUT = 2.0
# Room parameters of PROTOCOL.md section 5: empty rooms linger 5 minutes, a
# departed participant's slot 20 seconds; no participant cap.
EMPTY_TIMEOUT_S = 300
DEPARTURE_TIMEOUT_S = 20
MAX_PARTICIPANTS = 0


class SfuError(Exception):
    """The SFU could not be reached or refused the call; ``cause`` says which."""

    def __init__(self, cause: str, *, not_found: bool = False, refused: bool = False) -> None:
        super().__init__(cause)
        self.cause = cause
        # The SFU answered that the room or participant does not exist.
        self.not_found = not_found
        # The SFU answered a 4xx: asking again will not help.
        self.refused = refused


class SfuRooms:
    """Creates rooms and checks that they exist."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float = SFU_CALL_TIMEOUT,
    ) -> None:
        # Key, secret and URL always passed explicitly: the SDK would otherwise fall
        # back to LIVEKIT_API_* variables, a second configuration source.
        self._api = api.LiveKitAPI(url, api_key, api_secret, session=session, failover=False)
        self._timeout = timeout
        # Only shares calls in flight: a TTL of 0 keeps nothing once CreateRoom answered.
        self._creating: SharedTtlCache[LiveKitRoomAlias, None] = SharedTtlCache()

    async def ensure_room(self, alias: LiveKitRoomAlias) -> None:
        """Creates the room unless it exists (CreateRoom is idempotent); one retry.

        Concurrent calls for one room share a single CreateRoom: when a meeting
        starts, everybody asks at once.
        """
        await self._creating.get(alias, lambda: self._create_once(alias))

    async def _create_once(self, alias: LiveKitRoomAlias) -> tuple[None, float]:
        await self._create(alias)
        return None, 0.0

    async def _create(self, alias: LiveKitRoomAlias) -> None:
        request = CreateRoomRequest(
            name=alias,
            empty_timeout=EMPTY_TIMEOUT_S,
            departure_timeout=DEPARTURE_TIMEOUT_S,
            max_participants=MAX_PARTICIPANTS,
        )
        try:
            await self._call("CreateRoom", self._api.room.create_room(request))
        except SfuError as first:
            if first.refused:
                raise
            # A pooled connection the SFU already closed fails the first attempt;
            # aiohttp drops it, so the retry goes out on another connection.
            log.info(
                "CreateRoom failed, retrying once", extra=fields(room=alias, cause=first.cause)
            )
            await self._call("CreateRoom", self._api.room.create_room(request))

    async def room_exists(self, alias: LiveKitRoomAlias) -> bool:
        response = await self._call(
            "ListRooms", self._api.room.list_rooms(ListRoomsRequest(names=[alias]))
        )
        return any(room.name == alias for room in response.rooms)

    async def list_participants(self, alias: LiveKitRoomAlias) -> list[str]:
        """Identities of the room's participants (needs the roomAdmin grant for it)."""
        response = await self._call(
            "ListParticipants",
            self._api.room.list_participants(ListParticipantsRequest(room=alias)),
        )
        return [participant.identity for participant in response.participants]

    async def participant_present(
        self, alias: LiveKitRoomAlias, identity: LiveKitIdentity
    ) -> bool:
        """Whether the participant is in the room; ``SfuError`` when the SFU cannot say."""
        request = RoomParticipantIdentity(room=alias, identity=identity)
        try:
            await self._call("GetParticipant", self._api.room.get_participant(request))
        except SfuError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def _call(self, method: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        outcome = "error"
        try:
            async with asyncio.timeout(self._timeout):
                result = await call
            outcome = "ok"
            return result
        except TimeoutError:
            raise SfuError(f"{method}: no answer within {self._timeout:g}s") from None
        except api.ServerError as exc:
            not_found = exc.status == 404 or exc.code == api.ServerErrorCode.NOT_FOUND
            outcome = "not_found" if not_found else "error"
            raise SfuError(
                f"{method}: SFU answered {exc.status} {exc.code}",
                not_found=not_found,
                refused=400 <= exc.status < 500,
            ) from None
        except aiohttp.ClientError as exc:
            raise SfuError(f"{method}: {type(exc).__name__}: {_describe(exc)}") from None
        finally:
            SFU_CALLS.labels(method, outcome).inc()
            SFU_LATENCY.labels(method).observe(time.perf_counter() - started)


def _describe(exc: aiohttp.ClientError) -> str:
    # str() of some aiohttp errors embeds the request URL; the SFU URL carries no
    # credentials, but keep the line short and free of query strings anyway.
    text = str(exc).split("?", 1)[0]
    return text[:200]
