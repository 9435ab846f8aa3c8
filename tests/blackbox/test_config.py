"""Black-box tests of start-up configuration: errors stop the service at once with a message
naming the variable, and values mangled by container tooling are cleaned up."""

from __future__ import annotations

from pathlib import Path

from tests.blackbox.helpers import (
    Stack,
    decode_livekit_jwt,
    post_json,
    sfu_get_body,
    stop_and_collect,
    wait_exit,
)
from tests.support.ports import free_port
from tests.support.service import ServiceProcess


def _start_failing(stack: Stack, **overrides: str | None) -> tuple[int, ServiceProcess]:
    service = stack.start_service(stack.env(**overrides), wait_healthy=False)
    return wait_exit(service), service


def _assert_refused(stack: Stack, variable: str, **overrides: str | None) -> str:
    code, service = _start_failing(stack, **overrides)
    assert code != 0, service.logs
    logs = service.logs
    assert variable in logs, logs
    assert stack.sfu.api_secret not in logs
    return logs


def test_missing_livekit_url_stops_service(stack: Stack) -> None:
    _assert_refused(stack, "LIVEKIT_URL", LIVEKIT_URL=None)


def test_missing_key_stops_service(stack: Stack) -> None:
    _assert_refused(stack, "LIVEKIT_KEY", LIVEKIT_KEY=None)


def test_missing_secret_stops_service(stack: Stack) -> None:
    _assert_refused(stack, "LIVEKIT_SECRET", LIVEKIT_SECRET=None)


def test_bind_and_port_both_set_stops_service(stack: Stack) -> None:
    logs = _assert_refused(stack, "LIVEKIT_JWT_PORT", LIVEKIT_JWT_PORT=str(free_port()))
    assert "LIVEKIT_JWT_BIND" in logs


def test_bad_boolean_stops_service(stack: Stack) -> None:
    _assert_refused(stack, "LIVEKIT_DEBUG", LIVEKIT_DEBUG="sometimes")


def test_bad_log_level_stops_service(stack: Stack) -> None:
    _assert_refused(stack, "LIVEKIT_LOG_LEVEL", LIVEKIT_LOG_LEVEL="loud")


def test_missing_key_file_stops_service(stack: Stack, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file"
    _assert_refused(
        stack,
        "LIVEKIT_KEY_FILE",
        LIVEKIT_KEY_FILE=str(missing),
        LIVEKIT_KEY=None,
        LIVEKIT_SECRET=None,
    )


def _issue(stack: Stack, service: ServiceProcess) -> str:
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    jwt_token: str = reply.json()["jwt"]
    return jwt_token


def test_key_file_supplies_key_and_secret(stack: Stack, tmp_path: Path) -> None:
    key_file = tmp_path / "livekit-keys"
    key_file.write_text(f"{stack.sfu.api_key}: {stack.sfu.api_secret}\n", encoding="utf-8")
    service = stack.start(LIVEKIT_KEY_FILE=str(key_file), LIVEKIT_KEY=None, LIVEKIT_SECRET=None)
    issued = _issue(stack, service)
    claims = decode_livekit_jwt(issued, stack.sfu.api_key, stack.sfu.api_secret)
    assert claims["iss"] == stack.sfu.api_key
    assert [c.status for c in stack.sfu.calls("CreateRoom")] == [200]
    assert stack.sfu.api_secret not in "\n".join(stop_and_collect(service))


def test_key_file_takes_precedence_over_key_variables(stack: Stack, tmp_path: Path) -> None:
    key_file = tmp_path / "livekit-keys"
    key_file.write_text(f"{stack.sfu.api_key}: {stack.sfu.api_secret}\n", encoding="utf-8")
    service = stack.start(
        LIVEKIT_KEY_FILE=str(key_file),
        LIVEKIT_KEY="wrongkey",
        LIVEKIT_SECRET="wrong-secret-wrong-secret-wrong-secret-0000",
    )
    issued = _issue(stack, service)
    decode_livekit_jwt(issued, stack.sfu.api_key, stack.sfu.api_secret)


def test_secret_from_file_is_trimmed(stack: Stack, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{stack.sfu.api_secret}\n", encoding="utf-8")
    service = stack.start(LIVEKIT_SECRET_FROM_FILE=str(secret_file), LIVEKIT_SECRET=None)
    issued = _issue(stack, service)
    decode_livekit_jwt(issued, stack.sfu.api_key, stack.sfu.api_secret)
    assert [c.status for c in stack.sfu.calls("CreateRoom")] == [200]


def test_key_from_file_is_trimmed(stack: Stack, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"  {stack.sfu.api_key}\r\n\n", encoding="utf-8")
    service = stack.start(LIVEKIT_KEY_FROM_FILE=str(key_file), LIVEKIT_KEY=None)
    issued = _issue(stack, service)
    assert decode_livekit_jwt(issued, stack.sfu.api_key, stack.sfu.api_secret)["iss"] == "devkey"


def test_quoted_and_entity_escaped_values_are_cleaned(stack: Stack) -> None:
    service = stack.start(
        LIVEKIT_URL=f'"{stack.sfu.url}"',
        LIVEKIT_KEY=f"&quot;{stack.sfu.api_key}&quot;",
        LIVEKIT_SECRET=f"'\"{stack.sfu.api_secret}\"'\n",
        LIVEKIT_FULL_ACCESS_HOMESERVERS=f'  "{stack.homeserver.server_name}"  ',
        LIVEKIT_DEBUG='"false"',
    )
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    assert reply.json()["url"] == stack.sfu.url
    decode_livekit_jwt(reply.json()["jwt"], stack.sfu.api_key, stack.sfu.api_secret)
    # Full access survived the quoting: the service created the room itself.
    assert [c.status for c in stack.sfu.calls("CreateRoom")] == [200]


def test_boolean_spellings_are_accepted(stack: Stack) -> None:
    service = stack.start(
        LIVEKIT_DEBUG="Off",
        LIVEKIT_BLOCK_SAME_DEVICE_DUPLICATE="no",
        LIVEKIT_BLOCK_SAME_USER_MULTIPLE_DEVICES="0",
    )
    _issue(stack, service)
