"""Black-box tests of token issuing: what full-access and restricted users get back, which
LiveKit names the tokens carry, and which rooms the service creates on the SFU."""

from __future__ import annotations

import time

import pytest
from livekit.protocol import room as room_pb

from tests.blackbox.helpers import (
    LEGACY_SLOT,
    Stack,
    assert_member_token,
    call,
    get_token_body,
    js_stringify,
    load_vectors,
    member_identity,
    post_json,
    room_alias,
    sfu_get_body,
)

VECTORS = load_vectors()


@pytest.mark.parametrize("vector", VECTORS["room_alias"], ids=lambda v: v["expected"][:8])
def test_alias_helper_matches_javascript_vectors(vector: dict[str, str]) -> None:
    assert js_stringify([vector["room_id"], vector["slot_id"]]) == vector["canonical_json"]
    assert room_alias(vector["room_id"], vector["slot_id"]) == vector["expected"]


@pytest.mark.parametrize("vector", VECTORS["identity"], ids=lambda v: v["expected"][:8])
def test_identity_helper_matches_javascript_vectors(vector: dict[str, str]) -> None:
    values = [vector["user_id"], vector["device_id"], vector["member_id"]]
    assert js_stringify(values) == vector["canonical_json"]
    assert member_identity(*values) == vector["expected"]


def _assert_created_once(stack: Stack, alias: str) -> None:
    creates = [c for c in stack.sfu.calls("CreateRoom") if c.status == 200]
    assert creates, "the service never created the room"
    for created in creates:
        request = created.request
        assert isinstance(request, room_pb.CreateRoomRequest)
        assert request.name == alias
        assert request.empty_timeout == 300
        assert request.departure_timeout == 20
        assert request.max_participants == 0
    assert alias in stack.sfu.room_names()


def test_full_access_user_gets_legacy_token_and_room_is_created(stack: Stack) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    vector = VECTORS["room_alias"][0]
    assert vector["slot_id"] == LEGACY_SLOT
    before = time.time()
    reply = post_json(
        service,
        "/sfu/get",
        sfu_get_body(
            token, stack.homeserver.server_name, room=vector["room_id"], device_id="DEVICEID"
        ),
    )
    after = time.time()
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type", "").startswith("application/json")
    data = reply.json()
    assert data["url"] == stack.sfu.url
    alias = vector["expected"]
    assert room_alias(vector["room_id"]) == alias
    assert_member_token(
        data["jwt"],
        key=stack.sfu.api_key,
        secret=stack.sfu.api_secret,
        identity=f"{user_id}:DEVICEID",
        alias=alias,
        issued_between=(before, after),
    )
    _assert_created_once(stack, alias)


def test_full_access_user_gets_token_and_room_is_created(stack: Stack) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    vector = VECTORS["room_alias"][2]
    body = get_token_body(
        token,
        stack.homeserver.server_name,
        user_id,
        room_id=vector["room_id"],
        slot_id=vector["slot_id"],
        member_id="member-7f3a",
        device_id="ABCDEFGH",
    )
    before = time.time()
    reply = post_json(service, "/get_token", body)
    after = time.time()
    assert reply.status == 200, reply.body
    data = reply.json()
    assert data["url"] == stack.sfu.url
    assert_member_token(
        data["jwt"],
        key=stack.sfu.api_key,
        secret=stack.sfu.api_secret,
        identity=member_identity(user_id, "ABCDEFGH", "member-7f3a"),
        alias=vector["expected"],
        issued_between=(before, after),
    )
    _assert_created_once(stack, vector["expected"])


@pytest.mark.parametrize(
    "vector",
    [
        v
        for v in VECTORS["room_alias"]
        if any(ord(ch) > 127 or ch in "&<>" for ch in v["room_id"] + v["slot_id"])
    ],
    ids=lambda v: v["expected"][:8],
)
def test_room_alias_matches_javascript_for_special_characters(
    stack: Stack, vector: dict[str, str]
) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    body = get_token_body(
        token,
        stack.homeserver.server_name,
        user_id,
        room_id=vector["room_id"],
        slot_id=vector["slot_id"],
    )
    reply = post_json(service, "/get_token", body)
    assert reply.status == 200, reply.body
    assert vector["expected"] in stack.sfu.room_names()


