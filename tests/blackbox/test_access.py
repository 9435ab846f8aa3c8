"""Black-box tests of access tiers: which homeservers count as full access (and so may have
rooms created for their users), and how the service talks to homeservers while deciding."""

from __future__ import annotations

from tests.blackbox.helpers import (
    Stack,
    is_warning,
    post_json,
    room_alias,
    sfu_get_body,
    wait_for_line,
)


def _created(stack: Stack) -> bool:
    return room_alias("!room:example.com") in stack.sfu.room_names()


def test_unset_full_access_list_lets_every_homeserver_create_rooms_with_warning(
    stack: Stack,
) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS=None)
    wait_for_line(service, lambda line: is_warning(line) and "LIVEKIT_FULL_ACCESS" in line)
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    assert _created(stack)


def test_star_gives_every_homeserver_full_access(stack: Stack) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS="*")
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    assert _created(stack)


def test_full_access_list_entries_are_trimmed(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS=f" other.example ,  {server} , ")
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, server))
    assert reply.status == 200, reply.body
    assert _created(stack)


def test_deprecated_local_homeservers_variable_still_grants_full_access(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS=None, LIVEKIT_LOCAL_HOMESERVERS=server)
    wait_for_line(service, lambda line: is_warning(line) and "LIVEKIT_LOCAL_HOMESERVERS" in line)
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, server))
    assert reply.status == 200, reply.body
    assert _created(stack)


def test_homeserver_connections_are_reused_across_requests(stack: Stack) -> None:
    service = stack.start()
    server = stack.homeserver.server_name
    for n in range(4):
        _, token = stack.login(f"user{n}")
        assert post_json(service, "/sfu/get", sfu_get_body(token, server)).status == 200
    assert stack.homeserver.userinfo_count == 4
    assert stack.homeserver.connections_opened == 1
