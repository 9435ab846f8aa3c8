"""A fake LiveKit SFU that speaks the real RoomService Twirp API on loopback.

``FakeSfu`` answers ``POST <base>/twirp/livekit.RoomService/<Method>`` with the
protobuf messages of ``livekit.protocol`` (``application/protobuf``; JSON is
accepted too, as real Twirp servers do), checks the caller's access token the way
LiveKit does (HS256, signed with the API secret of the key named in ``iss``,
``exp`` required, the grant each method needs) and keeps rooms and participants
in memory. Every call is recorded with its decoded request and token claims, and
knobs make calls fail or hang, so tests can assert what the service asked for
and how it copes with a failing SFU.

It runs in a background thread (see ``ThreadedServer``), so it can be used from
sync tests, async tests and scripts alike::

    with FakeSfu() as sfu:
        env = {"LIVEKIT_URL": sfu.url, "LIVEKIT_KEY": sfu.api_key, ...}
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.protocol import models
from livekit.protocol import room as room_pb

from tests.support.threaded_server import ThreadedServer

DEFAULT_API_KEY = "devkey"
DEFAULT_API_SECRET = "fake-sfu-secret-0123456789-abcdefghijklmnop"

_TWIRP_PREFIX = "/twirp/livekit.RoomService/"

# Twirp error codes and the HTTP status each one travels with.
_TWIRP_STATUS = {
    "invalid_argument": 400,
    "malformed": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "resource_exhausted": 429,
    "internal": 500,
    "unknown": 500,
    "unimplemented": 501,
    "unavailable": 503,
}
_CODE_FOR_STATUS = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "already_exists",
    429: "resource_exhausted",
    501: "unimplemented",
    503: "unavailable",
}


@dataclass(frozen=True)
class RecordedCall:
    """One RoomService call as the fake SFU saw it."""

    method: str
    request: Message
    # Verified token claims; empty when the token was refused.
    claims: dict[str, Any]
    status: int
    # The HTTP path the call was posted to (shows any base path taken from LIVEKIT_URL).
    path: str = ""
    at: float = field(default_factory=time.time)


class TwirpError(Exception):
    """Raised by a method handler to answer with a Twirp error."""

    def __init__(self, code: str, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status if status is not None else _TWIRP_STATUS.get(code, 500)


@dataclass
class _Room:
    info: models.Room
    participants: dict[str, models.ParticipantInfo] = field(default_factory=dict)

    def snapshot(self) -> models.Room:
        out = models.Room()
        out.CopyFrom(self.info)
        out.num_participants = len(self.participants)
        return out


class FakeSfu(ThreadedServer):
    """An in-memory LiveKit RoomService reachable at :attr:`url`."""

    def __init__(
        self, api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self._lock = threading.Lock()
        self._rooms: dict[str, _Room] = {}
        self._calls: list[RecordedCall] = []
        self._failures: dict[str, tuple[int, int]] = {}
        self._hangs: dict[str, float] = {}
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        super().__init__(app)

    # -- addresses -------------------------------------------------------------

    @property
    def url(self) -> str:
        """The WebSocket URL clients would get; its http form serves the API."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- state -----------------------------------------------------------------

    def add_room(self, name: str) -> None:
        with self._lock:
            self._ensure_room(name, room_pb.CreateRoomRequest(name=name))

    def remove_room(self, name: str) -> None:
        with self._lock:
            self._rooms.pop(name, None)

    def room_names(self) -> set[str]:
        with self._lock:
            return set(self._rooms)

    def room(self, name: str) -> models.Room | None:
        with self._lock:
            found = self._rooms.get(name)
            return None if found is None else found.snapshot()

    def add_participant(self, room_name: str, identity: str) -> None:
        """Puts ``identity`` into the room, creating the room as LiveKit does on join."""
        with self._lock:
            target = self._ensure_room(room_name, room_pb.CreateRoomRequest(name=room_name))
            target.participants[identity] = models.ParticipantInfo(
                sid=f"PA_{secrets.token_hex(6)}",
                identity=identity,
                state=models.ParticipantInfo.State.ACTIVE,
                joined_at=int(time.time()),
                joined_at_ms=int(time.time() * 1000),
            )

    def remove_participant(self, room_name: str, identity: str) -> None:
        with self._lock:
            target = self._rooms.get(room_name)
            if target is not None:
                target.participants.pop(identity, None)

    def participants(self, room_name: str) -> set[str]:
        with self._lock:
            target = self._rooms.get(room_name)
            return set() if target is None else set(target.participants)

    # -- recording and knobs ---------------------------------------------------

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Calls answered so far (a hanging call shows up once answered), oldest first."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def fail_next(self, method: str, status: int = 500, count: int = 1) -> None:
        """The next ``count`` authorised calls of ``method`` answer a Twirp error."""
        with self._lock:
            if count <= 0:
                self._failures.pop(method, None)
            else:
                self._failures[method] = (status, count)

    def hang(self, method: str, seconds: float) -> None:
        """Calls of ``method`` are answered only after ``seconds`` (0 turns it off)."""
        with self._lock:
            if seconds <= 0:
                self._hangs.pop(method, None)
            else:
                self._hangs[method] = seconds

    # -- HTTP ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        marker = path.find(_TWIRP_PREFIX)
        if marker < 0 or request.method != "POST":
            return _twirp_error(TwirpError("bad_route", f"no handler for {request.method} {path}"))
        method = path[marker + len(_TWIRP_PREFIX) :]
        spec = _METHODS.get(method)
        if spec is None:
            return _twirp_error(TwirpError("bad_route", f"unknown method {method}"))
        request_type, handler = spec
        content_type = request.content_type
        as_json = content_type == "application/json"
        if content_type not in ("application/protobuf", "application/json"):
            return _twirp_error(TwirpError("bad_route", f"unexpected content type {content_type}"))
        body = await request.read()
        message = request_type()
        try:
            if as_json:
                json_format.Parse(body.decode("utf-8"), message)
            else:
                message.ParseFromString(body)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
            return self._refuse(request, method, message, {}, TwirpError("malformed", str(exc)))

        with self._lock:
            delay = self._hangs.get(method, 0.0)
        if delay:
            await asyncio.sleep(delay)

        try:
            claims = self._verify(request.headers.get("Authorization", ""))
        except TwirpError as exc:
            return self._refuse(request, method, message, {}, exc)
        try:
            with self._lock:
                self._check_injected_failure(method)
                reply = handler(self, message, claims)
        except TwirpError as exc:
            return self._refuse(request, method, message, claims, exc)
        self._record(request, method, message, claims, 200)
        if as_json:
            return web.Response(
                text=json_format.MessageToJson(reply), content_type="application/json"
            )
        return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")

    def _record(
        self,
        request: web.Request,
        method: str,
        message: Message,
        claims: dict[str, Any],
        status: int,
    ) -> None:
        with self._lock:
            self._calls.append(RecordedCall(method, message, claims, status, request.path))

    def _refuse(
        self,
        request: web.Request,
        method: str,
        message: Message,
        claims: dict[str, Any],
        error: TwirpError,
    ) -> web.Response:
        self._record(request, method, message, claims, error.status)
        return _twirp_error(error)

    def _verify(self, authorization: str) -> dict[str, Any]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TwirpError("unauthenticated", "missing or malformed Authorization header")
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                key=self.api_secret,
                algorithms=["HS256"],
                issuer=self.api_key,
                options={"require": ["exp", "iss"]},
            )
        except jwt.InvalidIssuerError as exc:
            raise TwirpError("unauthenticated", f"unknown API key: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise TwirpError("unauthenticated", f"invalid token: {exc}") from exc
        return claims

    def _check_injected_failure(self, method: str) -> None:
        failure = self._failures.get(method)
        if failure is None:
            return
        status, remaining = failure
        if remaining <= 1:
            del self._failures[method]
        else:
            self._failures[method] = (status, remaining - 1)
        code = _CODE_FOR_STATUS.get(status, "internal" if status >= 500 else "unknown")
        raise TwirpError(code, f"injected failure of {method}", status)

    # -- RoomService methods (called with the lock held) -----------------------

    def _ensure_room(self, name: str, spec: room_pb.CreateRoomRequest) -> _Room:
        existing = self._rooms.get(name)
        if existing is not None:
            return existing
        now = time.time()
        created = _Room(
            models.Room(
                sid=f"RM_{secrets.token_hex(6)}",
                name=name,
                empty_timeout=spec.empty_timeout,
                departure_timeout=spec.departure_timeout,
                max_participants=spec.max_participants,
                metadata=spec.metadata,
                creation_time=int(now),
                creation_time_ms=int(now * 1000),
            )
        )
        self._rooms[name] = created
        return created

    def _create_room(self, message: Message, claims: dict[str, Any]) -> Message:
        assert isinstance(message, room_pb.CreateRoomRequest)
        _require(claims, "roomCreate")
        if not message.name:
            raise TwirpError("invalid_argument", "room name is required")
        return self._ensure_room(message.name, message).snapshot()

    def _list_rooms(self, message: Message, claims: dict[str, Any]) -> Message:
        assert isinstance(message, room_pb.ListRoomsRequest)
        _require(claims, "roomList")
        wanted = set(message.names)
        return room_pb.ListRoomsResponse(
            rooms=[r.snapshot() for n, r in self._rooms.items() if not wanted or n in wanted]
        )

    def _delete_room(self, message: Message, claims: dict[str, Any]) -> Message:
        assert isinstance(message, room_pb.DeleteRoomRequest)
        _require(claims, "roomCreate")
        if self._rooms.pop(message.room, None) is None:
            raise TwirpError("not_found", "requested room does not exist")
        return room_pb.DeleteRoomResponse()

    def _list_participants(self, message: Message, claims: dict[str, Any]) -> Message:
        assert isinstance(message, room_pb.ListParticipantsRequest)
        _require_room_admin(claims, message.room)
        target = self._rooms.get(message.room)
        if target is None:
            raise TwirpError("not_found", "requested room does not exist")
        return room_pb.ListParticipantsResponse(participants=list(target.participants.values()))

    def _get_participant(self, message: Message, claims: dict[str, Any]) -> Message:
        assert isinstance(message, room_pb.RoomParticipantIdentity)
        _require_room_admin(claims, message.room)
        target = self._rooms.get(message.room)
        found = None if target is None else target.participants.get(message.identity)
        if found is None:
            raise TwirpError("not_found", "participant not found")
        return found


def _grants(claims: dict[str, Any]) -> dict[str, Any]:
    video = claims.get("video")
    return video if isinstance(video, dict) else {}


def _require(claims: dict[str, Any], grant: str) -> None:
    if _grants(claims).get(grant) is not True:
        raise TwirpError("permission_denied", f"token lacks the {grant} grant")


def _require_room_admin(claims: dict[str, Any], room_name: str) -> None:
    _require(claims, "roomAdmin")
    if _grants(claims).get("room") != room_name:
        raise TwirpError("permission_denied", f"token is not for room {room_name!r}")


def _twirp_error(error: TwirpError) -> web.Response:
    return web.json_response({"code": error.code, "msg": error.msg}, status=error.status)


_Handler = Callable[[FakeSfu, Message, dict[str, Any]], Message]
_METHODS: dict[str, tuple[type[Message], _Handler]] = {
    "CreateRoom": (room_pb.CreateRoomRequest, FakeSfu._create_room),
    "ListRooms": (room_pb.ListRoomsRequest, FakeSfu._list_rooms),
    "DeleteRoom": (room_pb.DeleteRoomRequest, FakeSfu._delete_room),
    "ListParticipants": (room_pb.ListParticipantsRequest, FakeSfu._list_participants),
    "GetParticipant": (room_pb.RoomParticipantIdentity, FakeSfu._get_participant),
}
