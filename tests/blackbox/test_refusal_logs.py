"""Black-box tests of what the log says about refused requests (PROTOCOL.md sections 2.1, 10).

Every refusal (an OpenID token the homeserver rejects, a homeserver the access
lists forbid, a duplicate session) leaves one WARNING line with its precise
cause. At any level, debug included, no line carries an OpenID access token,
the LiveKit secret or an issued LiveKit token. The client address comes from
``X-Forwarded-For`` only when the peer is a trusted proxy (loopback by default,
``LIVEKIT_TRUSTED_PROXIES`` otherwise), and client-supplied text never brings
control characters or extra lines into the log.
"""

from __future__ import annotations

import json

from tests.blackbox.helpers import (
    Reply,
    Stack,
    call,
    decode_livekit_jwt,
    get_token_body,
    is_warning,
    post_json,
    room_alias,
    sfu_get_body,
    stop_and_collect,
    wait_for_line,
)
from tests.support.service import ServiceProcess

FORBIDDEN_SERVER = "forbidden.example"
ROOM = "!room:example.com"
FORWARDED_CLIENT = "203.0.113.7"
FORGED = "FORGED-LOG-LINE"


def _post_with_headers(
    service: ServiceProcess, path: str, payload: dict[str, object], headers: dict[str, str]
) -> Reply:
    all_headers = {"Content-Type": "application/json", **headers}
    return call(service, "POST", path, json.dumps(payload).encode("utf-8"), all_headers)


def _refusal_line(service: ServiceProcess, status: int) -> str:
    return wait_for_line(service, lambda line: is_warning(line) and f"status={status}" in line)


# -- each refusal is explained ------------------------------------------------------


def test_rejected_openid_token_is_logged_as_warning_with_its_cause(stack: Stack) -> None:
    service = stack.start()
    server = stack.homeserver.server_name
    reply = post_json(service, "/sfu/get", sfu_get_body("openid-nobody-knows", server))
    assert reply.status == 401, reply.body
    line = _refusal_line(service, 401)
    assert "OpenID" in line, line
    assert server in line, line
    assert "M_UNKNOWN_TOKEN" in line, line
    assert "openid-nobody-knows" not in line


def test_forbidden_homeserver_is_logged_as_warning_with_the_list_that_refused_it(
    stack: Stack,
) -> None:
    service = stack.start(LIVEKIT_ALLOWED_HOMESERVERS=stack.homeserver.server_name)
    reply = post_json(service, "/sfu/get", sfu_get_body("openid-elsewhere", FORBIDDEN_SERVER))
    assert reply.status == 403, reply.body
    line = _refusal_line(service, 403)
    assert FORBIDDEN_SERVER in line, line
    assert "LIVEKIT_ALLOWED_HOMESERVERS" in line, line


def test_duplicate_session_is_logged_as_warning_with_user_and_device(stack: Stack) -> None:
    service = stack.start(LIVEKIT_BLOCK_SAME_DEVICE_DUPLICATE="true")
    user_id, token = stack.login("alice")
    stack.sfu.add_participant(room_alias(ROOM), f"{user_id}:DEV1")
    body = sfu_get_body(token, stack.homeserver.server_name, room=ROOM, device_id="DEV1")
    reply = post_json(service, "/sfu/get", body)
    assert reply.status == 409, reply.body
    line = _refusal_line(service, 409)
    assert user_id in line, line
    assert "DEV1" in line, line


# -- nothing secret at any level ----------------------------------------------------


