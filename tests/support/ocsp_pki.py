"""A small PKI for OCSP tests: a CA, loopback server certificates, responders, responses.

Made with ``cryptography`` directly (trustme cannot add the OCSP-signing key
usage a delegated responder needs). ``OcspPki.response`` builds a DER OCSP
response with ``cryptography``'s OCSP builder: any status, any validity window,
signed by the issuer, by a delegated responder, or by somebody else entirely.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    """A certificate with its key."""

    cert: x509.Certificate
    key: Key

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class OcspPki:
    """A CA that issues server certificates and OCSP responder certificates."""

    def __init__(self, name: str = "OCSP test CA") -> None:
        key = _new_key()
        start = now() - datetime.timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        self.ca = Issued(cert, key)

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca.pem())
        return path

    def _issue(
        self, common_name: str, extensions: list[tuple[x509.ExtensionType, bool]]
    ) -> Issued:
        key = _new_key()
        start = now() - datetime.timedelta(hours=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=7))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()),
                critical=False,
            )
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return Issued(builder.sign(self.ca.key, hashes.SHA256()), key)

    def server(self, *, hostname: str = "localhost", ip: str = "127.0.0.1") -> Issued:
        """A TLS server certificate for ``hostname`` and ``ip``."""
        san = x509.SubjectAlternativeName(
            [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address(ip))]
        )
        usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
        return self._issue(hostname, [(san, False), (usage, False)])

    def responder(self, *, ocsp_signing: bool = True) -> Issued:
        """A delegated OCSP responder certificate (with or without the OCSP-signing EKU)."""
        purpose = (
            ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.CLIENT_AUTH
        )
        return self._issue("OCSP responder", [(x509.ExtendedKeyUsage([purpose]), False)])

    def response(
        self,
        leaf: x509.Certificate,
        *,
        status: str = "good",
        this_update: datetime.datetime | None = None,
        next_update: datetime.datetime | None = None,
        without_next_update: bool = False,
        signer: Issued | None = None,
        include_signer: bool = True,
        issuer: x509.Certificate | None = None,
    ) -> bytes:
        """A DER OCSP response about ``leaf``; signed by the CA unless ``signer`` is given."""
        current = now()
        statuses = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }
        revoked = status == "revoked"
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=leaf,
            issuer=issuer or self.ca.cert,
            algorithm=hashes.SHA1(),
            cert_status=statuses[status],
            this_update=this_update or current - datetime.timedelta(minutes=10),
            next_update=None
            if without_next_update
            else next_update or current + datetime.timedelta(hours=2),
            revocation_time=current - datetime.timedelta(hours=1) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        signing = signer or self.ca
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signing.cert)
        if signer is not None and include_signer:
            builder = builder.certificates([signer.cert])
        response = builder.sign(signing.key, hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    @staticmethod
    def unsuccessful() -> bytes:
        response = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
        return response.public_bytes(serialization.Encoding.DER)
