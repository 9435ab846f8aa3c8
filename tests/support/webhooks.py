"""LiveKit-style webhook requests, signed the way the SFU signs them (or forged)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

from livekit import api


def webhook_body(event: str, room: str, identity: str, reason: str | None = None) -> bytes:
    """A protobuf-JSON webhook event (camelCase names, enum names as strings)."""
    participant: dict[str, object] = {
        "sid": f"PA_{uuid.uuid4().hex[:12]}",
        "identity": identity,
        "state": "ACTIVE",
    }
    if reason is not None:
        participant["disconnectReason"] = reason
    document = {
        "event": event,
        "room": {"sid": "RM_test", "name": room},
        "participant": participant,
        "id": f"EV_{uuid.uuid4().hex[:12]}",
        "createdAt": str(int(time.time())),
    }
    return json.dumps(document).encode()


def sign(body: bytes, api_key: str, api_secret: str) -> str:
    """The ``Authorization`` value LiveKit sends: a JWT whose sha256 claim hashes the body."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return api.AccessToken(api_key, api_secret).with_sha256(digest).to_jwt()
