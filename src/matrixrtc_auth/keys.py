"""Ed25519 keys and signed JSON for V2 verification (PROTOCOL.md section 3.2).

Keys travel as base64 in environment variables (``MATRIX_PRIVATE_KEY``,
``SYNAPSE_PUBLIC_KEY``): standard or URL-safe alphabet, with or without ``=``
padding. A private key is either the 32-byte seed or the 64-byte form some
tools print (seed followed by the public key); in the latter case the public
half must match the seed, so that a pair spliced from two keys is caught at
start rather than as a mysterious signature failure later.

Signatures are made and checked over Matrix canonical JSON (sorted keys, no
insignificant whitespace, UTF-8, non-ASCII characters left as they are) and
travel as unpadded base64url. ``config.py`` turns ``InvalidKey`` into a start-up
error; ``matrix/v2.py`` signs and checks; ``keygen.py`` prints keys in this form.
No message raised here ever contains key material.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

SEED_LENGTH = 32
PUBLIC_KEY_LENGTH = 32
SIGNATURE_LENGTH = 64

_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


class InvalidKey(ValueError):
    """A key that cannot be used; the message names the problem, never the key."""


class NotCanonical(ValueError):
    """A value that has no Matrix canonical JSON form (floats, for instance)."""


def decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not; ``ValueError`` for anything else."""
    if not _BASE64.fullmatch(text):
        raise ValueError("not base64")
    unpadded = text.rstrip("=").replace("-", "+").replace("_", "/")
    padded = unpadded + "=" * (-len(unpadded) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def encode_base64(data: bytes) -> str:
    """Padded standard base64: the form ``keygen`` prints for the variables."""
    return base64.b64encode(data).decode("ascii")


def encode_b64url(data: bytes) -> str:
    """Unpadded base64url, the encoding of V2 signatures and nonces."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def parse_private_key(text: str) -> Ed25519PrivateKey:
    """A private key from base64 of its 32-byte seed or 64-byte seed+public form."""
    try:
        raw = decode_base64(text.strip())
    except ValueError:
        raise InvalidKey("is not valid base64") from None
    if len(raw) not in (SEED_LENGTH, SEED_LENGTH + PUBLIC_KEY_LENGTH):
        raise InvalidKey(
            f"must decode to a 32-byte Ed25519 seed or a 64-byte key, not {len(raw)} bytes"
        )
    key = Ed25519PrivateKey.from_private_bytes(raw[:SEED_LENGTH])
    if len(raw) > SEED_LENGTH and raw[SEED_LENGTH:] != public_bytes(key.public_key()):
        raise InvalidKey("is a 64-byte key whose public half does not belong to its seed")
    return key


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key from base64 of its 32 bytes."""
    try:
        raw = decode_base64(text.strip())
    except ValueError:
        raise InvalidKey("is not valid base64") from None
    if len(raw) != PUBLIC_KEY_LENGTH:
        raise InvalidKey(f"must decode to a 32-byte Ed25519 public key, not {len(raw)} bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidKey("is not an Ed25519 public key") from None


def seed_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def canonical_json(value: object) -> bytes:
    """Matrix canonical JSON: sorted keys, no whitespace, UTF-8, integers only."""
    _check_canonical(value)
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    ).encode("utf-8")


def _check_canonical(value: object) -> None:
    # Floats have no agreed canonical form: two implementations could print the
    # same number differently and break every signature over it.
    if isinstance(value, float):
        raise NotCanonical("floating-point numbers have no canonical JSON form")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonical("object keys must be strings")
            _check_canonical(item)
    elif isinstance(value, list):
        for item in value:
            _check_canonical(item)


def sign_json(key: Ed25519PrivateKey, payload: object) -> str:
    """The unpadded base64url Ed25519 signature of ``payload``'s canonical JSON."""
    return encode_b64url(key.sign(canonical_json(payload)))


def decode_signature(text: str) -> bytes:
    """A received signature: base64url (padding tolerated), exactly 64 bytes."""
    if "+" in text or "/" in text:
        raise ValueError("signature is not base64url")
    raw = decode_base64(text)
    if len(raw) != SIGNATURE_LENGTH:
        raise ValueError(f"signature is {len(raw)} bytes, not {SIGNATURE_LENGTH}")
    return raw


def verify_signature(key: Ed25519PublicKey, payload: object, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature of ``payload``'s canonical JSON."""
    try:
        key.verify(signature, canonical_json(payload))
    except InvalidSignature:
        return False
    return True
