"""End-to-end token issuing: real Synapse users, the service process and a fake LiveKit SFU.

A user registered on the shared Synapse asks it for an OpenID token and
hands it to the service, which verifies it over the federation API (TLS,
certificate from the test CA), creates the LiveKit room on the fake SFU and
answers with a LiveKit access token. The tests check that token with the
official verifier, the room the SFU was asked to create, the refusal of forged
tokens and of a wrong claimed user, and what the service logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from livekit.api import TokenVerifier
from livekit.api.access_token import Claims
from livekit.protocol import room as room_pb

from tests.conftest import ServiceFactory
from tests.e2e.synapse import JsonDict, SynapseServer, SynapseUser, http_json
from tests.support import tls
from tests.support.fake_sfu import FakeSfu
from tests.support.service import ServiceProcess

LEGACY_SLOT = "m.call#ROOM"

# Besides these, the service process inherits only PATH, locale and home settings.
_INHERITED_ENV = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT"}


def livekit_name(*parts: str) -> str:
    """Unpadded standard base64 of SHA-256 of ``JSON.stringify(parts)`` (ASCII inputs)."""
    canonical = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii").rstrip("=")


def service_env(fake_sfu: FakeSfu, synapse: SynapseServer, test_ca: tls.TestCA) -> dict[str, str]:
    return {
        "LIVEKIT_URL": fake_sfu.url,
        "LIVEKIT_KEY": fake_sfu.api_key,
        "LIVEKIT_SECRET": fake_sfu.api_secret,
        "LIVEKIT_FULL_ACCESS_HOMESERVERS": synapse.server_name,
        "SSL_CERT_FILE": str(test_ca.cert_file),
    }


@pytest.fixture
def service(
    start_service: ServiceFactory, fake_sfu: FakeSfu, synapse: SynapseServer, test_ca: tls.TestCA
) -> ServiceProcess:
    return start_service(service_env(fake_sfu, synapse, test_ca))


def post(service: ServiceProcess, path: str, body: JsonDict) -> tuple[int, JsonDict | str]:
    return http_json("POST", service.base_url + path, body)


def sfu_get_body(room_id: str, openid_token: JsonDict, device_id: str) -> JsonDict:
    return {"room": room_id, "openid_token": openid_token, "device_id": device_id}


def get_token_body(
    room_id: str,
    openid_token: JsonDict,
    *,
    member_id: str,
    claimed_user_id: str,
    claimed_device_id: str,
) -> JsonDict:
    return {
        "room_id": room_id,
        "slot_id": LEGACY_SLOT,
        "openid_token": openid_token,
        "member": {
            "id": member_id,
            "claimed_user_id": claimed_user_id,
            "claimed_device_id": claimed_device_id,
        },
    }


def verified_claims(fake_sfu: FakeSfu, token: str) -> Claims:
    return TokenVerifier(fake_sfu.api_key, fake_sfu.api_secret).verify(token)


def assert_participant_token(fake_sfu: FakeSfu, token: str, *, identity: str, room: str) -> None:
    claims = verified_claims(fake_sfu, token)
    assert claims.identity == identity
    video = claims.video
    assert video is not None
    assert video.room == room
    assert video.room_join is True
    assert video.can_publish is True
    assert video.can_subscribe is True
    assert video.can_update_own_metadata is True
    assert not video.room_create

    raw: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    assert raw["iss"] == fake_sfu.api_key
    assert abs(raw["nbf"] - time.time()) < 60
    assert 3600 - 5 <= raw["exp"] - raw["nbf"] <= 3600 + 5


def created_rooms(fake_sfu: FakeSfu) -> list[str]:
    names = []
    for call in fake_sfu.calls("CreateRoom"):
        assert isinstance(call.request, room_pb.CreateRoomRequest)
        names.append(call.request.name)
    return names


def assert_unauthorized(status: int, body: JsonDict | str) -> None:
    assert status == 401, body
    assert isinstance(body, dict), body
    assert body["errcode"] == "M_UNAUTHORIZED"
    assert isinstance(body.get("error"), str)


def wait_for_new_log(service: ServiceProcess, seen: int, needle: str, timeout: float = 5.0) -> str:
    """Waits for a line after the first ``seen`` log lines that contains ``needle``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in service.log_lines()[seen:]:
            if needle in line:
                return line
        time.sleep(0.02)
    raise AssertionError(f"no new log line with {needle!r} within {timeout}s:\n{service.logs}")


