"""Helpers for the black-box tests: a plain HTTP client, request bodies, expected names.

The expected LiveKit names are computed here independently of the service, the
way matrix-js-sdk computes them (``JSON.stringify`` of an array of strings,
SHA-256, unpadded standard base64), so a test fails if the service drifts from
what clients compute on their side.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from tests.support.fake_homeserver import FakeHomeserver
from tests.support.fake_sfu import FakeSfu
from tests.support.service import ServiceProcess
from tests.support.tls import TestCA

ServiceFactory = Callable[..., ServiceProcess]

# A copy of the published vectors (spec/identity-vectors.json), computed with JavaScript.
VECTORS_FILE = Path(__file__).parent / "data" / "identity-vectors.json"
LEGACY_SLOT = "m.call#ROOM"
TOKEN_LIFETIME = 3600


# -- expected names ---------------------------------------------------------------


def js_stringify(values: list[str]) -> str:
    """What JavaScript's ``JSON.stringify`` gives for an array of ordinary strings."""
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def unpadded_sha256_b64(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii").rstrip("=")


def room_alias(room_id: str, slot_id: str = LEGACY_SLOT) -> str:
    return unpadded_sha256_b64(js_stringify([room_id, slot_id]))


def member_identity(user_id: str, device_id: str, member_id: str) -> str:
    return unpadded_sha256_b64(js_stringify([user_id, device_id, member_id]))


def load_vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return loaded


# -- HTTP -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A response from the service."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else value

    def errcode(self) -> str | None:
        try:
            data = self.json()
        except ValueError:
            return None
        return data.get("errcode") if isinstance(data, dict) else None


def call(
    service: ServiceProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> Reply:
    """Sends one request to the service on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, resp.headers, data, time.monotonic() - started)
    finally:
        conn.close()


def post_json(service: ServiceProcess, path: str, payload: Any, timeout: float = 20.0) -> Reply:
    return post_raw(service, path, json.dumps(payload).encode("utf-8"), timeout=timeout)


def post_raw(service: ServiceProcess, path: str, body: bytes, timeout: float = 20.0) -> Reply:
    return call(service, "POST", path, body, {"Content-Type": "application/json"}, timeout=timeout)


# -- request bodies ---------------------------------------------------------------


def openid_token(access_token: str, server_name: str) -> dict[str, Any]:
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "matrix_server_name": server_name,
        "expires_in": 3600,
    }


def sfu_get_body(
    access_token: str,
    server_name: str,
    *,
    room: str = "!room:example.com",
    device_id: str = "DEVICE",
) -> dict[str, Any]:
    return {
        "room": room,
        "openid_token": openid_token(access_token, server_name),
        "device_id": device_id,
    }


def get_token_body(
    access_token: str,
    server_name: str,
    user_id: str,
    *,
    room_id: str = "!tDLCaLXijNtYcJZEey:example.com",
    slot_id: str = "the_id",
    member_id: str = "xyzABCDEF10123",
    device_id: str = "ABCDEFGH",
) -> dict[str, Any]:
    return {
        "room_id": room_id,
        "slot_id": slot_id,
        "openid_token": openid_token(access_token, server_name),
        "member": {
            "id": member_id,
            "claimed_user_id": user_id,
            "claimed_device_id": device_id,
        },
    }


# -- issued tokens ----------------------------------------------------------------


def decode_livekit_jwt(token: str, key: str, secret: str) -> dict[str, Any]:
    """Verifies an issued LiveKit token with the API secret and returns its claims."""
    claims: dict[str, Any] = jwt.decode(
        token,
        key=secret,
        algorithms=["HS256"],
        issuer=key,
        options={"require": ["iss", "sub", "nbf", "exp"], "verify_aud": False},
    )
    return claims


def assert_member_token(
    token: str,
    *,
    key: str,
    secret: str,
    identity: str,
    alias: str,
    issued_between: tuple[float, float],
) -> dict[str, Any]:
    """Checks every claim of a token issued to a call member; returns the claims."""
    claims = decode_livekit_jwt(token, key, secret)
    assert claims["iss"] == key
    assert claims["sub"] == identity
    earliest, latest = issued_between
    assert earliest - 2 <= claims["nbf"] <= latest + 2, (claims["nbf"], issued_between)
    assert claims["exp"] == claims["nbf"] + TOKEN_LIFETIME
    video = claims["video"]
    assert video["room"] == alias
    assert video["roomJoin"] is True
    assert video["canPublish"] is True
    assert video["canSubscribe"] is True
    assert video["canUpdateOwnMetadata"] is True
    assert video.get("roomCreate", False) is False
    for admin_grant in ("roomAdmin", "roomList", "roomRecord"):
        assert video.get(admin_grant, False) is False, admin_grant
    return claims


# -- the system under test with its fakes -----------------------------------------


@dataclass
class Stack:
    """The service's surroundings: a fake SFU, a fake homeserver and the test CA."""

    sfu: FakeSfu
    homeserver: FakeHomeserver
    ca: TestCA
    start_service: ServiceFactory

    def env(self, **overrides: str | None) -> dict[str, str]:
        """The service environment: full access for the fake homeserver, trust in the test CA.

        An override of ``None`` removes the variable.
        """
        env: dict[str, str | None] = {
            "LIVEKIT_URL": self.sfu.url,
            "LIVEKIT_KEY": self.sfu.api_key,
            "LIVEKIT_SECRET": self.sfu.api_secret,
            "LIVEKIT_FULL_ACCESS_HOMESERVERS": self.homeserver.server_name,
            "SSL_CERT_FILE": str(self.ca.cert_file),
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def start(self, **overrides: str | None) -> ServiceProcess:
        return self.start_service(self.env(**overrides))

    def user(self, localpart: str = "alice") -> str:
        return f"@{localpart}:{self.homeserver.server_name}"

    def login(self, localpart: str = "alice") -> tuple[str, str]:
        """A user of the fake homeserver with a fresh OpenID token: (user_id, token)."""
        user_id = self.user(localpart)
        token = f"openid-{localpart}-{secrets.token_urlsafe(18)}"
        self.homeserver.add_token(token, user_id)
        return user_id, token


def wait_for_line(
    service: ServiceProcess, predicate: Callable[[str], bool], timeout: float = 5.0
) -> str:
    """Waits until some log line satisfies ``predicate``; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        for line in service.log_lines():
            if predicate(line):
                return line
        if time.monotonic() >= deadline:
            raise AssertionError(f"no matching log line within {timeout}s:\n{service.logs}")
        time.sleep(0.02)


def is_warning(line: str) -> bool:
    lowered = line.lower()
    return "warn" in lowered or "error" in lowered or "critical" in lowered


def wait_exit(service: ServiceProcess, timeout: float = 6.0) -> int:
    """Waits for a process that should stop by itself (raises if it keeps running)."""
    return service.wait_exit(timeout)


def stop_and_collect(service: ServiceProcess, timeout: float = 10.0) -> list[str]:
    """Stops the service and returns every line it wrote."""
    service.stop()
    deadline = time.monotonic() + timeout
    proc = service.proc
    while proc is not None and proc.stdout is not None and not proc.stdout.closed:
        if time.monotonic() >= deadline:
            raise AssertionError("service output did not end")
        time.sleep(0.02)
    return service.log_lines()
