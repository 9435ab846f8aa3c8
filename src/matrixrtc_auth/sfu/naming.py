"""LiveKit room aliases and participant identities, computed exactly as clients do.

matrix-js-sdk derives both names independently of this service, from
``JSON.stringify`` of a small array of strings, SHA-256 and unpadded standard
base64. The bytes must match theirs, so the JSON here mirrors what JavaScript
produces (no spaces, non-ASCII and U+2028 left raw, lone surrogates escaped).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import NewType

LiveKitRoomAlias = NewType("LiveKitRoomAlias", str)
LiveKitIdentity = NewType("LiveKitIdentity", str)

LEGACY_SLOT_ID = "m.call#ROOM"

# In a Python str every remaining surrogate is a lone one (pairs are decoded into
# one code point); JSON.stringify writes each as a \u escape of four hex digits.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def js_json_array(items: list[str]) -> str:
    """What JavaScript's ``JSON.stringify`` returns for an array of strings."""
    text = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def unpadded_sha256_b64(items: list[str]) -> str:
    digest = hashlib.sha256(js_json_array(items).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii").rstrip("=")


def room_alias(room_id: str, slot_id: str) -> LiveKitRoomAlias:
    return LiveKitRoomAlias(unpadded_sha256_b64([room_id, slot_id]))


def participant_identity(user_id: str, device_id: str, member_id: str) -> LiveKitIdentity:
    return LiveKitIdentity(unpadded_sha256_b64([user_id, device_id, member_id]))


def legacy_identity(user_id: str, device_id: str) -> LiveKitIdentity:
    """The identity ``/sfu/get`` issues: readable, ``<user id>:<device id>``."""
    return LiveKitIdentity(f"{user_id}:{device_id}")
