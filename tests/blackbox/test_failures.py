"""Black-box tests of an unwell neighbourhood: an SFU that is down, failing or hanging,
and a homeserver that hangs or cannot be reached. Answers must come back quickly."""

from __future__ import annotations

from tests.blackbox.helpers import Stack, post_json, room_alias, sfu_get_body
from tests.support.ports import free_port


def test_unreachable_sfu_gives_500_quickly(stack: Stack) -> None:
    closed = free_port()
    service = stack.start(LIVEKIT_URL=f"ws://127.0.0.1:{closed}")
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 500, reply.body
    assert reply.errcode() == "M_UNKNOWN"
    assert "jwt" not in reply.json()
    assert reply.elapsed < 6, reply.elapsed
    assert stack.sfu.api_secret.encode() not in reply.body


def test_unreachable_sfu_gives_500_to_restricted_user(stack: Stack) -> None:
    closed = free_port()
    service = stack.start(
        LIVEKIT_URL=f"ws://127.0.0.1:{closed}", LIVEKIT_FULL_ACCESS_HOMESERVERS="other.example"
    )
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 500, reply.body
    assert reply.errcode() == "M_UNKNOWN"
    assert reply.elapsed < 6, reply.elapsed


def test_hanging_sfu_gives_500_within_seconds(stack: Stack) -> None:
    service = stack.start()
    stack.sfu.hang("CreateRoom", 30)
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 500, reply.body
    assert reply.errcode() == "M_UNKNOWN"
    assert reply.elapsed < 7, reply.elapsed


def test_sfu_failing_create_room_once_still_gives_token(stack: Stack) -> None:
    service = stack.start()
    stack.sfu.fail_next("CreateRoom", status=500, count=1)
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    assert reply.json()["url"] == stack.sfu.url
    assert [c.status for c in stack.sfu.calls("CreateRoom")] == [500, 200]
    assert room_alias("!room:example.com") in stack.sfu.room_names()


def test_sfu_failing_create_room_twice_gives_500(stack: Stack) -> None:
    service = stack.start()
    stack.sfu.fail_next("CreateRoom", status=503, count=2)
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 500, reply.body
    assert reply.errcode() == "M_UNKNOWN"
    assert [c.status for c in stack.sfu.calls("CreateRoom")] == [503, 503]


def test_sfu_refusing_service_credentials_gives_500(stack: Stack) -> None:
    service = stack.start(LIVEKIT_SECRET="not-the-sfu-secret-but-long-enough-0123456789")
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 500, reply.body
    assert reply.errcode() == "M_UNKNOWN"
    assert stack.sfu.room_names() == set()


def test_hanging_homeserver_gives_401_within_seconds(stack: Stack) -> None:
    service = stack.start()
    stack.homeserver.hang_userinfo(30)
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 401, reply.body
    assert reply.errcode() == "M_UNAUTHORIZED"
    assert reply.elapsed < 8, reply.elapsed
    assert stack.sfu.calls() == []


def test_unreachable_homeserver_gives_401(stack: Stack) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS="*")
    closed = free_port()
    reply = post_json(service, "/sfu/get", sfu_get_body("some-token", f"127.0.0.1:{closed}"))
    assert reply.status == 401, reply.body
    assert reply.errcode() == "M_UNAUTHORIZED"
    assert reply.elapsed < 8, reply.elapsed


def test_service_keeps_serving_after_failures(stack: Stack) -> None:
    service = stack.start()
    _, token = stack.login("alice")
    body = sfu_get_body(token, stack.homeserver.server_name)
    stack.sfu.fail_next("CreateRoom", status=500, count=2)
    assert post_json(service, "/sfu/get", body).status == 500
    stack.homeserver.userinfo_status(500)
    assert post_json(service, "/sfu/get", body).status == 401
    stack.homeserver.userinfo_status(None)
    assert post_json(service, "/sfu/get", body).status == 200
