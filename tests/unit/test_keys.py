"""Ed25519 key parsing, canonical JSON and signatures (``keys.py``), and ``keygen.py``."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from matrixrtc_auth.keygen import KeygenError, convert_pem, run_keygen
from matrixrtc_auth.keys import (
    InvalidKey,
    NotCanonical,
    canonical_json,
    decode_signature,
    parse_private_key,
    parse_public_key,
    public_bytes,
    seed_bytes,
    sign_json,
    verify_signature,
)

KEY = Ed25519PrivateKey.generate()
SEED = seed_bytes(KEY)
PUBLIC = public_bytes(KEY.public_key())


def b64(data: bytes, *, padded: bool = True, urlsafe: bool = False) -> str:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return text if padded else text.rstrip("=")


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("urlsafe", [True, False])
def test_seed_parses_padded_or_not_in_either_alphabet(padded: bool, urlsafe: bool) -> None:
    key = parse_private_key(b64(SEED, padded=padded, urlsafe=urlsafe))
    assert seed_bytes(key) == SEED


@pytest.mark.parametrize("padded", [True, False])
def test_64_byte_key_parses_to_the_same_key(padded: bool) -> None:
    key = parse_private_key(b64(SEED + PUBLIC, padded=padded))
    assert public_bytes(key.public_key()) == PUBLIC


def test_64_byte_key_with_a_foreign_public_half_is_refused() -> None:
    other = public_bytes(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(InvalidKey, match="public half"):
        parse_private_key(b64(SEED + other))


@pytest.mark.parametrize(
    "text",
    ["", "not base64!", "QUJD=x", b64(b"short"), b64(SEED + b"x"), b64(SEED + PUBLIC + b"x")],
)
def test_malformed_private_keys_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        parse_private_key(text)
    if text:
        assert text not in str(caught.value)


def test_public_key_parses_padded_or_not() -> None:
    for text in (b64(PUBLIC), b64(PUBLIC, padded=False)):
        assert public_bytes(parse_public_key(text)) == PUBLIC


@pytest.mark.parametrize("raw", [b"", PUBLIC[:31], PUBLIC + b"\0", SEED + PUBLIC])
def test_public_key_of_wrong_length_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidKey, match=r"32-byte|base64"):
        parse_public_key(b64(raw))


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_unicode() -> None:
    value = {"b": 1, "a": {"é": "ü\u2028<&>", "z": [True, None, -5]}, "A": "x"}
    assert (
        canonical_json(value)
        == '{"A":"x","a":{"z":[true,null,-5],"é":"ü\u2028<&>"},"b":1}'.encode()
    )


def test_canonical_json_refuses_floats() -> None:
    with pytest.raises(NotCanonical):
        canonical_json({"a": [1.5]})


def test_signature_is_unpadded_base64url_and_verifies() -> None:
    payload = {"session_id": "s", "nonce": "n", "timestamp": 1}
    signature = sign_json(KEY, payload)
    assert "=" not in signature and "+" not in signature and "/" not in signature
    raw = decode_signature(signature)
    assert verify_signature(KEY.public_key(), payload, raw)
    # Key order does not matter: the signature covers the canonical form.
    assert verify_signature(KEY.public_key(), dict(reversed(payload.items())), raw)


def test_signature_over_other_content_or_by_another_key_fails() -> None:
    payload = {"nonce": "n"}
    raw = decode_signature(sign_json(KEY, payload))
    assert not verify_signature(KEY.public_key(), {"nonce": "m"}, raw)
    assert not verify_signature(Ed25519PrivateKey.generate().public_key(), payload, raw)
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    assert not verify_signature(KEY.public_key(), payload, flipped)


def test_signature_matches_an_independent_canonical_encoding() -> None:
    payload = {"z": "ß", "a": 1}
    independent = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raw = KEY.sign(independent.encode("utf-8"))
    assert verify_signature(KEY.public_key(), payload, raw)


@pytest.mark.parametrize("text", ["abc", "a+b/" * 22, b64(b"x" * 63, padded=False)])
def test_malformed_signatures_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode_signature(text)


def _lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_keygen_prints_a_pair_that_loads_and_verifies() -> None:
    out = io.StringIO()
    assert run_keygen(None, out) == 0
    values = _lines(out.getvalue())
    private = parse_private_key(values["MATRIX_PRIVATE_KEY"])
    public = parse_public_key(values["MATRIX_PUBLIC_KEY"])
    payload = {"nonce": "x"}
    assert verify_signature(public, payload, decode_signature(sign_json(private, payload)))


def test_pem_private_key_converts_to_the_same_key() -> None:
    pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    values = _lines("\n".join(convert_pem(pem)))
    assert seed_bytes(parse_private_key(values["MATRIX_PRIVATE_KEY"])) == SEED
    assert public_bytes(parse_public_key(values["MATRIX_PUBLIC_KEY"])) == PUBLIC


def test_pem_public_key_converts_to_synapse_public_key(tmp_path: Path) -> None:
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    file = tmp_path / "hs.pub.pem"
    file.write_bytes(pem)
    out = io.StringIO()
    assert run_keygen(str(file), out) == 0
    values = _lines(out.getvalue())
    assert public_bytes(parse_public_key(values["SYNAPSE_PUBLIC_KEY"])) == PUBLIC


def test_encrypted_and_foreign_pem_keys_are_refused(tmp_path: Path) -> None:
    encrypted = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(KeygenError, match="encrypted"):
        convert_pem(encrypted)
    ec_pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeygenError, match="not Ed25519"):
        convert_pem(ec_pem)
    file = tmp_path / "junk.pem"
    file.write_text("hello")
    err = io.StringIO()
    assert run_keygen(str(file), io.StringIO(), err) == 1
    assert "junk.pem" in err.getvalue()
