"""Black-box tests of duplicate session prevention (PROTOCOL.md section 6).

With ``LIVEKIT_BLOCK_SAME_DEVICE_DUPLICATE`` a (user, device) already in the
LiveKit room is refused with 409 ``M_DUPLICATE_SESSION``; with
``LIVEKIT_BLOCK_SAME_USER_MULTIPLE_DEVICES`` so is the same user with another
device. ``/sfu/get`` identities spell out ``user:device``; ``/get_token``
identities are hashes the service must remember, so these tests put the very
identity the service issued (the JWT ``sub``) into the fake SFU's room. With
``LIVEKIT_REDIS_URL`` that memory is shared by every process using the same
Redis; a Redis that is down at start stops the service, one that goes away
later does not stop tokens from being issued.
"""

from __future__ import annotations

import time

from tests.blackbox.helpers import (
    Reply,
    Stack,
    decode_livekit_jwt,
    get_token_body,
    is_warning,
    post_json,
    room_alias,
    sfu_get_body,
    wait_exit,
    wait_for_line,
)
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401
from tests.support.service import ServiceProcess

ROOM = "!room:example.com"
ROOM_ID = "!tDLCaLXijNtYcJZEey:example.com"
SLOT_ID = "m.call#ROOM"
SAME_DEVICE = "LIVEKIT_BLOCK_SAME_DEVICE_DUPLICATE"
SAME_USER = "LIVEKIT_BLOCK_SAME_USER_MULTIPLE_DEVICES"


def _flags(*, device: bool, user: bool) -> dict[str, str]:
    return {SAME_DEVICE: str(device).lower(), SAME_USER: str(user).lower()}


def _legacy_join(stack: Stack, service: ServiceProcess, localpart: str, device: str) -> Reply:
    _, token = stack.login(localpart)
    body = sfu_get_body(token, stack.homeserver.server_name, room=ROOM, device_id=device)
    return post_json(service, "/sfu/get", body)


def _in_legacy_room(stack: Stack, localpart: str, device: str) -> None:
    stack.sfu.add_participant(room_alias(ROOM), f"{stack.user(localpart)}:{device}")


def _join(
    stack: Stack,
    service: ServiceProcess,
    localpart: str,
    device: str,
    member: str = "member-1",
) -> Reply:
    user_id, token = stack.login(localpart)
    body = get_token_body(
        token,
        stack.homeserver.server_name,
        user_id,
        room_id=ROOM_ID,
        slot_id=SLOT_ID,
        member_id=member,
        device_id=device,
    )
    return post_json(service, "/get_token", body)


def _joined(stack: Stack, reply: Reply) -> str:
    """Puts the identity of an issued token into the room, as if its holder had joined."""
    assert reply.status == 200, reply.body
    claims = decode_livekit_jwt(reply.json()["jwt"], stack.sfu.api_key, stack.sfu.api_secret)
    identity = str(claims["sub"])
    stack.sfu.add_participant(room_alias(ROOM_ID, SLOT_ID), identity)
    return identity


def _assert_duplicate(reply: Reply) -> None:
    assert reply.status == 409, reply.body
    assert reply.errcode() == "M_DUPLICATE_SESSION", reply.body
    assert "jwt" not in reply.json()


# -- /sfu/get (identities user:device) ------------------------------------------


def test_legacy_same_device_already_in_room_is_refused(stack: Stack) -> None:
    service = stack.start(**_flags(device=True, user=False))
    _in_legacy_room(stack, "alice", "DEV1")
    _assert_duplicate(_legacy_join(stack, service, "alice", "DEV1"))


def test_legacy_other_device_is_admitted_with_only_the_device_flag(stack: Stack) -> None:
    service = stack.start(**_flags(device=True, user=False))
    _in_legacy_room(stack, "alice", "DEV1")
    reply = _legacy_join(stack, service, "alice", "DEV2")
    assert reply.status == 200, reply.body


def test_legacy_same_user_with_other_device_is_refused(stack: Stack) -> None:
    service = stack.start(**_flags(device=False, user=True))
    _in_legacy_room(stack, "alice", "DEV1")
    _assert_duplicate(_legacy_join(stack, service, "alice", "DEV2"))


def test_legacy_other_user_is_admitted_with_both_flags(stack: Stack) -> None:
    service = stack.start(**_flags(device=True, user=True))
    _in_legacy_room(stack, "bob", "DEV1")
    reply = _legacy_join(stack, service, "alice", "DEV1")
    assert reply.status == 200, reply.body


def test_legacy_duplicates_are_admitted_with_both_flags_off(stack: Stack) -> None:
    service = stack.start(**_flags(device=False, user=False))
    _in_legacy_room(stack, "alice", "DEV1")
    assert _legacy_join(stack, service, "alice", "DEV1").status == 200
    assert _legacy_join(stack, service, "alice", "DEV2").status == 200


def test_participants_are_listed_with_room_admin_grant_for_that_room(stack: Stack) -> None:
    service = stack.start(**_flags(device=True, user=True))
    _in_legacy_room(stack, "bob", "DEV1")
    assert _legacy_join(stack, service, "alice", "DEV1").status == 200
    calls = stack.sfu.calls("ListParticipants")
    assert len(calls) == 1, calls
    # The fake SFU answers 200 only to a token with roomAdmin for the room listed.
    assert calls[0].status == 200, calls[0]
    assert calls[0].claims["video"]["roomAdmin"] is True
    assert calls[0].claims["video"]["room"] == room_alias(ROOM)


