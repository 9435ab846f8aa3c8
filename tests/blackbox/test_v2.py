"""Black-box tests of V2 verification: the service process against a fake homeserver that
implements the homeserver side with its own key pair, every check failing once, the test
switches, start-up refusals, the self-test, restricted servers on V1, and keygen."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.blackbox.helpers import (
    ServiceFactory,
    Stack,
    get_token_body,
    is_warning,
    post_json,
    room_alias,
    sfu_get_body,
    wait_exit,
    wait_for_line,
)
from tests.support.fake_homeserver import FakeHomeserver
from tests.support.fake_sfu import FakeSfu
from tests.support.fake_v2_homeserver import OMIT, FakeV2Homeserver
from tests.support.service import ServiceProcess
from tests.support.tls import TestCA


def _seed_b64(key: Ed25519PrivateKey) -> str:
    seed = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(seed).decode()


@dataclass
class V2Stack:
    stack: Stack
    homeserver: FakeV2Homeserver
    service_key: Ed25519PrivateKey

    def env(self, **overrides: str | None) -> dict[str, str]:
        v2: dict[str, str | None] = {
            "MATRIX_VERIFICATION_METHOD": "v2",
            "MATRIX_PRIVATE_KEY": _seed_b64(self.service_key),
            "SYNAPSE_PUBLIC_KEY": self.homeserver.public_key_b64,
        }
        return self.stack.env(**{**v2, **overrides})

    def start(self, **overrides: str | None) -> ServiceProcess:
        return self.stack.start_service(self.env(**overrides))

    def join(self, service: ServiceProcess, device_id: str = "ABCDEFGH") -> tuple[int, str]:
        """A fresh user asks /get_token; returns (status, user_id)."""
        user_id, token = self.stack.login("alice")
        body = get_token_body(token, self.homeserver.server_name, user_id, device_id=device_id)
        reply = post_json(service, "/get_token", body)
        return reply.status, user_id


@pytest.fixture
def service_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def v2_homeserver(test_ca: TestCA, service_key: Ed25519PrivateKey) -> Iterator[FakeV2Homeserver]:
    context = test_ca.server_context("localhost", "127.0.0.1")
    with FakeV2Homeserver(context, service_key.public_key()) as homeserver:
        yield homeserver


@pytest.fixture
def other_homeserver(test_ca: TestCA) -> Iterator[FakeHomeserver]:
    """A plain (V1-only) homeserver; request it before ``v2`` so it outlives the service."""
    with FakeHomeserver(test_ca.server_context("localhost", "127.0.0.1")) as homeserver:
        yield homeserver


@pytest.fixture
def v2(
    fake_sfu: FakeSfu,
    v2_homeserver: FakeV2Homeserver,
    service_key: Ed25519PrivateKey,
    test_ca: TestCA,
    start_service: ServiceFactory,
) -> V2Stack:
    # start_service comes last so that services stop before the fakes they talk to.
    stack = Stack(fake_sfu, v2_homeserver, test_ca, start_service)
    return V2Stack(stack, v2_homeserver, service_key)


def _refused_with(v2: V2Stack, service: ServiceProcess, check: str) -> None:
    status, _ = v2.join(service)
    assert status == 401
    line = service.wait_for_log(check)
    assert "M_UNAUTHORIZED" in line or "401" in line, line
    assert v2.stack.sfu.calls("CreateRoom") == []


def test_v2_success_issues_a_token_without_v1(v2: V2Stack) -> None:
    service = v2.start()
    status, user_id = v2.join(service, device_id="DEV1")
    assert status == 200
    steps = v2.homeserver.v2_requests
    assert [r.step for r in steps] == [1, 2]
    assert all(r.signature_valid for r in steps)
    assert steps[0].payload_keys == ("nonce", "session_id", "timestamp")
    assert steps[0].access_token is None
    assert steps[1].payload_keys == (
        "access_token",
        "device_id",
        "nonce",
        "session_id",
        "timestamp",
    )
    assert steps[1].device_id == "DEV1"
    assert steps[0].session_id == steps[1].session_id
    assert steps[0].nonce != steps[1].nonce
    assert {r.host for r in steps} == {v2.homeserver.server_name}
    assert v2.homeserver.userinfo_requests() == []
    # The token never reaches the log.
    token = steps[1].access_token
    assert token is not None and token not in service.logs
    assert user_id in service.logs


def test_v2_applies_to_the_legacy_endpoint_too(v2: V2Stack) -> None:
    service = v2.start()
    _, token = v2.stack.login("bob")
    body = sfu_get_body(token, v2.homeserver.server_name, device_id="LEGACY")
    assert post_json(service, "/sfu/get", body).status == 200
    assert [r.device_id for r in v2.homeserver.v2_requests] == [None, "LEGACY"]


def test_tampered_signature_is_refused(v2: V2Stack) -> None:
    service = v2.start()
    v2.homeserver.misbehave(tamper_signature=True)
    _refused_with(v2, service, "signature check failed")


def test_tampered_signature_in_step_2_only_is_refused(v2: V2Stack) -> None:
    service = v2.start()
    v2.homeserver.misbehave(tamper_signature=True, steps=frozenset({2}))
    _refused_with(v2, service, "step 2 (user identity): signature check failed")


def test_wrong_nonce_is_refused(v2: V2Stack) -> None:
    service = v2.start()
    v2.homeserver.misbehave(nonce="bm90LXRoZS1ub25jZQ")
    _refused_with(v2, service, "nonce check failed")


def test_wrong_session_id_is_refused(v2: V2Stack) -> None:
    service = v2.start()
    v2.homeserver.misbehave(session_id="00000000-0000-4000-8000-000000000000")
    _refused_with(v2, service, "session_id check failed")


@pytest.mark.parametrize("offset_s", [-31, 31], ids=["31s-old", "31s-ahead"])
def test_timestamp_out_of_window_is_refused(v2: V2Stack, offset_s: int) -> None:
    service = v2.start()
    v2.homeserver.misbehave(timestamp_offset_ms=offset_s * 1000)
    _refused_with(v2, service, "timestamp check failed")


def test_timestamp_inside_window_is_accepted(v2: V2Stack) -> None:
    service = v2.start()
    v2.homeserver.misbehave(timestamp_offset_ms=-20_000)
    assert v2.join(service)[0] == 200


@pytest.mark.parametrize("validity", ["invalid", "unknown", ""])
def test_device_validity_other_than_valid_is_refused(v2: V2Stack, validity: str) -> None:
    service = v2.start()
    v2.homeserver.misbehave(device_validity=validity)
    _refused_with(v2, service, "device_validity check failed")


def test_absent_device_validity_is_accepted(v2: V2Stack) -> None:
    service = v2.start()
    v2.homeserver.misbehave(device_validity=OMIT)
    assert v2.join(service)[0] == 200


def test_user_of_another_server_is_refused(v2: V2Stack) -> None:
    service = v2.start()
    v2.homeserver.misbehave(user_id="@alice:elsewhere.example")
    _refused_with(v2, service, "user of another server")


def test_homeserver_error_status_is_refused(v2: V2Stack) -> None:
    service = v2.start()
    v2.homeserver.misbehave(status=500)
    _refused_with(v2, service, "homeserver answered 500")


def test_wrong_service_key_is_refused_by_the_homeserver(v2: V2Stack) -> None:
    service = v2.start(MATRIX_PRIVATE_KEY=_seed_b64(Ed25519PrivateKey.generate()))
    _refused_with(v2, service, "homeserver answered 401")
    assert [r.signature_valid for r in v2.homeserver.v2_requests] == [False]


def test_fake_signature_switch_warns_and_makes_v2_fail(v2: V2Stack) -> None:
    service = v2.start(LIVEKIT_TEST_FAKE_V2_SIGNATURE="true")
    wait_for_line(
        service, lambda line: is_warning(line) and "LIVEKIT_TEST_FAKE_V2_SIGNATURE" in line
    )
    _refused_with(v2, service, "signature check failed")


def test_fake_device_id_switch_warns_and_sends_another_device(v2: V2Stack) -> None:
    service = v2.start(MATRIX_DEBUG_FAKE_DEVICE_ID="true")
    wait_for_line(service, lambda line: is_warning(line) and "MATRIX_DEBUG_FAKE_DEVICE_ID" in line)
    user_id, token = v2.stack.login("carol")
    v2.homeserver.register_device(user_id, "REALDEVICE")
    body = get_token_body(token, v2.homeserver.server_name, user_id, device_id="REALDEVICE")
    assert post_json(service, "/get_token", body).status == 401
    sent = v2.homeserver.v2_requests[-1].device_id
    assert sent not in (None, "REALDEVICE")
    service.wait_for_log("device_validity check failed")


def test_registered_device_is_valid_without_the_switch(v2: V2Stack) -> None:
    service = v2.start()
    user_id, token = v2.stack.login("carol")
    v2.homeserver.register_device(user_id, "REALDEVICE")
    body = get_token_body(token, v2.homeserver.server_name, user_id, device_id="REALDEVICE")
    assert post_json(service, "/get_token", body).status == 200
    other = get_token_body(token, v2.homeserver.server_name, user_id, device_id="STOLEN")
    assert post_json(service, "/get_token", other).status == 401


@pytest.mark.parametrize(
    ("missing", "named"),
    [("MATRIX_PRIVATE_KEY", "MATRIX_PRIVATE_KEY"), ("SYNAPSE_PUBLIC_KEY", "SYNAPSE_PUBLIC_KEY")],
)
def test_start_is_refused_without_keys(v2: V2Stack, missing: str, named: str) -> None:
    service = v2.stack.start_service(v2.env(**{missing: None}), wait_healthy=False)
    assert wait_exit(service) != 0
    assert named in service.logs


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"MATRIX_PRIVATE_KEY": "bm90IGEga2V5"}, "MATRIX_PRIVATE_KEY"),
        ({"SYNAPSE_PUBLIC_KEY": "!!!"}, "SYNAPSE_PUBLIC_KEY"),
        ({"MATRIX_VERIFICATION_METHOD": "v3"}, "MATRIX_VERIFICATION_METHOD"),
    ],
)
def test_start_is_refused_with_malformed_settings(
    v2: V2Stack, overrides: dict[str, str], named: str
) -> None:
    service = v2.stack.start_service(v2.env(**overrides), wait_healthy=False)
    assert wait_exit(service) != 0
    logs = service.logs
    assert named in logs
    assert len(logs.strip().splitlines()) == 1, logs
    assert _seed_b64(v2.service_key) not in logs


def test_key_material_is_never_logged(v2: V2Stack) -> None:
    service = v2.start(LIVEKIT_LOG_LEVEL="debug")
    assert v2.join(service)[0] == 200
    service.stop()
    assert _seed_b64(v2.service_key) not in service.logs
    assert _seed_b64(v2.service_key).rstrip("=") not in service.logs
    assert "verification=v2" in service.logs


def test_restricted_homeserver_stays_on_v1_while_v2_is_on(
    other_homeserver: FakeHomeserver, v2: V2Stack
) -> None:
    restricted = other_homeserver
    service = v2.start()
    user_id = f"@dave:{restricted.server_name}"
    restricted.add_token("restricted-token", user_id)
    body = get_token_body("restricted-token", restricted.server_name, user_id)
    v2.stack.sfu.add_room(room_alias(body["room_id"], body["slot_id"]))
    reply = post_json(service, "/get_token", body)
    assert reply.status == 200, reply.body
    assert len(restricted.userinfo_requests()) == 1
    assert not any(r.method == "POST" for r in restricted.requests)
    assert v2.homeserver.v2_requests == []


def test_self_test_passes_at_start(v2: V2Stack) -> None:
    service = v2.start(MATRIX_VERIFICATION_TEST_ON_START="true")
    wait_for_line(
        service, lambda line: is_warning(line) and "MATRIX_VERIFICATION_TEST_ON_START" in line
    )
    line = service.wait_for_log("V2 self-test PASSED")
    assert v2.homeserver.server_name in line
    assert [r.step for r in v2.homeserver.v2_requests] == [1]
    assert v2.join(service)[0] == 200


def test_self_test_failure_is_logged_and_the_service_starts(v2: V2Stack) -> None:
    v2.homeserver.misbehave(tamper_signature=True)
    service = v2.start(MATRIX_VERIFICATION_TEST_ON_START="true")
    line = service.wait_for_log("V2 self-test FAILED")
    assert "signature check failed" in line
    v2.homeserver.misbehave()
    assert v2.join(service)[0] == 200


def test_self_test_of_a_server_without_v2_fails_and_service_serves(
    other_homeserver: FakeHomeserver, v2: V2Stack
) -> None:
    plain = other_homeserver
    service = v2.start(
        MATRIX_VERIFICATION_TEST_ON_START="true", MATRIX_TEST_SERVER=plain.server_name
    )
    line = service.wait_for_log("V2 self-test FAILED")
    assert plain.server_name in line and "404" in line
    assert v2.join(service)[0] == 200


def _keygen(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "matrixrtc_auth", "keygen", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_keygen_round_trip_through_the_service(
    fake_sfu: FakeSfu, test_ca: TestCA, start_service: ServiceFactory
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    lines = dict(line.split("=", 1) for line in _keygen().splitlines())
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(lines["MATRIX_PUBLIC_KEY"]))
    context = test_ca.server_context("localhost", "127.0.0.1")
    with FakeV2Homeserver(context, public) as homeserver:
        stack = Stack(fake_sfu, homeserver, test_ca, start_service)
        service = stack.start(
            MATRIX_VERIFICATION_METHOD="v2",
            SYNAPSE_PUBLIC_KEY=homeserver.public_key_b64,
            **lines,
        )
        user_id, token = stack.login("erin")
        body = get_token_body(token, homeserver.server_name, user_id)
        assert post_json(service, "/get_token", body).status == 200
        assert all(r.signature_valid for r in homeserver.v2_requests)
        # Before the homeserver goes: a kept-alive connection must not outlive its server.
        service.stop()


def test_keygen_converts_pem_keys_made_by_cryptography(tmp_path) -> None:
    key = Ed25519PrivateKey.generate()
    private_pem = tmp_path / "service.pem"
    private_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_pem = tmp_path / "homeserver.pub.pem"
    public_pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    raw_public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    private_lines = dict(
        line.split("=", 1) for line in _keygen("--from-pem", str(private_pem)).splitlines()
    )
    assert private_lines["MATRIX_PRIVATE_KEY"] == _seed_b64(key)
    assert base64.b64decode(private_lines["MATRIX_PUBLIC_KEY"]) == raw_public
    public_lines = _keygen("--from-pem", str(public_pem)).splitlines()
    assert public_lines == [f"SYNAPSE_PUBLIC_KEY={base64.b64encode(raw_public).decode()}"]
