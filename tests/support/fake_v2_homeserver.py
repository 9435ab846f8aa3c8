"""A fake homeserver that also implements the homeserver side of V2 verification.

``FakeV2Homeserver`` is a ``FakeHomeserver`` (same federation userinfo, same
recording) that answers ``POST /_matrix/client/r0/identity/verify`` the way a
V2 homeserver must, with its own Ed25519 key pair:

- the request ``{"payload": P, "signature": S}`` must carry the service's
  signature (checked against the service public key the fake is given) over
  P's canonical JSON, else 401;
- step 1 (no ``access_token`` in P) answers R = ``{session_id, nonce,
  timestamp, server_name}``; step 2 looks the token up in the same table as
  userinfo (``add_token``) and adds ``user_info.sub`` and ``device_validity``
  (``"valid"`` unless devices were registered for the user and P's
  ``device_id`` is not one of them);
- the answer is ``{"payload": R, "signature": T}``, T its own signature.

Canonical JSON and signatures are computed here independently of the
service's code, so the two sides only agree if both follow the contract.
Knobs (:meth:`misbehave`) make it answer wrongly in each way the service must
notice. Only loopback, like its parent.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from tests.support.fake_homeserver import FakeHomeserver

IDENTITY_VERIFY_PATH = "/_matrix/client/r0/identity/verify"
OMIT = object()


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class V2Request:
    """One identity/verify request as the fake saw it (the token kept out of ``repr``)."""

    step: int
    payload_keys: tuple[str, ...]
    session_id: Any
    nonce: Any
    timestamp: Any
    device_id: Any
    signature_valid: bool
    host: str | None
    access_token: str | None = field(default=None, repr=False)


@dataclass
class Misbehaviour:
    tamper_signature: bool = False
    nonce: Any = None
    session_id: Any = None
    timestamp_offset_ms: int = 0
    device_validity: Any = None  # None: computed; OMIT: left out; else this value
    user_id: str | None = None  # vouch for this user instead
    status: int | None = None  # answer this status (Matrix error body) instead
    steps: frozenset[int] = frozenset({1, 2})  # which steps misbehave


class FakeV2Homeserver(FakeHomeserver):
    """A homeserver with V2; :attr:`public_key_b64` goes to ``SYNAPSE_PUBLIC_KEY``."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        service_public_key: Ed25519PublicKey,
        *,
        hostname: str = "127.0.0.1",
    ) -> None:
        self.signing_key = Ed25519PrivateKey.generate()
        self._service_key = service_public_key
        self._v2_lock = threading.Lock()
        self._v2_requests: list[V2Request] = []
        self._misbehaviour = Misbehaviour()
        self._devices: dict[str, set[str]] = {}
        super().__init__(ssl_context, hostname=hostname)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(raw_public(self.signing_key.public_key())).decode()

    def misbehave(self, **knobs: Any) -> None:
        """Answer V2 wrongly from now on (fields of ``Misbehaviour``); no knobs: behave."""
        with self._v2_lock:
            self._misbehaviour = Misbehaviour(**knobs)

    def register_device(self, user_id: str, device_id: str) -> None:
        """From now on only registered devices of ``user_id`` are ``"valid"``."""
        with self._v2_lock:
            self._devices.setdefault(user_id, set()).add(device_id)

    @property
    def v2_requests(self) -> list[V2Request]:
        with self._v2_lock:
            return list(self._v2_requests)

    async def _unrecognized(self, request: web.Request) -> web.StreamResponse:
        # The parent routes every unknown path here; identity/verify is ours.
        if request.method == "POST" and request.path == IDENTITY_VERIFY_PATH:
            return await self._identity_verify(request)
        return await super()._unrecognized(request)

    async def _identity_verify(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        try:
            body = json.loads(await request.read())
            payload, signature = body["payload"], body["signature"]
            assert isinstance(payload, dict) and isinstance(signature, str)
        except (ValueError, KeyError, TypeError, AssertionError):
            return _json(400, {"errcode": "M_BAD_JSON", "error": "Bad V2 request"})
        token = payload.get("access_token")
        step = 2 if token is not None else 1
        valid = self._service_signed(payload, signature)
        with self._v2_lock:
            self._v2_requests.append(
                V2Request(
                    step=step,
                    payload_keys=tuple(sorted(payload)),
                    session_id=payload.get("session_id"),
                    nonce=payload.get("nonce"),
                    timestamp=payload.get("timestamp"),
                    device_id=payload.get("device_id"),
                    signature_valid=valid,
                    host=request.headers.get("Host"),
                    access_token=token if isinstance(token, str) else None,
                )
            )
            odd = self._misbehaviour
            devices = {user: set(ids) for user, ids in self._devices.items()}
        if not valid:
            return _json(401, {"errcode": "M_FORBIDDEN", "error": "Bad service signature"})
        if step not in odd.steps:
            odd = Misbehaviour()
        if odd.status is not None:
            return _json(odd.status, {"errcode": "M_UNKNOWN", "error": "Injected"})

        answer: dict[str, Any] = {
            "session_id": payload.get("session_id") if odd.session_id is None else odd.session_id,
            "nonce": payload.get("nonce") if odd.nonce is None else odd.nonce,
            "timestamp": int(time.time() * 1000) + odd.timestamp_offset_ms,
            "server_name": self.server_name,
        }
        if step == 2:
            user_id = self._tokens_user(str(token))
            if user_id is None:
                return _json(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown token"})
            known = devices.get(user_id)
            validity: Any = (
                "valid" if known is None or payload.get("device_id") in known else "invalid"
            )
            if odd.device_validity is not None:
                validity = odd.device_validity
            answer["user_info"] = {"sub": odd.user_id or user_id}
            if validity is not OMIT:
                answer["device_validity"] = validity

        raw = self.signing_key.sign(canonical(answer))
        if odd.tamper_signature:
            raw = bytes([raw[0] ^ 0x80]) + raw[1:]
        return _json(200, {"payload": answer, "signature": b64url(raw)})

    def _service_signed(self, payload: dict[str, Any], signature: str) -> bool:
        try:
            raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
            self._service_key.verify(raw, canonical(payload))
        except (ValueError, InvalidSignature):
            return False
        return True

    def _tokens_user(self, token: str) -> str | None:
        # The same token table the federation userinfo endpoint answers from.
        with self._lock:
            return self._tokens.get(token)