def test_failing_participant_listing_admits_the_join_with_a_warning(stack: Stack) -> None:
    service = stack.start(**_flags(device=True, user=True))
    _in_legacy_room(stack, "alice", "DEV1")
    stack.sfu.fail_next("ListParticipants", 500)
    reply = _legacy_join(stack, service, "alice", "DEV1")
    assert reply.status == 200, reply.body
    wait_for_line(service, lambda line: is_warning(line) and "participants" in line.lower())
    listed = stack.sfu.calls("ListParticipants")
    assert [c.status for c in listed] == [500]
    assert listed[0].claims["video"]["roomAdmin"] is True
    assert listed[0].claims["video"]["room"] == room_alias(ROOM)


# -- /get_token (hashed identities the service remembers) -------------------------


def test_issued_identity_of_same_device_is_refused(stack: Stack) -> None:
    service = stack.start(**_flags(device=True, user=False))
    _joined(stack, _join(stack, service, "alice", "DEV1"))
    _assert_duplicate(_join(stack, service, "alice", "DEV1", member="member-2"))


def test_issued_identity_of_other_device_is_admitted_with_only_the_device_flag(
    stack: Stack,
) -> None:
    service = stack.start(**_flags(device=True, user=False))
    _joined(stack, _join(stack, service, "alice", "DEV1"))
    reply = _join(stack, service, "alice", "DEV2", member="member-2")
    assert reply.status == 200, reply.body


def test_issued_identity_of_same_user_blocks_other_device(stack: Stack) -> None:
    service = stack.start(**_flags(device=False, user=True))
    _joined(stack, _join(stack, service, "alice", "DEV1"))
    _assert_duplicate(_join(stack, service, "alice", "DEV2", member="member-2"))


def test_issued_identity_of_other_user_is_admitted_with_both_flags(stack: Stack) -> None:
    service = stack.start(**_flags(device=True, user=True))
    _joined(stack, _join(stack, service, "bob", "DEV1"))
    reply = _join(stack, service, "alice", "DEV1")
    assert reply.status == 200, reply.body


def test_issued_identities_are_not_checked_with_both_flags_off(stack: Stack) -> None:
    service = stack.start(**_flags(device=False, user=False))
    _joined(stack, _join(stack, service, "alice", "DEV1"))
    assert _join(stack, service, "alice", "DEV1", member="member-2").status == 200
    assert _join(stack, service, "alice", "DEV2", member="member-3").status == 200
    assert stack.sfu.calls("ListParticipants") == []


def test_failing_participant_listing_admits_get_token_with_a_warning(stack: Stack) -> None:
    service = stack.start(**_flags(device=True, user=True))
    _joined(stack, _join(stack, service, "alice", "DEV1"))
    stack.sfu.fail_next("ListParticipants", 500)
    reply = _join(stack, service, "alice", "DEV1", member="member-2")
    assert reply.status == 200, reply.body
    wait_for_line(service, lambda line: is_warning(line) and "participants" in line.lower())
    listed = stack.sfu.calls("ListParticipants")
    assert listed[-1].status == 500
    assert listed[-1].claims["video"]["roomAdmin"] is True
    assert listed[-1].claims["video"]["room"] == room_alias(ROOM_ID, SLOT_ID)


# -- Redis: identities shared between processes -----------------------------------


def test_second_process_refuses_duplicate_of_identity_first_process_issued(
    stack: Stack,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    env = {**_flags(device=True, user=False), "LIVEKIT_REDIS_URL": redis_server.url}
    first = stack.start(**env)
    second = stack.start(**env)
    assert first.port != second.port
    _joined(stack, _join(stack, first, "alice", "DEV1"))
    _assert_duplicate(_join(stack, second, "alice", "DEV1", member="member-2"))
    # The other device is still welcome, at either process.
    assert _join(stack, second, "alice", "DEV2", member="member-3").status == 200


def test_unreachable_redis_at_start_stops_service_naming_the_variable(stack: Stack) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    service = stack.start_service(
        stack.env(**_flags(device=True, user=True), LIVEKIT_REDIS_URL=url), wait_healthy=False
    )
    code = wait_exit(service, timeout=10)
    assert code != 0, service.logs
    assert time.monotonic() - started < 10
    assert "LIVEKIT_REDIS_URL" in service.logs, service.logs
    assert "hunter2" not in service.logs, service.logs
    assert stack.sfu.api_secret not in service.logs


def test_redis_going_away_while_serving_still_issues_tokens_with_a_warning(
    stack: Stack,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    service = stack.start(**_flags(device=True, user=True), LIVEKIT_REDIS_URL=redis_server.url)
    _joined(stack, _join(stack, service, "bob", "DEV1"))
    redis_server.stop()
    reply = _join(stack, service, "alice", "DEV1")
    assert reply.status == 200, reply.body
    assert reply.elapsed < 5, reply.elapsed
    wait_for_line(service, lambda line: is_warning(line) and "redis" in line.lower())


def test_identities_are_shared_again_once_redis_is_back(
    stack: Stack,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    env = {**_flags(device=True, user=False), "LIVEKIT_REDIS_URL": redis_server.url}
    first = stack.start(**env)
    second = stack.start(**env)
    redis_server.stop()
    assert _join(stack, first, "bob", "DEV1").status == 200
    redis_server.start()
    _joined(stack, _join(stack, first, "alice", "DEV1"))
    _assert_duplicate(_join(stack, second, "alice", "DEV1", member="member-2"))
