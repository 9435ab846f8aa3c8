"""Black-box tests of the access lists (PROTOCOL.md section 5).

``LIVEKIT_ALLOWED_HOMESERVERS``, ``LIVEKIT_BLOCKED_HOMESERVERS`` and
``LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS`` refuse a homeserver with 403
``M_FORBIDDEN`` from configuration alone: the homeserver is never asked and the
SFU never called. The checks run in the order of section 5, visible in the cause
the log gives. Contradictory lists stop the service at start with a message that
names the variables and the server, and a redundant block list is warned about.
"""

from __future__ import annotations

import time

from tests.blackbox.helpers import (
    Reply,
    Stack,
    get_token_body,
    is_warning,
    post_json,
    room_alias,
    sfu_get_body,
    wait_exit,
    wait_for_line,
)
from tests.support.service import ServiceProcess

OTHER = "other.example"
ROOM = "!room:example.com"


def _ask_both_endpoints(stack: Stack, service: ServiceProcess) -> list[Reply]:
    user_id, token = stack.login("alice")
    server = stack.homeserver.server_name
    return [
        post_json(service, "/sfu/get", sfu_get_body(token, server, room=ROOM)),
        post_json(service, "/get_token", get_token_body(token, server, user_id, room_id=ROOM)),
    ]


def _assert_forbidden_without_asking(stack: Stack, replies: list[Reply]) -> None:
    for reply in replies:
        assert reply.status == 403, reply.body
        assert reply.errcode() == "M_FORBIDDEN", reply.body
    assert stack.homeserver.requests == [], stack.homeserver.requests
    assert stack.sfu.calls() == [], stack.sfu.calls()


def _refusal_cause(service: ServiceProcess) -> str:
    return wait_for_line(service, lambda line: is_warning(line) and "status=403" in line)


def _start_refused(stack: Stack, **overrides: str | None) -> tuple[int, str, float]:
    """Starts a service that must refuse its configuration: (exit status, output, seconds)."""
    started = time.monotonic()
    service = stack.start_service(stack.env(**overrides), wait_healthy=False)
    code = wait_exit(service)
    return code, service.logs, time.monotonic() - started


# -- allow list -------------------------------------------------------------------


def test_server_missing_from_allow_list_is_forbidden_without_asking_it(stack: Stack) -> None:
    service = stack.start(LIVEKIT_ALLOWED_HOMESERVERS=OTHER)
    _assert_forbidden_without_asking(stack, _ask_both_endpoints(stack, service))
    assert "LIVEKIT_ALLOWED_HOMESERVERS" in _refusal_cause(service)


