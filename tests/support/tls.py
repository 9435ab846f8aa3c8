"""Test certificate authorities made with trustme, written to files like an operator's."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TestCA:
    """A throwaway CA whose certificate is on disk, ready for ``SSL_CERT_FILE``."""

    __test__ = False  # a test helper, not a test class

    ca: trustme.CA
    cert_file: Path

    def server_context(self, *names: str) -> ssl.SSLContext:
        """An SSL context for a TLS server presenting a certificate for ``names``."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*names).configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for test clients that trusts this CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def write_server_cert(self, directory: Path, *names: str) -> tuple[Path, Path]:
        """Writes a certificate chain and key for ``names``; returns (cert, key) paths."""
        leaf = self.ca.issue_cert(*names)
        stem = "-".join(n.replace(":", "_") for n in names)
        cert = directory / f"{stem}.crt"
        key = directory / f"{stem}.key"
        leaf.private_key_pem.write_to_path(str(key))
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        return cert, key


def make_ca(directory: Path) -> TestCA:
    ca = trustme.CA()
    cert_file = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(cert_file))
    return TestCA(ca=ca, cert_file=cert_file)
