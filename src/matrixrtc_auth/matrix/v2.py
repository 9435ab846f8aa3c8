"""V2 verification: signed two-step exchange with a trusted homeserver (PROTOCOL.md 3.2).

Used for full-access homeservers when ``MATRIX_VERIFICATION_METHOD=v2``;
restricted homeservers stay on V1 (``openid.py``). Both steps POST
``{"payload": P, "signature": S}`` to ``/_matrix/client/r0/identity/verify`` on
the server discovery finds, through the same ``FederationClient`` as V1 (same
``Host`` header, TLS name, SSRF guard and OCSP gate):

1. homeserver identity: P = ``{session_id, timestamp, nonce}``;
2. user identity: P adds ``access_token`` and ``device_id``.

S is our Ed25519 signature of P's canonical JSON (unpadded base64url). The
answer ``{"payload": R, "signature": T}`` counts only if T verifies against
``SYNAPSE_PUBLIC_KEY`` over canonical R, R echoes our ``session_id`` and this
step's ``nonce``, and R's ``timestamp`` is within ``TIMESTAMP_TOLERANCE_MS``
of our clock; step 2 adds ``R.user_info.sub`` (a user of the named server) and
``R.device_validity`` (``"valid"`` when present). One session ID covers both
steps; each step has a fresh nonce. Every failure raises
``VerificationFailed`` whose cause names the step and the check.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from matrixrtc_auth.keys import (
    NotCanonical,
    decode_signature,
    encode_b64url,
    sign_json,
    verify_signature,
)
from matrixrtc_auth.logs import fields
from matrixrtc_auth.matrix.federation import FederationClient, FederationError
from matrixrtc_auth.matrix.http import json_object
from matrixrtc_auth.matrix.openid import VerificationFailed, answered, check_user_id
from matrixrtc_auth.matrix.servername import InvalidServerName, ServerName, parse_server_name
from matrixrtc_auth.verification import V2Settings

log = logging.getLogger(__name__)

IDENTITY_VERIFY_PATH = "/_matrix/client/r0/identity/verify"
STEP_TIMEOUT = 3.0
# Discovery plus both steps, all told.
VERIFY_DEADLINE = 10.0
MAX_RESPONSE_BYTES = 4096
TIMESTAMP_TOLERANCE_MS = 30_000
NONCE_BYTES = 32

_STEP_NAMES = {1: "step 1 (homeserver identity)", 2: "step 2 (user identity)"}


class V2Verifier:
    """Runs the V2 exchange; ``clock`` gives seconds since the epoch (tests move it)."""

    def __init__(
        self,
        federation: FederationClient,
        settings: V2Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._federation = federation
        self._settings = settings
        self._clock = clock

    async def verify(self, server: ServerName, access_token: str, device_id: str) -> str:
        """Both steps; the Matrix user ID the token belongs to, on ``server``."""
        session_id = str(uuid.uuid4())
        if self._settings.fake_device_id:
            # MATRIX_DEBUG_FAKE_DEVICE_ID: lets an operator see the homeserver's device check bite.
            device_id = f"FAKE{secrets.token_hex(5).upper()}"
        try:
            async with asyncio.timeout(VERIFY_DEADLINE):
                await self._step(server, 1, session_id, {})
                answer = await self._step(
                    server, 2, session_id, {"access_token": access_token, "device_id": device_id}
                )
        except TimeoutError:
            raise VerificationFailed(f"V2: no answer within {VERIFY_DEADLINE:g}s") from None
        return _verified_user(answer, server)

    async def check_homeserver(self, server: ServerName) -> None:
        """Step 1 alone: does ``server`` answer as the holder of ``SYNAPSE_PUBLIC_KEY``?"""
        try:
            async with asyncio.timeout(VERIFY_DEADLINE):
                await self._step(server, 1, str(uuid.uuid4()), {})
        except TimeoutError:
            raise VerificationFailed(f"V2: no answer within {VERIFY_DEADLINE:g}s") from None

    async def _step(
        self, server: ServerName, step: int, session_id: str, extra: dict[str, str]
    ) -> dict[str, Any]:
        """One signed request and the checks every answer must pass; returns R."""
        name = _STEP_NAMES[step]
        nonce = encode_b64url(secrets.token_bytes(NONCE_BYTES))
        payload: dict[str, Any] = {
            "session_id": session_id,
            "timestamp": int(self._clock() * 1000),
            "nonce": nonce,
            **extra,
        }
        body = {"payload": payload, "signature": sign_json(self._settings.private_key, payload)}
        try:
            status, raw = await self._federation.post(
                server,
                IDENTITY_VERIFY_PATH,
                body,
                request_timeout=STEP_TIMEOUT,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except FederationError as exc:
            raise VerificationFailed(f"V2 {name}: {exc.cause}") from None

        document = json_object(raw)
        if status != 200:
            raise VerificationFailed(f"V2 {name}: {answered(status, document)}")
        answer = document.get("payload") if document else None
        signature = document.get("signature") if document else None
        if not isinstance(answer, dict) or not isinstance(signature, str):
            raise VerificationFailed(f"V2 {name}: answer lacks 'payload' or 'signature'")
        self._check_signature(name, answer, signature)
        if answer.get("session_id") != session_id:
            raise VerificationFailed(f"V2 {name}: session_id check failed (not echoed)")
        if answer.get("nonce") != nonce:
            raise VerificationFailed(f"V2 {name}: nonce check failed (not echoed)")
        self._check_timestamp(name, answer.get("timestamp"))
        return answer

    def _check_signature(self, name: str, answer: dict[str, Any], signature: str) -> None:
        try:
            raw = decode_signature(signature)
        except ValueError as exc:
            raise VerificationFailed(f"V2 {name}: signature check failed ({exc})") from None
        if self._settings.fake_signature:
            # LIVEKIT_TEST_FAKE_V2_SIGNATURE: simulate tampering; V2 must then fail.
            raw = bytes([raw[0] ^ 0x01]) + raw[1:]
        try:
            valid = verify_signature(self._settings.homeserver_key, answer, raw)
        except NotCanonical as exc:
            raise VerificationFailed(f"V2 {name}: signature check failed ({exc})") from None
        if not valid:
            raise VerificationFailed(
                f"V2 {name}: signature check failed (not made with SYNAPSE_PUBLIC_KEY's key)"
            )

    def _check_timestamp(self, name: str, timestamp: object) -> None:
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise VerificationFailed(f"V2 {name}: timestamp check failed (missing)")
        skew = timestamp - int(self._clock() * 1000)
        if abs(skew) > TIMESTAMP_TOLERANCE_MS:
            raise VerificationFailed(
                f"V2 {name}: timestamp check failed ({skew / 1000:+.1f}s from our clock, "
                f"allowed ±{TIMESTAMP_TOLERANCE_MS // 1000}s)"
            )


def _verified_user(answer: dict[str, Any], server: ServerName) -> str:
    name = _STEP_NAMES[2]
    user_info = answer.get("user_info")
    user_id = user_info.get("sub") if isinstance(user_info, dict) else None
    if not isinstance(user_id, str):
        raise VerificationFailed(f"V2 {name}: answer has no user_info.sub")
    try:
        check_user_id(user_id, server.original)
    except VerificationFailed as exc:
        raise VerificationFailed(f"V2 {name}: {exc.cause}") from None
    if "device_validity" in answer and answer["device_validity"] != "valid":
        shown = str(answer["device_validity"])[:40]
        raise VerificationFailed(f"V2 {name}: device_validity check failed ({shown!r})")
    return user_id


async def run_self_test(verifier: V2Verifier, server_name: str) -> bool:
    """``MATRIX_VERIFICATION_TEST_ON_START``: step 1 against ``server_name``, logged."""
    try:
        await verifier.check_homeserver(parse_server_name(server_name))
    except InvalidServerName:
        cause = "not a valid server name"
    except VerificationFailed as exc:
        cause = exc.cause
    else:
        log.info("V2 self-test PASSED", extra=fields(server_name=server_name))
        return True
    log.warning("V2 self-test FAILED", extra=fields(server_name=server_name, cause=cause))
    return False
