"""Request bodies of the token endpoints: parsed, checked and made uniform.

Both ``/sfu/get`` (legacy) and ``/get_token`` (MSC4195) become one
``JoinRequest``. Every check here runs before any network call, so a
malformed request costs the homeserver nothing. Unknown fields are ignored
(newer clients may send more).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from matrixrtc_auth.errors import BadJson, NotJson
from matrixrtc_auth.matrix.servername import (
    MAX_SERVER_NAME_LENGTH,
    InvalidServerName,
    ServerName,
    parse_server_name,
)
from matrixrtc_auth.sfu.naming import LEGACY_SLOT_ID

MAX_NAME_LENGTH = 255
MAX_ACCESS_TOKEN_LENGTH = 1024
MAX_DELAY_TIMEOUT_MS = 7 * 24 * 3600 * 1000
# Restarts run every 80 % of the delay: a tiny delay would make a job spin.
MIN_DELAY_TIMEOUT_MS = 1000
# Delay IDs go into a URL path: printable ASCII only (Synapse's are "syd_" + letters).
_DELAY_ID = re.compile(r"^[\x20-\x7e]{1,255}$")
# Real device IDs are base64-ish but also use '_', '-' and '.'.
_DEVICE_ID = re.compile(r"^[A-Za-z0-9+/=_.-]{1,255}$")


@dataclass(frozen=True)
class OpenIDToken:
    access_token: str
    server: ServerName

    def __repr__(self) -> str:
        return f"OpenIDToken(server={self.server!r}, access_token=***)"


@dataclass(frozen=True)
class DelayedLeave:
    delay_id: str
    delay_timeout_ms: int


@dataclass(frozen=True)
class JoinRequest:
    """What a client asks for, whichever endpoint it used."""

    room_id: str
    slot_id: str
    openid: OpenIDToken
    device_id: str
    # /get_token only: the member ID and the user the client says it is.
    member_id: str | None
    claimed_user_id: str | None
    delayed_leave: DelayedLeave | None

    @property
    def server(self) -> ServerName:
        return self.openid.server

    @property
    def legacy(self) -> bool:
        return self.member_id is None


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise NotJson("The request body is empty")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NotJson("The request body is not valid JSON") from None
    except RecursionError:
        # Nesting deeper than the interpreter's recursion limit fits in 3 KiB.
        raise NotJson("The request body is nested too deeply") from None
    if not isinstance(document, dict):
        raise NotJson("The request body must be a JSON object")
    return document


def parse_legacy(body: dict[str, Any]) -> JoinRequest:
    """``POST /sfu/get``: room, openid_token, device_id."""
    return JoinRequest(
        room_id=_string(body, "room"),
        slot_id=LEGACY_SLOT_ID,
        openid=_openid(body),
        device_id=_device_id(body, "device_id"),
        member_id=None,
        claimed_user_id=None,
        delayed_leave=_delayed_leave(body),
    )


def parse_get_token(body: dict[str, Any]) -> JoinRequest:
    """``POST /get_token``: room_id, slot_id, openid_token, member."""
    member = _object(body, "member")
    return JoinRequest(
        room_id=_string(body, "room_id"),
        slot_id=_string(body, "slot_id"),
        openid=_openid(body),
        device_id=_device_id(member, "claimed_device_id", prefix="member."),
        member_id=_string(member, "id", prefix="member."),
        claimed_user_id=_string(member, "claimed_user_id", prefix="member."),
        delayed_leave=_delayed_leave(body),
    )


def parse_delegate(body: dict[str, Any]) -> JoinRequest:
    """``POST /delegate_delayed_leave``: a ``/get_token`` body whose delay fields are required."""
    join = parse_get_token(body)
    if join.delayed_leave is None:
        raise BadJson("delay_id and delay_timeout are required")
    return join


def _string(
    body: dict[str, Any], key: str, *, prefix: str = "", limit: int = MAX_NAME_LENGTH
) -> str:
    value = body.get(key)
    if value is None:
        raise BadJson(f"Missing field {prefix}{key}")
    if not isinstance(value, str):
        raise BadJson(f"Field {prefix}{key} must be a string")
    if not value:
        raise BadJson(f"Field {prefix}{key} must not be empty")
    if len(value) > limit:
        raise BadJson(f"Field {prefix}{key} is longer than {limit} characters")
    return value


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        raise BadJson(f"Missing field {key}")
    if not isinstance(value, dict):
        raise BadJson(f"Field {key} must be an object")
    return value


def _device_id(body: dict[str, Any], key: str, *, prefix: str = "") -> str:
    value = _string(body, key, prefix=prefix)
    if not _DEVICE_ID.fullmatch(value):
        raise BadJson(f"Field {prefix}{key} has characters other than A-Z a-z 0-9 + / = _ - .")
    return value


def _openid(body: dict[str, Any]) -> OpenIDToken:
    token = _object(body, "openid_token")
    access_token = _string(
        token, "access_token", prefix="openid_token.", limit=MAX_ACCESS_TOKEN_LENGTH
    )
    name = _string(
        token, "matrix_server_name", prefix="openid_token.", limit=MAX_SERVER_NAME_LENGTH
    )
    try:
        server = parse_server_name(name)
    except InvalidServerName:
        raise BadJson("Field openid_token.matrix_server_name is not a valid server name") from None
    return OpenIDToken(access_token, server)


def _delayed_leave(body: dict[str, Any]) -> DelayedLeave | None:
    delay_id = body.get("delay_id")
    delay_timeout = body.get("delay_timeout")
    if delay_id is None and delay_timeout is None:
        return None
    if delay_id is None or delay_timeout is None:
        raise BadJson("delay_id and delay_timeout must be given together")
    delay_id = _string(body, "delay_id")
    if not _DELAY_ID.fullmatch(delay_id):
        raise BadJson("Field delay_id has characters outside printable ASCII")
    # bool is an int in Python; JSON true is not a timeout.
    if isinstance(delay_timeout, bool) or not isinstance(delay_timeout, int):
        raise BadJson("Field delay_timeout must be an integer (milliseconds)")
    if delay_timeout < MIN_DELAY_TIMEOUT_MS:
        raise BadJson(f"Field delay_timeout must be at least {MIN_DELAY_TIMEOUT_MS} ms")
    if delay_timeout > MAX_DELAY_TIMEOUT_MS:
        raise BadJson("Field delay_timeout is longer than a week")
    return DelayedLeave(delay_id, delay_timeout)
