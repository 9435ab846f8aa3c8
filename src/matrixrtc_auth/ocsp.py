"""Checking a stapled OCSP response against the certificate it is stapled to.

A pure function of the response bytes, the leaf certificate, its issuer and
the time, so that every rule is unit-tested without a network
(``tests/unit/test_ocsp*.py``). ``ocsp_gate.py`` fetches the staple and the
chain during a TLS handshake and calls ``check_staple``.

The response counts only when all of these hold:

- its status is ``successful`` and one of its single responses names the leaf
  (issuer name hash, issuer key hash and serial number, with the hash the
  response itself uses);
- it is signed by the issuer, or by a delegated responder whose certificate
  the issuer signed and which carries the OCSP-signing extended key usage
  (RFC 6960 section 4.2.2.2);
- the certificate status is ``good``;
- ``thisUpdate`` is not in the future and ``nextUpdate`` (when present) not in
  the past, each with ``CLOCK_SKEW`` of allowance for clocks that disagree.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

CLOCK_SKEW = datetime.timedelta(minutes=5)


class StapleInvalid(Exception):
    """The stapled response does not vouch for the certificate; the message says why."""


def check_staple(
    data: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime.datetime,
) -> datetime.datetime | None:
    """Raises ``StapleInvalid`` unless ``data`` says ``leaf`` is good at ``now``.

    Returns the response's ``nextUpdate`` (None when it has none), which bounds
    how long the verdict may be remembered.
    """
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        raise StapleInvalid("the stapled OCSP response is not valid DER") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise StapleInvalid(f"OCSP response status is {response.response_status.name}")
    try:
        leaf.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise StapleInvalid("the certificate chain gives no issuer to check against") from None

    _check_signature(response, issuer)
    single = _response_for(response, leaf, issuer)
    if single.certificate_status is not ocsp.OCSPCertStatus.GOOD:
        raise StapleInvalid(f"certificate status is {single.certificate_status.name}")
    if single.this_update_utc > now + CLOCK_SKEW:
        raise StapleInvalid(f"OCSP response is not valid before {single.this_update_utc}")
    next_update = single.next_update_utc
    if next_update is not None and next_update < now - CLOCK_SKEW:
        raise StapleInvalid(f"OCSP response expired at {next_update}")
    return next_update


def _response_for(
    response: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    for single in response.responses:
        # The certificate ID as this response computes it (usually SHA-1).
        expected = (
            ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, single.hash_algorithm).build()
        )
        if (
            single.serial_number == leaf.serial_number
            and single.issuer_key_hash == expected.issuer_key_hash
            and single.issuer_name_hash == expected.issuer_name_hash
        ):
            return single
    raise StapleInvalid("the stapled OCSP response is about another certificate")


def _check_signature(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    signer = _signer(response, issuer)
    if not _signed_by(signer, response.signature, response.tbs_response_bytes, response):
        raise StapleInvalid("the OCSP response signature does not verify")


def _signer(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate:
    """The certificate whose key must have signed ``response``."""
    if _names_responder(response, issuer):
        return issuer
    for candidate in response.certificates:
        if not _names_responder(response, candidate):
            continue
        if candidate.issuer != issuer.subject:
            raise StapleInvalid("the OCSP responder's certificate is not from the issuer")
        try:
            candidate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise StapleInvalid(
                "the OCSP responder's certificate is not signed by the issuer"
            ) from None
        try:
            usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            raise StapleInvalid("the OCSP responder's certificate may not sign OCSP responses")
        return candidate
    raise StapleInvalid("the OCSP response is signed by neither the issuer nor its responder")


def _names_responder(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == certificate.subject
    key_hash = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    return response.responder_key_hash == key_hash


def _signed_by(
    signer: x509.Certificate, signature: bytes, data: bytes, response: ocsp.OCSPResponse
) -> bool:
    key = signer.public_key()
    try:
        algorithm = response.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


def sha256_fingerprint(der: bytes) -> str:
    """The certificate's SHA-256 fingerprint as hex, the key the verdicts are cached by."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex()
