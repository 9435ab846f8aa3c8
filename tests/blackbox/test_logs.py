"""Black-box tests of the service's log: refusals are explained, issued tokens are traced to
the Matrix user, and no line ever carries a secret, an OpenID token or an issued JWT."""

from __future__ import annotations

from tests.blackbox.helpers import (
    Stack,
    get_token_body,
    is_warning,
    post_json,
    sfu_get_body,
    stop_and_collect,
    wait_for_line,
)


def test_refused_token_is_logged_with_homeserver_and_status(stack: Stack) -> None:
    service = stack.start()
    server = stack.homeserver.server_name
    reply = post_json(service, "/sfu/get", sfu_get_body("unknown-token", server))
    assert reply.status == 401
    wait_for_line(service, lambda line: is_warning(line) and "401" in line and server in line)


def test_failing_homeserver_is_logged_with_its_status(stack: Stack) -> None:
    service = stack.start()
    _, token = stack.login("alice")
    stack.homeserver.userinfo_status(502)
    server = stack.homeserver.server_name
    assert post_json(service, "/sfu/get", sfu_get_body(token, server)).status == 401
    wait_for_line(service, lambda line: is_warning(line) and "502" in line)


def test_restricted_user_asking_for_a_missing_room_is_logged_as_a_warning(
    stack: Stack,
) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS="other.example")
    user_id, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 404
    wait_for_line(
        service, lambda line: is_warning(line) and "missing room" in line and user_id in line
    )


def test_issued_token_is_logged_with_matrix_user(stack: Stack) -> None:
    service = stack.start()
    user_id, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200
    wait_for_line(service, lambda line: "info" in line.lower() and user_id in line)


def test_warning_log_level_hides_info_lines(stack: Stack) -> None:
    service = stack.start(LIVEKIT_LOG_LEVEL="warn")
    user_id, token = stack.login("alice")
    server = stack.homeserver.server_name
    assert post_json(service, "/sfu/get", sfu_get_body(token, server)).status == 200
    assert post_json(service, "/sfu/get", sfu_get_body("unknown", server)).status == 401
    wait_for_line(service, lambda line: is_warning(line) and "401" in line)
    lines = stop_and_collect(service)
    # The issued-token line is an info line: at warning level nothing names alice.
    assert not any(user_id in line and not is_warning(line) for line in lines), lines


def test_no_log_line_carries_secret_openid_token_or_issued_jwt(stack: Stack) -> None:
    service = stack.start(LIVEKIT_LOG_LEVEL="debug")
    server = stack.homeserver.server_name
    alice, alice_token = stack.login("alice")
    bob, bob_token = stack.login("bob")
    issued: list[str] = []
    legacy = post_json(service, "/sfu/get", sfu_get_body(alice_token, server))
    current = post_json(service, "/get_token", get_token_body(bob_token, server, bob))
    for reply in (legacy, current):
        assert reply.status == 200, reply.body
        issued.append(reply.json()["jwt"])
    refused = [
        post_json(service, "/sfu/get", sfu_get_body("unknown-openid-token-123456", server)),
        post_json(service, "/get_token", get_token_body(alice_token, server, bob)),
    ]
    stack.homeserver.userinfo_status(500)
    refused.append(post_json(service, "/sfu/get", sfu_get_body(bob_token, server)))
    assert [r.status for r in refused] == [401, 401, 401]
    wait_for_line(service, lambda line: bob in line and "info" in line.lower())

    lines = stop_and_collect(service)
    assert any(alice in line for line in lines)
    forbidden = {
        "LiveKit secret": stack.sfu.api_secret,
        "alice's OpenID token": alice_token,
        "bob's OpenID token": bob_token,
        "unknown OpenID token": "unknown-openid-token-123456",
    }
    for n, jwt_token in enumerate(issued):
        _, payload, signature = jwt_token.split(".")
        forbidden[f"issued JWT {n}"] = jwt_token
        forbidden[f"issued JWT {n} payload"] = payload
        forbidden[f"issued JWT {n} signature"] = signature
    for line in lines:
        for what, value in forbidden.items():
            assert value not in line, f"{what} in log line: {line}"
