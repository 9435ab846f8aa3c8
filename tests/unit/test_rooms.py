"""Room calls against the fake SFU: retries only where a retry can help."""

from __future__ import annotations

import aiohttp
import pytest

from matrixrtc_auth.sfu.naming import LiveKitIdentity, LiveKitRoomAlias
from matrixrtc_auth.sfu.rooms import SfuError, SfuRooms
from tests.support.fake_sfu import FakeSfu

ROOM = LiveKitRoomAlias("room-alias")


@pytest.fixture
async def rooms(fake_sfu: FakeSfu):
    async with aiohttp.ClientSession() as session:
        yield SfuRooms(session, fake_sfu.url, fake_sfu.api_key, fake_sfu.api_secret)


async def test_create_room_retries_a_server_error_once(rooms: SfuRooms, fake_sfu: FakeSfu) -> None:
    fake_sfu.fail_next("CreateRoom", status=500)
    await rooms.ensure_room(ROOM)
    assert len(fake_sfu.calls("CreateRoom")) == 2
    assert ROOM in fake_sfu.room_names()


async def test_create_room_does_not_retry_a_refusal(rooms: SfuRooms, fake_sfu: FakeSfu) -> None:
    fake_sfu.fail_next("CreateRoom", status=403)
    with pytest.raises(SfuError) as info:
        await rooms.ensure_room(ROOM)
    assert info.value.refused
    assert len(fake_sfu.calls("CreateRoom")) == 1


async def test_participant_presence(rooms: SfuRooms, fake_sfu: FakeSfu) -> None:
    identity = LiveKitIdentity("someone")
    fake_sfu.add_participant(ROOM, identity)
    assert await rooms.participant_present(ROOM, identity) is True
    fake_sfu.remove_participant(ROOM, identity)
    assert await rooms.participant_present(ROOM, identity) is False
