"""Request bodies: required fields, types, limits and character sets, before any network."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from matrixrtc_auth.errors import BadJson, NotJson
from matrixrtc_auth.http.requests import parse_get_token, parse_json_object, parse_legacy

OPENID = {
    "access_token": "tok",
    "token_type": "Bearer",
    "matrix_server_name": "example.com",
    "expires_in": 3600,
}
LEGACY: dict[str, Any] = {"room": "!r:example.com", "openid_token": OPENID, "device_id": "DEV"}
GET_TOKEN: dict[str, Any] = {
    "room_id": "!r:example.com",
    "slot_id": "m.call#ROOM",
    "openid_token": OPENID,
    "member": {"id": "m1", "claimed_user_id": "@a:example.com", "claimed_device_id": "DEV"},
}


def with_change(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return changed


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'"text"', b"\xff\xfe", b"null"])
def test_not_a_json_object(body: bytes) -> None:
    with pytest.raises(NotJson):
        parse_json_object(body)


def test_legacy_request_parses() -> None:
    join = parse_legacy(LEGACY)
    assert (join.room_id, join.slot_id, join.device_id) == ("!r:example.com", "m.call#ROOM", "DEV")
    assert join.legacy and join.server.original == "example.com"
    assert "openid-secret-value" not in repr(join)


def test_get_token_request_parses_and_ignores_unknown_fields() -> None:
    join = parse_get_token({**GET_TOKEN, "something_new": [1, 2]})
    assert (join.member_id, join.claimed_user_id, join.device_id) == (
        "m1",
        "@a:example.com",
        "DEV",
    )
    assert not join.legacy


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("room", ...),
        ("room", 5),
        ("room", ""),
        ("room", "r" * 256),
        ("device_id", ...),
        ("device_id", "DEV ICE"),
        ("device_id", "DÉV"),
        ("device_id", "d" * 256),
        ("device_id", "DEV\n"),
        ("openid_token", ...),
        ("openid_token", "tok"),
        ("openid_token.access_token", ...),
        ("openid_token.access_token", "t" * 1025),
        ("openid_token.matrix_server_name", "evil.com/path"),
        ("openid_token.matrix_server_name", "a" * 256),
        ("openid_token.matrix_server_name", None),
        ("delay_id", "syd_x"),
    ],
)
def test_bad_legacy_fields(path: str, value: Any) -> None:
    with pytest.raises(BadJson):
        parse_legacy(with_change(LEGACY, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("room_id", ...),
        ("slot_id", ...),
        ("slot_id", ["x"]),
        ("member", ...),
        ("member", "x"),
        ("member.id", ...),
        ("member.claimed_user_id", ...),
        ("member.claimed_device_id", ...),
        ("member.claimed_device_id", "a\nb"),
        ("delay_timeout", 5000),
        ("delay_timeout", True),
    ],
)
def test_bad_get_token_fields(path: str, value: Any) -> None:
    with pytest.raises(BadJson):
        parse_get_token(with_change(GET_TOKEN, path, value))


def test_delay_fields_come_together() -> None:
    join = parse_get_token({**GET_TOKEN, "delay_id": "syd_1", "delay_timeout": 8000})
    assert join.delayed_leave is not None and join.delayed_leave.delay_timeout_ms == 8000
    for bad_timeout in (0, -1, "8000", 1.5):
        with pytest.raises(BadJson):
            parse_get_token({**GET_TOKEN, "delay_id": "syd_1", "delay_timeout": bad_timeout})


def test_device_ids_with_real_world_characters_are_accepted() -> None:
    join = parse_legacy(with_change(LEGACY, "device_id", "abc_DEF-1.2+/="))
    assert join.device_id == "abc_DEF-1.2+/="


@pytest.mark.parametrize(
    ("delay_id", "delay_timeout"),
    [("syd_1", 999), ("syd_1", 1), ("syd é", 5000), ("syd\ud800", 5000), ("syd\tx", 5000)],
)
def test_delay_fields_out_of_bounds_are_refused(delay_id: str, delay_timeout: int) -> None:
    with pytest.raises(BadJson):
        parse_get_token({**GET_TOKEN, "delay_id": delay_id, "delay_timeout": delay_timeout})
