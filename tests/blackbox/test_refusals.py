"""Black-box tests of refused requests: who gets 401, which bodies get 400, and that
malformed requests never reach the homeserver; plus the service's fixed routes."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.blackbox.helpers import (
    Reply,
    Stack,
    call,
    get_token_body,
    post_json,
    post_raw,
    room_alias,
    sfu_get_body,
)


def _assert_matrix_error(reply: Reply, status: int, errcode: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    data = reply.json()
    assert data["errcode"] == errcode, data
    assert isinstance(data.get("error"), str)
    assert "jwt" not in data


def test_unknown_openid_token_is_refused(stack: Stack) -> None:
    service = stack.start()
    reply = post_json(
        service, "/sfu/get", sfu_get_body("no-such-token", stack.homeserver.server_name)
    )
    _assert_matrix_error(reply, 401, "M_UNAUTHORIZED")
    assert b"no-such-token" not in reply.body
    assert len(stack.homeserver.userinfo_requests()) == 1
    assert stack.sfu.calls() == []


def test_unknown_openid_token_is_refused_on_get_token(stack: Stack) -> None:
    service = stack.start()
    body = get_token_body("no-such-token", stack.homeserver.server_name, stack.user("alice"))
    reply = post_json(service, "/get_token", body)
    _assert_matrix_error(reply, 401, "M_UNAUTHORIZED")
    assert stack.sfu.room_names() == set()


def test_homeserver_claiming_user_of_another_server_is_refused(stack: Stack) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS="*")
    stack.homeserver.add_token("mallory-token", "@alice:victim.example")
    reply = post_json(
        service, "/sfu/get", sfu_get_body("mallory-token", stack.homeserver.server_name)
    )
    _assert_matrix_error(reply, 401, "M_UNAUTHORIZED")
    assert stack.sfu.room_names() == set()


def test_homeserver_answer_that_is_not_a_user_id_is_refused(stack: Stack) -> None:
    service = stack.start()
    server = stack.homeserver.server_name
    for sub in ("alice", f"alice:{server}", f"#alice:{server}", f"@:{server}", ""):
        stack.homeserver.add_token("odd-token", sub)
        reply = post_json(service, "/sfu/get", sfu_get_body("odd-token", server))
        assert reply.status == 401, (sub, reply.status, reply.body)
    assert stack.sfu.room_names() == set()


def test_broken_userinfo_answers_are_refused(stack: Stack) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    server = stack.homeserver.server_name
    answers: list[tuple[int, Any]] = [
        (500, None),
        (403, {"errcode": "M_FORBIDDEN", "error": "no"}),
        (200, "this is not json"),
        (200, {"user": user_id}),
        (200, {"sub": 42}),
        (200, [user_id]),
        (200, {"sub": user_id, "padding": "x" * 4096}),
    ]
    for status, body in answers:
        stack.homeserver.userinfo_status(status, body)
        reply = post_json(service, "/sfu/get", sfu_get_body(token, server))
        assert reply.status == 401, (status, body, reply.status, reply.body)
        assert reply.errcode() == "M_UNAUTHORIZED"
    stack.homeserver.userinfo_status(None)
    assert post_json(service, "/sfu/get", sfu_get_body(token, server)).status == 200


def test_claimed_user_other_than_verified_user_is_refused(stack: Stack) -> None:
    service = stack.start()
    _, token = stack.login("alice")
    body = get_token_body(token, stack.homeserver.server_name, stack.user("bob"))
    reply = post_json(service, "/get_token", body)
    _assert_matrix_error(reply, 401, "M_UNAUTHORIZED")
    assert stack.sfu.room_names() == set()


def test_malformed_json_is_refused_as_not_json(stack: Stack) -> None:
    service = stack.start()
    for path in ("/sfu/get", "/get_token"):
        reply = post_raw(service, path, b'{"room": "!r:example.com", ')
        _assert_matrix_error(reply, 400, "M_NOT_JSON")
    assert stack.homeserver.requests == []


def test_json_that_is_not_an_object_is_refused_as_not_json(stack: Stack) -> None:
    service = stack.start()
    _, token = stack.login("alice")
    as_array = json.dumps([sfu_get_body(token, stack.homeserver.server_name)]).encode()
    for body in (b"[]", as_array, b'"text"', b"42", b"null", b"true"):
        for path in ("/sfu/get", "/get_token"):
            reply = post_raw(service, path, body)
            assert reply.status == 400, (path, body, reply.body)
            assert reply.errcode() == "M_NOT_JSON", (path, body, reply.body)
    assert stack.homeserver.requests == []


def test_empty_body_is_refused_as_not_json(stack: Stack) -> None:
    service = stack.start()
    for path in ("/sfu/get", "/get_token"):
        _assert_matrix_error(post_raw(service, path, b""), 400, "M_NOT_JSON")
    assert stack.homeserver.requests == []


def test_oversize_body_is_refused_as_too_large(stack: Stack) -> None:
    service = stack.start()
    _, token = stack.login("alice")
    body = sfu_get_body(token, stack.homeserver.server_name)
    body["padding"] = "x" * 8192
    _assert_matrix_error(post_json(service, "/sfu/get", body), 413, "M_TOO_LARGE")
    assert stack.homeserver.requests == []


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return out


def _with(body: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def _assert_all_bad_json(stack: Stack, cases: list[tuple[str, dict[str, Any]]]) -> None:
    service = stack.start()
    for path, body in cases:
        reply = post_json(service, path, body)
        assert reply.status == 400, (path, body, reply.status, reply.body)
        assert reply.errcode() == "M_BAD_JSON", (path, body, reply.body)
    assert stack.homeserver.requests == []
    assert stack.sfu.calls() == []


def test_missing_fields_are_refused_before_asking_homeserver(stack: Stack) -> None:
    _, token = stack.login("alice")
    server = stack.homeserver.server_name
    legacy = sfu_get_body(token, server)
    current = get_token_body(token, server, stack.user("alice"))
    cases = [
        ("/sfu/get", _without(legacy, *p))
        for p in (
            ("room",),
            ("openid_token",),
            ("openid_token", "access_token"),
            ("openid_token", "matrix_server_name"),
            ("device_id",),
        )
    ]
    cases += [
        ("/get_token", _without(current, *p))
        for p in (
            ("room_id",),
            ("slot_id",),
            ("openid_token",),
            ("openid_token", "access_token"),
            ("openid_token", "matrix_server_name"),
            ("member",),
            ("member", "id"),
            ("member", "claimed_user_id"),
            ("member", "claimed_device_id"),
        )
    ]
    cases += [("/sfu/get", {}), ("/get_token", {})]
    _assert_all_bad_json(stack, cases)


def test_fields_of_wrong_type_are_refused_before_asking_homeserver(stack: Stack) -> None:
    _, token = stack.login("alice")
    server = stack.homeserver.server_name
    legacy = sfu_get_body(token, server)
    current = get_token_body(token, server, stack.user("alice"))
    cases = [
        ("/sfu/get", _with(legacy, 123, "room")),
        ("/sfu/get", _with(legacy, ["!room:example.com"], "room")),
        ("/sfu/get", _with(legacy, "token", "openid_token")),
        ("/sfu/get", _with(legacy, 12345, "openid_token", "access_token")),
        ("/sfu/get", _with(legacy, {"host": server}, "openid_token", "matrix_server_name")),
        ("/sfu/get", _with(legacy, 7, "device_id")),
        ("/sfu/get", _with(legacy, None, "device_id")),
        ("/get_token", _with(current, {"id": "!r:example.com"}, "room_id")),
        ("/get_token", _with(current, 1, "slot_id")),
        ("/get_token", _with(current, "member", "member")),
        ("/get_token", _with(current, 99, "member", "id")),
        ("/get_token", _with(current, True, "member", "claimed_user_id")),
        ("/get_token", _with(current, ["DEV"], "member", "claimed_device_id")),
        ("/get_token", _with(current, False, "openid_token", "access_token")),
    ]
    _assert_all_bad_json(stack, cases)


def test_bad_server_names_are_refused_before_any_lookup(stack: Stack) -> None:
    _, token = stack.login("alice")
    port = stack.homeserver.port
    names = [
        "evil.com/path",
        f"127.0.0.1:{port}/_matrix",
        "evil.com?x=1",
        "evil.com#frag",
        "user@evil.com",
        f"127.0.0.1:{port}@evil.com",
        "evil com",
        "evil.com:",
        "evil.com:0",
        "evil.com:65536",
        "evil.com:12ab",
        "[::1",
        "::1",
        "evil_com\n",
        "a" * 256,
        "",
    ]
    legacy = sfu_get_body(token, stack.homeserver.server_name)
    current = get_token_body(token, stack.homeserver.server_name, stack.user("alice"))
    cases = [("/sfu/get", _with(legacy, n, "openid_token", "matrix_server_name")) for n in names]
    cases.append(
        ("/get_token", _with(current, "evil.com/path", "openid_token", "matrix_server_name"))
    )
    _assert_all_bad_json(stack, cases)


def test_over_long_or_badly_spelled_fields_are_refused(stack: Stack) -> None:
    _, token = stack.login("alice")
    server = stack.homeserver.server_name
    legacy = sfu_get_body(token, server)
    current = get_token_body(token, server, stack.user("alice"))
    cases = [
        ("/sfu/get", _with(legacy, "!" + "r" * 255, "room")),
        ("/sfu/get", _with(legacy, "D" * 256, "device_id")),
        ("/sfu/get", _with(legacy, "DEV ICE", "device_id")),
        ("/sfu/get", _with(legacy, "DEV\nICE", "device_id")),
        ("/sfu/get", _with(legacy, "x" * 1025, "openid_token", "access_token")),
        ("/get_token", _with(current, "m" * 256, "member", "id")),
        ("/get_token", _with(current, "s" * 256, "slot_id")),
        ("/get_token", _with(current, "DEV;ICE", "member", "claimed_device_id")),
    ]
    _assert_all_bad_json(stack, cases)


def test_longest_allowed_fields_and_device_id_characters_are_accepted(stack: Stack) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    body = get_token_body(
        token,
        stack.homeserver.server_name,
        user_id,
        room_id="!" + "r" * 254,
        slot_id="s" * 255,
        member_id="m" * 255,
        device_id="Az09+/=_-." + "D" * 245,
    )
    reply = post_json(service, "/get_token", body)
    assert reply.status == 200, reply.body
    assert room_alias("!" + "r" * 254, "s" * 255) in stack.sfu.room_names()


def test_get_on_token_endpoints_is_method_not_allowed(stack: Stack) -> None:
    service = stack.start()
    for path in ("/sfu/get", "/get_token", "/livekit/jwt/sfu/get"):
        assert call(service, "GET", path).status == 405, path
    assert call(service, "PUT", "/sfu/get", b"{}").status == 405
    assert stack.homeserver.requests == []


def test_unknown_path_is_not_found_with_matrix_error(stack: Stack) -> None:
    service = stack.start()
    for method, path in (("GET", "/nope"), ("POST", "/sfu/gett"), ("GET", "/_matrix/x")):
        _assert_matrix_error(call(service, method, path), 404, "M_UNRECOGNIZED")


def test_health_check_answers_get_and_head(stack: Stack) -> None:
    service = stack.start()
    assert call(service, "GET", "/healthz").status == 200
    head = call(service, "HEAD", "/healthz")
    assert head.status == 200
    assert head.body == b""


def test_health_check_alias_path_answers(stack: Stack) -> None:
    service = stack.start()
    assert call(service, "GET", "/livekit/healthz").status == 200
    assert call(service, "HEAD", "/livekit/healthz").status == 200