def test_debug_log_never_carries_openid_tokens_secret_or_issued_jwts(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(
        LIVEKIT_LOG_LEVEL="debug",
        LIVEKIT_ALLOWED_HOMESERVERS=server,
        LIVEKIT_BLOCK_SAME_DEVICE_DUPLICATE="true",
    )
    _, alice_token = stack.login("alice")
    bob, bob_token = stack.login("bob")
    issued = [
        post_json(service, "/sfu/get", sfu_get_body(alice_token, server, room=ROOM)),
        post_json(service, "/get_token", get_token_body(bob_token, server, bob)),
    ]
    for reply in issued:
        assert reply.status == 200, reply.body
    jwts = [reply.json()["jwt"] for reply in issued]
    legacy_identity = decode_livekit_jwt(jwts[0], stack.sfu.api_key, stack.sfu.api_secret)["sub"]
    stack.sfu.add_participant(room_alias(ROOM), str(legacy_identity))
    refusals = {
        401: post_json(service, "/sfu/get", sfu_get_body("openid-rejected-token", server)),
        403: post_json(service, "/sfu/get", sfu_get_body(alice_token, FORBIDDEN_SERVER)),
        409: post_json(service, "/sfu/get", sfu_get_body(alice_token, server, room=ROOM)),
    }
    for status, reply in refusals.items():
        assert reply.status == status, reply.body
        _refusal_line(service, status)

    lines = stop_and_collect(service)
    assert any("DEBUG" in line for line in lines), "the service did not log at debug level"
    forbidden = {
        "LiveKit secret": stack.sfu.api_secret,
        "alice's OpenID token": alice_token,
        "bob's OpenID token": bob_token,
        "rejected OpenID token": "openid-rejected-token",
    }
    for n, token in enumerate(jwts):
        _, payload, signature = token.split(".")
        forbidden[f"issued JWT {n}"] = token
        forbidden[f"issued JWT {n} claims"] = payload
        forbidden[f"issued JWT {n} signature"] = signature
    for line in lines:
        for what, value in forbidden.items():
            assert value not in line, f"{what} in log line: {line}"


# -- client addresses ---------------------------------------------------------------


def test_forwarded_client_address_is_logged_when_peer_is_loopback(stack: Stack) -> None:
    service = stack.start(LIVEKIT_ALLOWED_HOMESERVERS=stack.homeserver.server_name)
    body = sfu_get_body("openid-elsewhere", FORBIDDEN_SERVER)
    reply = _post_with_headers(service, "/sfu/get", body, {"X-Forwarded-For": FORWARDED_CLIENT})
    assert reply.status == 403, reply.body
    line = _refusal_line(service, 403)
    assert f"client={FORWARDED_CLIENT}" in line, line


def test_forwarded_client_address_is_ignored_when_peer_is_not_a_trusted_proxy(
    stack: Stack,
) -> None:
    service = stack.start(
        LIVEKIT_ALLOWED_HOMESERVERS=stack.homeserver.server_name,
        LIVEKIT_TRUSTED_PROXIES="10.0.0.0/8",
    )
    body = sfu_get_body("openid-elsewhere", FORBIDDEN_SERVER)
    reply = _post_with_headers(service, "/sfu/get", body, {"X-Forwarded-For": FORWARDED_CLIENT})
    assert reply.status == 403, reply.body
    line = _refusal_line(service, 403)
    assert "client=127.0.0.1" in line, line
    assert FORWARDED_CLIENT not in service.logs, service.logs


# -- no control characters ----------------------------------------------------------


def _assert_no_control_characters(lines: list[str]) -> None:
    for line in lines:
        assert "\u001b" not in line and "\u009b" not in line, repr(line)
        assert "\x00" not in line and "\r" not in line, repr(line)
        assert not line.startswith(FORGED), repr(line)


def test_control_characters_in_room_never_reach_the_log(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(LIVEKIT_LOG_LEVEL="debug", LIVEKIT_ALLOWED_HOMESERVERS=server)
    hostile_room = f"!\u001b[31mred:example.com\n{FORGED} WARNING matrixrtc_auth: forged\r\x00"
    _, token = stack.login("alice")
    body = sfu_get_body(token, FORBIDDEN_SERVER, room=hostile_room)
    refused = post_json(service, "/sfu/get", body)
    assert refused.status == 403, refused.body
    admitted = post_json(service, "/sfu/get", sfu_get_body(token, server, room=hostile_room))
    assert admitted.status == 200, admitted.body
    _refusal_line(service, 403)
    _assert_no_control_characters(stop_and_collect(service))


def test_control_characters_in_forwarding_headers_never_reach_the_log(stack: Stack) -> None:
    service = stack.start(LIVEKIT_ALLOWED_HOMESERVERS=stack.homeserver.server_name)
    body = sfu_get_body("openid-elsewhere", FORBIDDEN_SERVER)
    hostile_headers = [
        {"X-Forwarded-For": f"\u001b[31m{FORGED}"},
        {"X-Real-IP": f"{FORGED}\u009b0m"},
        {"CF-Connecting-IP": "1.2.3.4\u001b[2J"},
    ]
    for headers in hostile_headers:
        reply = _post_with_headers(service, "/sfu/get", body, headers)
        # Either the HTTP parser refuses the header or the request goes on to its refusal.
        assert reply.status in (400, 403), reply.body
        assert reply.errcode() in ("M_UNRECOGNIZED", "M_FORBIDDEN"), reply.body
    wait_for_line(service, lambda line: is_warning(line) and "status=" in line)
    _assert_no_control_characters(stop_and_collect(service))
