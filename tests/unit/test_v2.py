"""V2 verification (``matrix/v2.py``) against a stub homeserver, and its configuration."""

from __future__ import annotations

import base64
import json
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from matrixrtc_auth.config import Config, ConfigError
from matrixrtc_auth.keys import decode_signature, public_bytes, seed_bytes, verify_signature
from matrixrtc_auth.matrix.federation import FederationClient, FederationError
from matrixrtc_auth.matrix.openid import VerificationFailed
from matrixrtc_auth.matrix.servername import parse_server_name
from matrixrtc_auth.matrix.v2 import IDENTITY_VERIFY_PATH, V2Verifier
from matrixrtc_auth.verification import V2Settings

SERVICE_KEY = Ed25519PrivateKey.generate()
HOMESERVER_KEY = Ed25519PrivateKey.generate()
SERVER = parse_server_name("hs.example")
NOW = 1_700_000_000.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sign(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(HOMESERVER_KEY.sign(text.encode())).decode().rstrip("=")


class StubHomeserver:
    """Answers ``post`` like a V2 homeserver; ``tweak`` changes the answer payload."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.tweak: dict[str, Any] = {}
        self.tamper = False
        self.user = "@alice:hs.example"
        self.status = 200

    async def post(
        self, server: Any, path: str, body: Any, *, request_timeout: float, max_bytes: int
    ) -> tuple[int, bytes]:
        assert path == IDENTITY_VERIFY_PATH
        self.requests.append(body)
        payload = body["payload"]
        assert verify_signature(
            SERVICE_KEY.public_key(), payload, decode_signature(body["signature"])
        )
        answer: dict[str, Any] = {
            "session_id": payload["session_id"],
            "nonce": payload["nonce"],
            "timestamp": int(NOW * 1000),
        }
        if "access_token" in payload:
            answer["user_info"] = {"sub": self.user}
            answer["device_validity"] = "valid"
        answer.update(self.tweak)
        answer = {k: v for k, v in answer.items() if v is not None}
        signature = _sign(answer)
        if self.tamper:
            signature = ("B" if signature[0] == "A" else "A") + signature[1:]
        return self.status, json.dumps({"payload": answer, "signature": signature}).encode()


def make(
    homeserver: StubHomeserver, *, fake_signature: bool = False, fake_device_id: bool = False
) -> V2Verifier:
    settings = V2Settings(
        SERVICE_KEY,
        HOMESERVER_KEY.public_key(),
        fake_signature=fake_signature,
        fake_device_id=fake_device_id,
    )
    return V2Verifier(cast(FederationClient, homeserver), settings, clock=lambda: NOW)


async def test_both_steps_give_the_user_and_carry_signed_payloads() -> None:
    homeserver = StubHomeserver()
    assert await make(homeserver).verify(SERVER, "tok", "DEVICE") == "@alice:hs.example"
    first, second = (r["payload"] for r in homeserver.requests)
    assert set(first) == {"session_id", "timestamp", "nonce"}
    assert second["access_token"] == "tok" and second["device_id"] == "DEVICE"
    assert first["session_id"] == second["session_id"]
    assert first["nonce"] != second["nonce"]
    assert first["timestamp"] == int(NOW * 1000)
    nonce = first["nonce"]
    assert "=" not in nonce and len(base64.urlsafe_b64decode(nonce + "=")) == 32


@pytest.mark.parametrize(
    ("tweak", "check"),
    [
        ({"nonce": "other"}, "nonce check failed"),
        ({"session_id": "other"}, "session_id check failed"),
        ({"timestamp": int((NOW - 31) * 1000)}, "timestamp check failed"),
        ({"timestamp": int((NOW + 31) * 1000)}, "timestamp check failed"),
        ({"timestamp": None}, "timestamp check failed"),
        ({"timestamp": True}, "timestamp check failed"),
        ({"device_validity": "invalid"}, "device_validity check failed"),
        ({"user_info": {"sub": "@alice:elsewhere.example"}}, "another server"),
        ({"user_info": None}, "user_info.sub"),
        ({"extra": 1.5}, "signature check failed"),
    ],
)
async def test_each_failed_check_is_named(tweak: dict[str, Any], check: str) -> None:
    homeserver = StubHomeserver()
    homeserver.tweak = tweak
    with pytest.raises(VerificationFailed, match=check):
        await make(homeserver).verify(SERVER, "tok", "DEVICE")


async def test_timestamps_within_30_seconds_pass_and_device_validity_may_be_absent() -> None:
    homeserver = StubHomeserver()
    for offset in (-29, 29):
        homeserver.tweak = {"timestamp": int((NOW + offset) * 1000), "device_validity": None}
        assert await make(homeserver).verify(SERVER, "tok", "D") == homeserver.user


async def test_tampered_signature_fails_step_1() -> None:
    homeserver = StubHomeserver()
    homeserver.tamper = True
    with pytest.raises(VerificationFailed, match=r"step 1 .*signature check failed"):
        await make(homeserver).verify(SERVER, "tok", "DEVICE")
    assert len(homeserver.requests) == 1


async def test_fake_signature_switch_makes_a_good_answer_fail() -> None:
    with pytest.raises(VerificationFailed, match="signature check failed"):
        await make(StubHomeserver(), fake_signature=True).verify(SERVER, "tok", "DEVICE")


async def test_fake_device_id_switch_sends_another_device() -> None:
    homeserver = StubHomeserver()
    await make(homeserver, fake_device_id=True).verify(SERVER, "tok", "DEVICE")
    assert homeserver.requests[1]["payload"]["device_id"] not in ("DEVICE", "")


async def test_error_status_and_unreachable_homeserver_fail() -> None:
    homeserver = StubHomeserver()
    homeserver.status = 403
    with pytest.raises(VerificationFailed, match="answered 403"):
        await make(homeserver).verify(SERVER, "tok", "DEVICE")

    class Unreachable:
        async def post(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
            raise FederationError("cannot connect")

    settings = V2Settings(SERVICE_KEY, HOMESERVER_KEY.public_key())
    verifier = V2Verifier(cast(FederationClient, Unreachable()), settings)
    with pytest.raises(VerificationFailed, match="cannot connect"):
        await verifier.check_homeserver(SERVER)


# -- configuration ------------------------------------------------------------------

BASE = {"LIVEKIT_URL": "wss://sfu.example.com", "LIVEKIT_KEY": "k", "LIVEKIT_SECRET": "s"}
V2_ENV = {
    "MATRIX_VERIFICATION_METHOD": "v2",
    "MATRIX_PRIVATE_KEY": _b64(seed_bytes(SERVICE_KEY)),
    "SYNAPSE_PUBLIC_KEY": _b64(public_bytes(HOMESERVER_KEY.public_key())),
    "LIVEKIT_FULL_ACCESS_HOMESERVERS": "first.example, second.example",
}


def parse(**env: str) -> Config:
    merged = {**BASE, **V2_ENV, **env}
    return Config.from_env({k: v for k, v in merged.items() if v != "-"})


def test_v1_is_the_default_and_v2_loads_keys() -> None:
    assert Config.from_env(BASE).v2 is None
    config = parse()
    assert config.v2 is not None
    assert public_bytes(config.v2.homeserver_key) == public_bytes(HOMESERVER_KEY.public_key())


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MATRIX_VERIFICATION_METHOD": "v3"}, "MATRIX_VERIFICATION_METHOD"),
        ({"MATRIX_PRIVATE_KEY": "-"}, "MATRIX_PRIVATE_KEY"),
        ({"SYNAPSE_PUBLIC_KEY": "-"}, "SYNAPSE_PUBLIC_KEY"),
        ({"MATRIX_PRIVATE_KEY": "%%%"}, "MATRIX_PRIVATE_KEY"),
        ({"SYNAPSE_PUBLIC_KEY": _b64(b"x" * 31)}, "SYNAPSE_PUBLIC_KEY"),
        ({"MATRIX_PUBLIC_KEY": V2_ENV["SYNAPSE_PUBLIC_KEY"]}, "MATRIX_PUBLIC_KEY"),
        ({"MATRIX_TEST_SERVER": "bad/name"}, "MATRIX_TEST_SERVER"),
        ({"LIVEKIT_TEST_FAKE_V2_SIGNATURE": "maybe"}, "LIVEKIT_TEST_FAKE_V2_SIGNATURE"),
    ],
)
def test_bad_v2_settings_stop_the_start_naming_the_variable(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        parse(**env)
    assert V2_ENV["MATRIX_PRIVATE_KEY"] not in str(caught.value)


def test_key_material_is_masked_in_describe_and_repr() -> None:
    config = parse()
    for text in (config.describe(), repr(config)):
        assert V2_ENV["MATRIX_PRIVATE_KEY"] not in text
        assert V2_ENV["SYNAPSE_PUBLIC_KEY"] not in text
    assert "verification=v2" in config.describe()


def test_test_switches_warn_and_self_test_targets_first_full_access_server() -> None:
    config = parse(
        LIVEKIT_TEST_FAKE_V2_SIGNATURE="true",
        MATRIX_DEBUG_FAKE_DEVICE_ID="true",
        MATRIX_VERIFICATION_TEST_ON_START="true",
    )
    assert config.v2 is not None
    assert config.v2.test_server == "first.example"
    for name in (
        "LIVEKIT_TEST_FAKE_V2_SIGNATURE",
        "MATRIX_DEBUG_FAKE_DEVICE_ID",
        "MATRIX_VERIFICATION_TEST_ON_START",
    ):
        assert any(name in w for w in config.warnings), name
    explicit = parse(MATRIX_VERIFICATION_TEST_ON_START="true", MATRIX_TEST_SERVER="t.example")
    assert explicit.v2 is not None and explicit.v2.test_server == "t.example"


def test_v2_variables_are_known_and_ignored_with_a_warning_under_v1() -> None:
    config = Config.from_env({**BASE, "MATRIX_PRIVATE_KEY": "x"})
    assert config.v2 is None
    assert not any("not a setting" in w for w in config.warnings)
    assert any("MATRIX_PRIVATE_KEY" in w and "v1" in w for w in config.warnings)


def test_require_ocsp_staple_is_a_boolean() -> None:
    assert Config.from_env({**BASE, "REQUIRE_OCSP_STAPLE": "true"}).require_ocsp_staple
    assert not Config.from_env(BASE).require_ocsp_staple
    with pytest.raises(ConfigError, match="REQUIRE_OCSP_STAPLE"):
        Config.from_env({**BASE, "REQUIRE_OCSP_STAPLE": "sometimes"})
