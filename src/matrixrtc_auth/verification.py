"""The verification settings: ``MATRIX_VERIFICATION_METHOD`` and what V2 needs.

Read by ``config.py`` (which owns the environment) through the small
``SettingsReader`` protocol its parser satisfies; kept apart so that the V2
variables, their start-up errors and their warnings live in one place. Keys are
parsed here, at start, so that a malformed key stops the service with one line
naming the variable instead of failing on the first call. Key material is never
part of a message or a ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from matrixrtc_auth.keys import InvalidKey, parse_private_key, parse_public_key, public_bytes
from matrixrtc_auth.matrix.servername import InvalidServerName, parse_server_name

METHOD = "MATRIX_VERIFICATION_METHOD"
PRIVATE_KEY = "MATRIX_PRIVATE_KEY"
# Optional: the public half of MATRIX_PRIVATE_KEY as keygen prints it; checked when set.
PUBLIC_KEY = "MATRIX_PUBLIC_KEY"
HOMESERVER_KEY = "SYNAPSE_PUBLIC_KEY"
FAKE_SIGNATURE = "LIVEKIT_TEST_FAKE_V2_SIGNATURE"
FAKE_DEVICE_ID = "MATRIX_DEBUG_FAKE_DEVICE_ID"
TEST_ON_START = "MATRIX_VERIFICATION_TEST_ON_START"
TEST_SERVER = "MATRIX_TEST_SERVER"

VERIFICATION_VARIABLES = frozenset(
    {
        METHOD,
        PRIVATE_KEY,
        PUBLIC_KEY,
        HOMESERVER_KEY,
        FAKE_SIGNATURE,
        FAKE_DEVICE_ID,
        TEST_ON_START,
        TEST_SERVER,
    }
)
_SWITCHES = (FAKE_SIGNATURE, FAKE_DEVICE_ID, TEST_ON_START)


class VerificationConfigError(ValueError):
    """A verification setting that stops the service; one line, no key material."""


class SettingsReader(Protocol):
    warnings: list[str]

    def get(self, name: str) -> str | None: ...

    def boolean(self, name: str, default: bool = False) -> bool: ...


@dataclass(frozen=True)
class V2Settings:
    """Everything V2 verification needs; present only with ``MATRIX_VERIFICATION_METHOD=v2``."""

    private_key: Ed25519PrivateKey = field(repr=False)
    homeserver_key: Ed25519PublicKey = field(repr=False)
    # Test switches (PROTOCOL.md section 3.2), each announced by a warning at start.
    fake_signature: bool = False
    fake_device_id: bool = False
    test_on_start: bool = False
    # Where the start-up self-test goes; None when there is no server to test.
    test_server: str | None = None

    def describe(self) -> str:
        switches = [
            name
            for name, on in (
                ("fake_signature", self.fake_signature),
                ("fake_device_id", self.fake_device_id),
                ("test_on_start", self.test_on_start),
            )
            if on
        ]
        return (
            f"matrix_private_key=*** synapse_public_key=*** "
            f"v2_test_switches={','.join(switches) or '-'}"
        )


def parse_verification(reader: SettingsReader) -> V2Settings | None:
    """The V2 settings, or None for V1; raises ``VerificationConfigError``."""
    method = (reader.get(METHOD) or "v1").lower()
    if method not in ("v1", "v2"):
        raise VerificationConfigError(f"{METHOD} must be v1 or v2")
    if method == "v1":
        for name in (PRIVATE_KEY, PUBLIC_KEY, HOMESERVER_KEY, *_SWITCHES, TEST_SERVER):
            if reader.get(name) is not None:
                reader.warnings.append(f"{name} is set but {METHOD} is v1; it is not used")
        return None

    private_key = _private_key(reader)
    homeserver_key = _public_key(reader, HOMESERVER_KEY)
    fake_signature = reader.boolean(FAKE_SIGNATURE)
    fake_device_id = reader.boolean(FAKE_DEVICE_ID)
    test_on_start = reader.boolean(TEST_ON_START)
    test_server = _test_server(reader)
    _warn_switches(reader, fake_signature, fake_device_id, test_on_start, test_server)
    if _first_full_access(reader) is None:
        reader.warnings.append(
            f"{METHOD}=v2 while every homeserver has full access: every homeserver must "
            f"answer V2, signed with the one key in {HOMESERVER_KEY}"
        )
    return V2Settings(
        private_key=private_key,
        homeserver_key=homeserver_key,
        fake_signature=fake_signature,
        fake_device_id=fake_device_id,
        test_on_start=test_on_start,
        test_server=test_server if test_on_start else None,
    )


def _private_key(reader: SettingsReader) -> Ed25519PrivateKey:
    text = reader.get(PRIVATE_KEY)
    if text is None:
        raise VerificationConfigError(
            f"{PRIVATE_KEY} is required with {METHOD}=v2 (make one with 'matrixrtc-auth keygen')"
        )
    try:
        key = parse_private_key(text)
    except InvalidKey as exc:
        raise VerificationConfigError(f"{PRIVATE_KEY} {exc}") from None
    if reader.get(PUBLIC_KEY) is not None:
        expected = _public_key(reader, PUBLIC_KEY)
        if public_bytes(expected) != public_bytes(key.public_key()):
            raise VerificationConfigError(
                f"{PUBLIC_KEY} is not the public half of {PRIVATE_KEY}; fix or remove it"
            )
    return key


def _public_key(reader: SettingsReader, name: str) -> Ed25519PublicKey:
    text = reader.get(name)
    if text is None:
        raise VerificationConfigError(
            f"{name} is required with {METHOD}=v2 (the homeserver's Ed25519 public key)"
        )
    try:
        return parse_public_key(text)
    except InvalidKey as exc:
        raise VerificationConfigError(f"{name} {exc}") from None


def _test_server(reader: SettingsReader) -> str | None:
    explicit = reader.get(TEST_SERVER)
    if explicit is None:
        return _first_full_access(reader)
    try:
        parse_server_name(explicit)
    except InvalidServerName:
        raise VerificationConfigError(f"{TEST_SERVER} is not a valid server name") from None
    return explicit


def _first_full_access(reader: SettingsReader) -> str | None:
    """The first server named in the full-access list (its order is lost in the config)."""
    raw = reader.get("LIVEKIT_FULL_ACCESS_HOMESERVERS") or reader.get("LIVEKIT_LOCAL_HOMESERVERS")
    for item in (raw or "").split(","):
        name = item.strip().strip("\"'")
        if name and name != "*":
            return name.lower()
    return None


def _warn_switches(
    reader: SettingsReader,
    fake_signature: bool,
    fake_device_id: bool,
    test_on_start: bool,
    test_server: str | None,
) -> None:
    never = "TESTING ONLY, never in production"
    if fake_signature:
        reader.warnings.append(
            f"{FAKE_SIGNATURE} is ON: a bit of every V2 signature received is flipped "
            f"before it is checked, so V2 verification ALWAYS FAILS ({never})"
        )
    if fake_device_id:
        reader.warnings.append(
            f"{FAKE_DEVICE_ID} is ON: V2 step 2 sends a made-up device ID instead of the "
            f"client's, so homeservers that check devices refuse every user ({never})"
        )
    if test_on_start and test_server is None:
        reader.warnings.append(
            f"{TEST_ON_START} is ON but there is no server to test: set {TEST_SERVER} "
            "(every homeserver has full access, so there is no first one)"
        )
    elif test_on_start:
        reader.warnings.append(
            f"{TEST_ON_START} is ON: V2 step 1 is run against {test_server} at start "
            f"and its result logged ({never}; the service starts either way)"
        )
    elif reader.get(TEST_SERVER) is not None:
        reader.warnings.append(f"{TEST_SERVER} is set but {TEST_ON_START} is off; not used")