def altered(token: str) -> str:
    """The same token with its last character changed."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


# -- successful requests -----------------------------------------------------------------------


def test_sfu_get_issues_token_for_registered_user(
    service: ServiceProcess,
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    synapse_user: SynapseUser,
) -> None:
    room_id = synapse.client.create_room(synapse_user)
    openid_token = synapse.client.openid_token(synapse_user)

    status, body = post(
        service, "/sfu/get", sfu_get_body(room_id, openid_token, synapse_user.device_id)
    )

    assert status == 200, body
    assert isinstance(body, dict)
    assert body["url"] == fake_sfu.url
    alias = livekit_name(room_id, LEGACY_SLOT)
    assert_participant_token(
        fake_sfu,
        body["jwt"],
        identity=f"{synapse_user.user_id}:{synapse_user.device_id}",
        room=alias,
    )
    assert alias in created_rooms(fake_sfu)
    assert alias in fake_sfu.room_names()


def test_get_token_issues_token_for_registered_user(
    service: ServiceProcess,
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    synapse_user: SynapseUser,
) -> None:
    room_id = synapse.client.create_room(synapse_user)
    openid_token = synapse.client.openid_token(synapse_user)
    member_id = str(uuid.uuid4())

    status, body = post(
        service,
        "/get_token",
        get_token_body(
            room_id,
            openid_token,
            member_id=member_id,
            claimed_user_id=synapse_user.user_id,
            claimed_device_id=synapse_user.device_id,
        ),
    )

    assert status == 200, body
    assert isinstance(body, dict)
    assert body["url"] == fake_sfu.url
    alias = livekit_name(room_id, LEGACY_SLOT)
    assert_participant_token(
        fake_sfu,
        body["jwt"],
        identity=livekit_name(synapse_user.user_id, synapse_user.device_id, member_id),
        room=alias,
    )
    assert alias in created_rooms(fake_sfu)
    assert alias in fake_sfu.room_names()


def test_legacy_and_current_clients_meet_in_the_same_livekit_room(
    service: ServiceProcess,
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    synapse_user: SynapseUser,
) -> None:
    other = synapse.client.register()
    room_id = synapse.client.create_room(synapse_user)

    legacy_status, legacy = post(
        service,
        "/sfu/get",
        sfu_get_body(room_id, synapse.client.openid_token(synapse_user), synapse_user.device_id),
    )
    current_status, current = post(
        service,
        "/get_token",
        get_token_body(
            room_id,
            synapse.client.openid_token(other),
            member_id=str(uuid.uuid4()),
            claimed_user_id=other.user_id,
            claimed_device_id=other.device_id,
        ),
    )

    assert legacy_status == 200, legacy
    assert current_status == 200, current
    assert isinstance(legacy, dict) and isinstance(current, dict)
    legacy_video = verified_claims(fake_sfu, legacy["jwt"]).video
    current_video = verified_claims(fake_sfu, current["jwt"]).video
    assert legacy_video is not None and current_video is not None
    assert legacy_video.room == current_video.room == livekit_name(room_id, LEGACY_SLOT)


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/sfu/get", "/get_token"])
@pytest.mark.parametrize("tampering", ["forged", "altered"])
def test_forged_or_altered_openid_token_is_refused(
    service: ServiceProcess,
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    synapse_user: SynapseUser,
    endpoint: str,
    tampering: str,
) -> None:
    room_id = synapse.client.create_room(synapse_user)
    openid_token = synapse.client.openid_token(synapse_user)
    genuine = str(openid_token["access_token"])
    bad = altered(genuine) if tampering == "altered" else f"forged{uuid.uuid4().hex}"
    bad_token = {**openid_token, "access_token": bad}
    if endpoint == "/sfu/get":
        request = sfu_get_body(room_id, bad_token, synapse_user.device_id)
    else:
        request = get_token_body(
            room_id,
            bad_token,
            member_id=str(uuid.uuid4()),
            claimed_user_id=synapse_user.user_id,
            claimed_device_id=synapse_user.device_id,
        )

    status, body = post(service, endpoint, request)

    assert_unauthorized(status, body)
    assert bad not in json.dumps(body)
    assert created_rooms(fake_sfu) == []
    # The genuine token still works: the refusal was about the tampered one.
    code, userinfo = synapse.client.openid_userinfo(genuine)
    assert (code, userinfo) == (200, {"sub": synapse_user.user_id})


def test_token_of_real_user_with_wrong_claimed_user_id_is_refused(
    service: ServiceProcess,
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    synapse_user: SynapseUser,
) -> None:
    victim = synapse.client.register()
    room_id = synapse.client.create_room(victim)

    status, body = post(
        service,
        "/get_token",
        get_token_body(
            room_id,
            synapse.client.openid_token(synapse_user),
            member_id=str(uuid.uuid4()),
            claimed_user_id=victim.user_id,
            claimed_device_id=victim.device_id,
        ),
    )

    assert_unauthorized(status, body)
    assert created_rooms(fake_sfu) == []


def test_user_of_restricted_homeserver_only_joins_existing_rooms(
    start_service: ServiceFactory,
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    synapse_user: SynapseUser,
    test_ca: tls.TestCA,
) -> None:
    env = service_env(fake_sfu, synapse, test_ca)
    env["LIVEKIT_FULL_ACCESS_HOMESERVERS"] = "full-access.invalid"
    service = start_service(env)
    room_id = synapse.client.create_room(synapse_user)
    alias = livekit_name(room_id, LEGACY_SLOT)

    def ask() -> tuple[int, JsonDict | str]:
        token = synapse.client.openid_token(synapse_user)
        return post(service, "/sfu/get", sfu_get_body(room_id, token, synapse_user.device_id))

    status, body = ask()
    assert status == 404, body
    assert isinstance(body, dict) and body["errcode"] == "M_NOT_FOUND"
    assert created_rooms(fake_sfu) == []

    fake_sfu.add_room(alias)
    status, body = ask()
    assert status == 200, body
    assert isinstance(body, dict)
    assert_participant_token(
        fake_sfu,
        body["jwt"],
        identity=f"{synapse_user.user_id}:{synapse_user.device_id}",
        room=alias,
    )
    assert created_rooms(fake_sfu) == []


# -- logs and configuration --------------------------------------------------------------------


def test_log_names_the_user_and_never_the_openid_token(
    service: ServiceProcess,
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    synapse_user: SynapseUser,
) -> None:
    room_id = synapse.client.create_room(synapse_user)
    good = synapse.client.openid_token(synapse_user)
    member_id = str(uuid.uuid4())
    status, body = post(
        service,
        "/get_token",
        get_token_body(
            room_id,
            good,
            member_id=member_id,
            claimed_user_id=synapse_user.user_id,
            claimed_device_id=synapse_user.device_id,
        ),
    )
    assert status == 200, body
    assert isinstance(body, dict)
    issued = str(body["jwt"])
    service.wait_for_log(synapse_user.user_id)

    forged = f"forged{uuid.uuid4().hex}"
    seen = len(service.log_lines())
    refused, _ = post(
        service,
        "/sfu/get",
        sfu_get_body(room_id, {**good, "access_token": forged}, synapse_user.device_id),
    )
    assert refused == 401
    # The refusal is logged naming the homeserver that refused the token.
    wait_for_new_log(service, seen, synapse.server_name)

    logs = service.logs
    assert str(good["access_token"]) not in logs
    assert forged not in logs
    assert issued not in logs
    assert fake_sfu.api_secret not in logs


def test_service_process_is_configured_only_through_its_environment(
    service: ServiceProcess,
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    synapse_user: SynapseUser,
    test_ca: tls.TestCA,
) -> None:
    assert service.proc is not None
    proc_dir = Path("/proc") / str(service.proc.pid)
    argv = proc_dir.joinpath("cmdline").read_bytes().split(b"\0")[:-1]
    assert argv[1:] == [b"-m", b"matrixrtc_auth"]
    assert Path(argv[0].decode()).resolve() == Path(sys.executable).resolve()

    environ = dict(
        entry.decode().split("=", 1)
        for entry in proc_dir.joinpath("environ").read_bytes().split(b"\0")
        if entry
    )
    ours = {"LIVEKIT_JWT_BIND": f"127.0.0.1:{service.port}"} | service_env(
        fake_sfu, synapse, test_ca
    )
    assert {k: environ.get(k) for k in ours} == ours
    assert set(environ) - set(ours) <= _INHERITED_ENV

    # And that environment alone is enough to serve a real user.
    room_id = synapse.client.create_room(synapse_user)
    status, body = post(
        service,
        "/sfu/get",
        sfu_get_body(room_id, synapse.client.openid_token(synapse_user), synapse_user.device_id),
    )
    assert status == 200, body