def test_legacy_and_current_clients_of_one_call_share_a_room(stack: Stack) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    server = stack.homeserver.server_name
    legacy = post_json(service, "/sfu/get", sfu_get_body(token, server, room="!call:example.com"))
    current = post_json(
        service,
        "/get_token",
        get_token_body(token, server, user_id, room_id="!call:example.com", slot_id=LEGACY_SLOT),
    )
    assert (legacy.status, current.status) == (200, 200)
    assert stack.sfu.room_names() == {room_alias("!call:example.com")}


def test_restricted_user_joins_existing_room_without_creating_it(stack: Stack) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS="other.example")
    user_id, token = stack.login("alice")
    alias = room_alias("!room:example.com", "m.call#ROOM")
    stack.sfu.add_room(alias)
    before = time.time()
    reply = post_json(
        service,
        "/get_token",
        get_token_body(
            token,
            stack.homeserver.server_name,
            user_id,
            room_id="!room:example.com",
            slot_id="m.call#ROOM",
        ),
    )
    after = time.time()
    assert reply.status == 200, reply.body
    assert reply.json()["url"] == stack.sfu.url
    assert_member_token(
        reply.json()["jwt"],
        key=stack.sfu.api_key,
        secret=stack.sfu.api_secret,
        identity=member_identity(user_id, "ABCDEFGH", "xyzABCDEF10123"),
        alias=alias,
        issued_between=(before, after),
    )
    assert stack.sfu.calls("CreateRoom") == []


def test_restricted_user_joins_existing_room_on_legacy_endpoint(stack: Stack) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS="other.example, another.example")
    _, token = stack.login("alice")
    stack.sfu.add_room(room_alias("!room:example.com"))
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    assert stack.sfu.calls("CreateRoom") == []


def test_restricted_user_gets_404_for_missing_room_and_nothing_is_created(stack: Stack) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS="other.example")
    user_id, token = stack.login("alice")
    stack.sfu.add_room(room_alias("!another:example.com"))
    reply = post_json(
        service,
        "/get_token",
        get_token_body(token, stack.homeserver.server_name, user_id, room_id="!room:example.com"),
    )
    assert reply.status == 404, reply.body
    assert reply.errcode() == "M_NOT_FOUND"
    assert "jwt" not in reply.json()
    assert stack.sfu.calls("CreateRoom") == []
    assert stack.sfu.room_names() == {room_alias("!another:example.com")}


def test_restricted_user_gets_404_for_missing_room_on_legacy_endpoint(stack: Stack) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS="other.example")
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 404, reply.body
    assert reply.errcode() == "M_NOT_FOUND"
    assert stack.sfu.calls("CreateRoom") == []
    assert stack.sfu.room_names() == set()


def test_alias_path_issues_legacy_token(stack: Stack) -> None:
    service = stack.start()
    _, token = stack.login("alice")
    reply = post_json(
        service, "/livekit/jwt/sfu/get", sfu_get_body(token, stack.homeserver.server_name)
    )
    assert reply.status == 200, reply.body
    assert reply.json()["url"] == stack.sfu.url
    assert room_alias("!room:example.com") in stack.sfu.room_names()


def test_prefixed_paths_serve_current_clients_too(stack: Stack) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    body = get_token_body(token, stack.homeserver.server_name, user_id)
    reply = post_json(service, "/livekit/jwt/get_token", body)
    assert reply.status == 200, reply.body
    assert call(service, "GET", "/livekit/jwt/healthz").status == 200
    # A webhook without a signature is refused there as at the root: the route exists.
    assert post_json(service, "/livekit/jwt/sfu_webhook", {}).status == 401


def test_extra_fields_in_request_are_ignored(stack: Stack) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    body = get_token_body(token, stack.homeserver.server_name, user_id)
    body["future_field"] = {"anything": [1, 2, 3]}
    body["member"]["future_member_field"] = True
    reply = post_json(service, "/get_token", body)
    assert reply.status == 200, reply.body


def test_homeserver_is_asked_with_its_server_name_as_host(stack: Stack) -> None:
    service = stack.start()
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    asked = stack.homeserver.userinfo_requests()
    assert len(asked) == 1
    assert asked[0].access_token == token
    assert asked[0].host == stack.homeserver.server_name
    # A server name with an explicit port is never looked up through .well-known.
    assert stack.homeserver.well_known_fetches == 0


def test_sfu_url_with_path_is_returned_and_used_for_room_calls(stack: Stack) -> None:
    url = f"{stack.sfu.url}/livekit/sfu"
    service = stack.start(LIVEKIT_URL=url)
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    assert reply.json()["url"] == url
    paths = {c.path for c in stack.sfu.calls()}
    assert paths == {"/livekit/sfu/twirp/livekit.RoomService/CreateRoom"}
