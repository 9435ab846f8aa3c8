"""``matrixrtc-auth keygen``: Ed25519 keys in the form the V2 variables take.

Without arguments it makes a fresh key pair for the service and prints

    MATRIX_PRIVATE_KEY=<base64 of the 32-byte seed>
    MATRIX_PUBLIC_KEY=<base64 of the 32-byte public key>

(the output is a valid environment file; ``MATRIX_PUBLIC_KEY`` is optional for
the service, which checks it against the private key when set, and is what
the homeserver must be given). ``--from-pem FILE`` converts an existing
unencrypted Ed25519 PEM key: a private key prints the same two lines, a public
key (typically the homeserver's) prints ``SYNAPSE_PUBLIC_KEY=...``. Errors are
one line on stderr and exit status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from matrixrtc_auth.keys import encode_base64, public_bytes, seed_bytes
from matrixrtc_auth.verification import HOMESERVER_KEY, PRIVATE_KEY, PUBLIC_KEY


class KeygenError(Exception):
    """A key that cannot be converted; one line for stderr."""


def private_key_lines(key: Ed25519PrivateKey) -> list[str]:
    return [
        f"{PRIVATE_KEY}={encode_base64(seed_bytes(key))}",
        f"{PUBLIC_KEY}={encode_base64(public_bytes(key.public_key()))}",
    ]


def public_key_lines(key: Ed25519PublicKey) -> list[str]:
    return [f"{HOMESERVER_KEY}={encode_base64(public_bytes(key))}"]


def convert_pem(data: bytes) -> list[str]:
    """The variable lines for an Ed25519 PEM private or public key."""
    if b"PRIVATE KEY" in data:
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise KeygenError(
                "the PEM private key is encrypted; decrypt it first "
                "(openssl pkey -in FILE -out PLAIN.pem)"
            ) from None
        except ValueError:
            raise KeygenError("the file is not a readable PEM private key") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise KeygenError(f"the PEM key is {_kind(private)}, not Ed25519")
        return private_key_lines(private)
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeygenError("the file holds no PEM Ed25519 private or public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeygenError(f"the PEM key is {_kind(public)}, not Ed25519")
    return public_key_lines(public)


def _kind(key: object) -> str:
    return f"an {type(key).__name__}"


def run_keygen(pem_file: str | None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """The command itself; returns the exit status."""
    if pem_file is None:
        lines = private_key_lines(Ed25519PrivateKey.generate())
    else:
        try:
            data = Path(pem_file).read_bytes()
        except OSError as exc:
            print(f"matrixrtc-auth keygen: cannot read {pem_file}: {exc.strerror}", file=err)
            return 1
        try:
            lines = convert_pem(data)
        except KeygenError as exc:
            print(f"matrixrtc-auth keygen: {pem_file}: {exc}", file=err)
            return 1
    for line in lines:
        print(line, file=out)
    return 0
