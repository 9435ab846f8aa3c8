"""Tests of the test fakes themselves: the fake SFU checks tokens like LiveKit, the fake
homeserver answers like Synapse, and both record what they saw."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import jwt
import pytest
from google.protobuf.message import Message
from livekit import api
from livekit.protocol import room as room_pb
from livekit.protocol.models import ParticipantInfo

from tests.support import tls
from tests.support.fake_homeserver import REDACTED, USERINFO_PATH, FakeHomeserver
from tests.support.fake_sfu import FakeSfu


def _token(sfu: FakeSfu, video: dict[str, Any], **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": sfu.api_key, "sub": "", "nbf": now, "exp": now + 600}
    payload.update(claims)
    payload["video"] = video
    return jwt.encode(payload, sfu.api_secret, algorithm="HS256")


def _twirp(sfu: FakeSfu, method: str, message: Message, token: str | None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/protobuf"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"{sfu.http_url}/twirp/livekit.RoomService/{method}",
        data=message.SerializeToString(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def test_fake_sfu_serves_the_official_client(fake_sfu: FakeSfu) -> None:
    lkapi = api.LiveKitAPI(fake_sfu.url, fake_sfu.api_key, fake_sfu.api_secret, failover=False)
    try:
        created = await lkapi.room.create_room(
            room_pb.CreateRoomRequest(
                name="call", empty_timeout=300, departure_timeout=20, max_participants=0
            )
        )
        again = await lkapi.room.create_room(room_pb.CreateRoomRequest(name="call"))
        fake_sfu.add_participant("call", "@alice:example.com:DEV")
        listed = await lkapi.room.list_rooms(room_pb.ListRoomsRequest(names=["call", "other"]))
        everyone = await lkapi.room.list_participants(room_pb.ListParticipantsRequest(room="call"))
        alice = await lkapi.room.get_participant(
            room_pb.RoomParticipantIdentity(room="call", identity="@alice:example.com:DEV")
        )
        with pytest.raises(api.TwirpError) as missing:
            await lkapi.room.get_participant(
                room_pb.RoomParticipantIdentity(room="call", identity="@bob:example.com:DEV")
            )
        await lkapi.room.delete_room(room_pb.DeleteRoomRequest(room="call"))
    finally:
        await lkapi.aclose()

    assert created.name == "call" and created.empty_timeout == 300
    assert again.sid == created.sid
    assert [r.name for r in listed.rooms] == ["call"]
    assert listed.rooms[0].num_participants == 1
    assert [p.identity for p in everyone.participants] == ["@alice:example.com:DEV"]
    assert isinstance(alice, ParticipantInfo) and alice.identity == "@alice:example.com:DEV"
    assert missing.value.status == 404 and missing.value.code == "not_found"
    assert fake_sfu.room_names() == set()

    creates = fake_sfu.calls("CreateRoom")
    assert [c.status for c in creates] == [200, 200]
    first = creates[0].request
    assert isinstance(first, room_pb.CreateRoomRequest)
    assert (first.empty_timeout, first.departure_timeout, first.max_participants) == (300, 20, 0)
    assert creates[0].claims["iss"] == fake_sfu.api_key
    assert creates[0].claims["video"]["roomCreate"] is True
    assert [c.method for c in fake_sfu.calls()] == [
        "CreateRoom",
        "CreateRoom",
        "ListRooms",
        "ListParticipants",
        "GetParticipant",
        "GetParticipant",
        "DeleteRoom",
    ]


async def test_fake_sfu_refuses_token_signed_with_wrong_secret(fake_sfu: FakeSfu) -> None:
    wrong = "another-secret-that-is-long-enough-0123456789"
    lkapi = api.LiveKitAPI(fake_sfu.url, fake_sfu.api_key, wrong, failover=False)
    try:
        with pytest.raises(api.TwirpError) as refused:
            await lkapi.room.create_room(room_pb.CreateRoomRequest(name="call"))
    finally:
        await lkapi.aclose()
    assert refused.value.status == 401
    assert refused.value.code == "unauthenticated"
    assert fake_sfu.room_names() == set()
    assert [c.status for c in fake_sfu.calls("CreateRoom")] == [401]


async def test_fake_sfu_refuses_unknown_api_key(fake_sfu: FakeSfu) -> None:
    lkapi = api.LiveKitAPI(fake_sfu.url, "otherkey", fake_sfu.api_secret, failover=False)
    try:
        with pytest.raises(api.TwirpError) as refused:
            await lkapi.room.list_rooms(room_pb.ListRoomsRequest())
    finally:
        await lkapi.aclose()
    assert (refused.value.status, refused.value.code) == (401, "unauthenticated")


def test_fake_sfu_refuses_missing_expired_and_exp_less_tokens(fake_sfu: FakeSfu) -> None:
    request = room_pb.ListRoomsRequest()
    grant = {"roomList": True}
    past = int(time.time()) - 3600
    tokens = {
        "missing": None,
        "expired": _token(fake_sfu, grant, nbf=past - 60, exp=past),
        "no exp": jwt.encode(
            {"iss": fake_sfu.api_key, "video": grant}, fake_sfu.api_secret, algorithm="HS256"
        ),
        "garbage": "not-a-jwt",
    }
    for label, token in tokens.items():
        status, body = _twirp(fake_sfu, "ListRooms", request, token)
        assert status == 401, label
        assert json.loads(body)["code"] == "unauthenticated", label
    status, _ = _twirp(fake_sfu, "ListRooms", request, _token(fake_sfu, grant))
    assert status == 200


def test_fake_sfu_refuses_missing_grant(fake_sfu: FakeSfu) -> None:
    fake_sfu.add_room("call")
    create = room_pb.CreateRoomRequest(name="new")
    status, body = _twirp(fake_sfu, "CreateRoom", create, _token(fake_sfu, {"roomList": True}))
    assert status == 403
    assert json.loads(body)["code"] == "permission_denied"
    assert fake_sfu.room_names() == {"call"}

    listing = room_pb.ListParticipantsRequest(room="call")
    other_room = _token(fake_sfu, {"roomAdmin": True, "room": "elsewhere"})
    status, body = _twirp(fake_sfu, "ListParticipants", listing, other_room)
    assert (status, json.loads(body)["code"]) == (403, "permission_denied")
    joiner = _token(fake_sfu, {"roomJoin": True, "room": "call"})
    status, _ = _twirp(fake_sfu, "ListParticipants", listing, joiner)
    assert status == 403
    admin = _token(fake_sfu, {"roomAdmin": True, "room": "call"})
    status, _ = _twirp(fake_sfu, "ListParticipants", listing, admin)
    assert status == 200


async def test_fake_sfu_fails_on_request_then_recovers(fake_sfu: FakeSfu) -> None:
    fake_sfu.fail_next("CreateRoom", status=503, count=2)
    lkapi = api.LiveKitAPI(fake_sfu.url, fake_sfu.api_key, fake_sfu.api_secret, failover=False)
    try:
        for _ in range(2):
            with pytest.raises(api.TwirpError) as failed:
                await lkapi.room.create_room(room_pb.CreateRoomRequest(name="call"))
            assert failed.value.status == 503
        await lkapi.room.create_room(room_pb.CreateRoomRequest(name="call"))
    finally:
        await lkapi.aclose()
    assert [c.status for c in fake_sfu.calls("CreateRoom")] == [503, 503, 200]
    assert fake_sfu.room_names() == {"call"}


async def test_fake_sfu_hangs_when_told(fake_sfu: FakeSfu) -> None:
    fake_sfu.hang("ListRooms", 0.5)
    lkapi = api.LiveKitAPI(fake_sfu.url, fake_sfu.api_key, fake_sfu.api_secret, failover=False)
    try:
        started = time.monotonic()
        await lkapi.room.list_rooms(room_pb.ListRoomsRequest())
        assert time.monotonic() - started >= 0.5
        fake_sfu.hang("ListRooms", 0)
        started = time.monotonic()
        await lkapi.room.list_rooms(room_pb.ListRoomsRequest())
        assert time.monotonic() - started < 0.5
    finally:
        await lkapi.aclose()


def _get(url: str, context: ssl.SSLContext) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_fake_homeserver_answers_userinfo(
    fake_homeserver: FakeHomeserver, test_ca: tls.TestCA
) -> None:
    fake_homeserver.add_token("good token", "@alice:elsewhere.example")
    base = f"{fake_homeserver.base_url}{USERINFO_PATH}"
    context = test_ca.client_context()
    assert _get(f"{base}?access_token=good%20token", context) == (
        200,
        {"sub": "@alice:elsewhere.example"},
    )
    status, body = _get(f"{base}?access_token=bad", context)
    assert status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN"
    recorded = fake_homeserver.userinfo_requests()
    assert [r.access_token for r in recorded] == ["good token", "bad"]
    assert all(r.query == {"access_token": REDACTED} for r in recorded)
    assert recorded[0].host == fake_homeserver.server_name


def test_fake_homeserver_knobs(fake_homeserver: FakeHomeserver, test_ca: tls.TestCA) -> None:
    context = test_ca.client_context()
    fake_homeserver.add_token("t", "@alice:x")
    url = f"{fake_homeserver.base_url}{USERINFO_PATH}?access_token=t"
    fake_homeserver.userinfo_status(502, {"oops": True})
    assert _get(url, context) == (502, {"oops": True})
    fake_homeserver.userinfo_status(None)
    fake_homeserver.hang_userinfo(0.3)
    started = time.monotonic()
    assert _get(url, context)[0] == 200
    assert time.monotonic() - started >= 0.3

    well_known = f"{fake_homeserver.base_url}/.well-known/matrix/server"
    assert _get(well_known, context)[0] == 404
    fake_homeserver.well_known_server({"m.server": "127.0.0.1:1"})
    assert _get(well_known, context) == (200, {"m.server": "127.0.0.1:1"})
    assert fake_homeserver.well_known_fetches == 2


async def test_fake_homeserver_counts_connections(
    fake_homeserver: FakeHomeserver, test_ca: tls.TestCA
) -> None:
    fake_homeserver.add_token("t", "@alice:x")
    url = f"{fake_homeserver.base_url}{USERINFO_PATH}?access_token=t"
    connector = aiohttp.TCPConnector(ssl=test_ca.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):
            async with session.get(url) as resp:
                assert resp.status == 200
    assert fake_homeserver.connections_opened == 1
    connector = aiohttp.TCPConnector(ssl=test_ca.client_context(), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(2):
            async with session.get(url) as resp:
                assert resp.status == 200
    assert fake_homeserver.connections_opened == 3
    assert [r.connection for r in fake_homeserver.requests] == [1, 1, 1, 2, 3]
    assert fake_homeserver.userinfo_count == 5

    connector = aiohttp.TCPConnector(ssl=test_ca.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url) as resp:
            assert resp.status == 200
        fake_homeserver.clear_requests()
        assert (fake_homeserver.connections_opened, fake_homeserver.userinfo_count) == (0, 0)
        for _ in range(2):
            async with session.get(url) as resp:
                assert resp.status == 200
    # The connection opened before the clear is not counted again.
    assert fake_homeserver.connections_opened == 0
    assert [r.connection for r in fake_homeserver.requests] == [4, 4]


def test_fake_homeserver_is_untrusted_with_another_ca(
    test_ca: tls.TestCA, tmp_path_factory: pytest.TempPathFactory
) -> None:

    other = tls.make_ca(tmp_path_factory.mktemp("other-ca"))
    with FakeHomeserver(other.server_context("localhost", "127.0.0.1")) as homeserver:
        with pytest.raises(urllib.error.URLError) as refused:
            urllib.request.urlopen(
                f"{homeserver.base_url}{USERINFO_PATH}",
                timeout=10,
                context=test_ca.client_context(),
            )
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