def test_server_on_allow_list_gets_token(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(LIVEKIT_ALLOWED_HOMESERVERS=f"{OTHER}, {server}")
    for reply in _ask_both_endpoints(stack, service):
        assert reply.status == 200, reply.body
        assert reply.json()["jwt"]


def test_allowed_restricted_server_may_join_existing_room_only(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(
        LIVEKIT_ALLOWED_HOMESERVERS=server, LIVEKIT_FULL_ACCESS_HOMESERVERS=OTHER
    )
    _, token = stack.login("alice")
    missing = post_json(service, "/sfu/get", sfu_get_body(token, server, room=ROOM))
    assert missing.status == 404, missing.body
    assert missing.errcode() == "M_NOT_FOUND"
    stack.sfu.add_room(room_alias(ROOM))
    existing = post_json(service, "/sfu/get", sfu_get_body(token, server, room=ROOM))
    assert existing.status == 200, existing.body


# -- block list -------------------------------------------------------------------


def test_blocked_server_is_forbidden_without_asking_it(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(
        LIVEKIT_BLOCKED_HOMESERVERS=server, LIVEKIT_FULL_ACCESS_HOMESERVERS=OTHER
    )
    stack.sfu.add_room(room_alias(ROOM))
    stack.sfu.clear_calls()
    _assert_forbidden_without_asking(stack, _ask_both_endpoints(stack, service))
    assert "LIVEKIT_BLOCKED_HOMESERVERS" in _refusal_cause(service)


def test_server_not_on_block_list_gets_token(stack: Stack) -> None:
    service = stack.start(LIVEKIT_BLOCKED_HOMESERVERS=f"{OTHER},blocked.example")
    for reply in _ask_both_endpoints(stack, service):
        assert reply.status == 200, reply.body


# -- block-restricted ---------------------------------------------------------------


def test_restricted_server_is_forbidden_when_restricted_ones_are_blocked(stack: Stack) -> None:
    service = stack.start(
        LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS="true", LIVEKIT_FULL_ACCESS_HOMESERVERS=OTHER
    )
    stack.sfu.add_room(room_alias(ROOM))
    stack.sfu.clear_calls()
    _assert_forbidden_without_asking(stack, _ask_both_endpoints(stack, service))
    assert "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS" in _refusal_cause(service)


def test_full_access_server_gets_token_when_restricted_ones_are_blocked(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(
        LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS="true",
        LIVEKIT_FULL_ACCESS_HOMESERVERS=f"{server},{OTHER}",
    )
    for reply in _ask_both_endpoints(stack, service):
        assert reply.status == 200, reply.body


# -- order of the checks ------------------------------------------------------------


def test_allow_list_is_checked_before_block_restricted(stack: Stack) -> None:
    service = stack.start(
        LIVEKIT_ALLOWED_HOMESERVERS=OTHER,
        LIVEKIT_FULL_ACCESS_HOMESERVERS=OTHER,
        LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS="true",
    )
    _assert_forbidden_without_asking(stack, _ask_both_endpoints(stack, service))
    cause = _refusal_cause(service)
    assert "LIVEKIT_ALLOWED_HOMESERVERS" in cause, cause
    assert "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS" not in cause, cause


def test_allow_list_is_checked_before_block_list(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(
        LIVEKIT_ALLOWED_HOMESERVERS=OTHER,
        LIVEKIT_BLOCKED_HOMESERVERS=server,
        LIVEKIT_FULL_ACCESS_HOMESERVERS=OTHER,
    )
    _assert_forbidden_without_asking(stack, _ask_both_endpoints(stack, service))
    cause = _refusal_cause(service)
    assert "LIVEKIT_ALLOWED_HOMESERVERS" in cause, cause
    assert "LIVEKIT_BLOCKED_HOMESERVERS" not in cause, cause


def test_block_restricted_is_checked_before_block_list(stack: Stack) -> None:
    server = stack.homeserver.server_name
    service = stack.start(
        LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS="true",
        LIVEKIT_BLOCKED_HOMESERVERS=server,
        LIVEKIT_FULL_ACCESS_HOMESERVERS=OTHER,
    )
    _assert_forbidden_without_asking(stack, _ask_both_endpoints(stack, service))
    cause = _refusal_cause(service)
    assert "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS" in cause, cause
    assert "LIVEKIT_BLOCKED_HOMESERVERS" not in cause, cause


# -- start-up refusals and warnings -------------------------------------------------


def test_server_both_allowed_and_blocked_stops_service_naming_both_lists(stack: Stack) -> None:
    server = stack.homeserver.server_name
    code, output, elapsed = _start_refused(
        stack,
        LIVEKIT_ALLOWED_HOMESERVERS=f"{OTHER},{server}",
        LIVEKIT_BLOCKED_HOMESERVERS=server,
        LIVEKIT_FULL_ACCESS_HOMESERVERS=OTHER,
    )
    assert code != 0, output
    assert elapsed < 6, elapsed
    assert "LIVEKIT_ALLOWED_HOMESERVERS" in output, output
    assert "LIVEKIT_BLOCKED_HOMESERVERS" in output, output
    assert server in output, output
    assert stack.sfu.api_secret not in output


def test_server_both_full_access_and_blocked_stops_service_naming_both_lists(
    stack: Stack,
) -> None:
    server = stack.homeserver.server_name
    code, output, elapsed = _start_refused(
        stack,
        LIVEKIT_FULL_ACCESS_HOMESERVERS=f"{server},{OTHER}",
        LIVEKIT_BLOCKED_HOMESERVERS=server,
    )
    assert code != 0, output
    assert elapsed < 6, elapsed
    assert "LIVEKIT_FULL_ACCESS_HOMESERVERS" in output, output
    assert "LIVEKIT_BLOCKED_HOMESERVERS" in output, output
    assert server in output, output
    assert stack.sfu.api_secret not in output


def test_block_restricted_with_allowed_restricted_server_stops_service_naming_it(
    stack: Stack,
) -> None:
    server = stack.homeserver.server_name
    code, output, elapsed = _start_refused(
        stack,
        LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS="true",
        LIVEKIT_ALLOWED_HOMESERVERS=f"{OTHER},{server}",
        LIVEKIT_FULL_ACCESS_HOMESERVERS=OTHER,
    )
    assert code != 0, output
    assert elapsed < 6, elapsed
    assert "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS" in output, output
    assert "LIVEKIT_ALLOWED_HOMESERVERS" in output, output
    assert "LIVEKIT_FULL_ACCESS_HOMESERVERS" in output, output
    assert server in output, output
    assert stack.sfu.api_secret not in output


def test_block_list_next_to_allow_list_is_warned_about_and_allowed_server_works(
    stack: Stack,
) -> None:
    server = stack.homeserver.server_name
    service = stack.start(LIVEKIT_ALLOWED_HOMESERVERS=server, LIVEKIT_BLOCKED_HOMESERVERS=OTHER)
    line = wait_for_line(
        service,
        lambda line: (
            is_warning(line)
            and "LIVEKIT_BLOCKED_HOMESERVERS" in line
            and "LIVEKIT_ALLOWED_HOMESERVERS" in line
        ),
    )
    assert stack.sfu.api_secret not in line
    for reply in _ask_both_endpoints(stack, service):
        assert reply.status == 200, reply.body
