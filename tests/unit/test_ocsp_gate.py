"""The OCSP gate (``ocsp_gate.py``): verdicts, caching, binding, and the real pyOpenSSL probe."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from matrixrtc_auth.ocsp import sha256_fingerprint
from matrixrtc_auth.ocsp_gate import Probe, StapleGate, StapleRefused, probe_staple
from tests.support.ocsp_pki import Issued, OcspPki
from tests.support.stapling_server import Identity, StaplingServer

PKI = OcspPki()
LEAF = PKI.server()
OTHER = PKI.server()


class PeerCert:
    """Stands in for the ``ssl.SSLObject`` of a connection presenting ``issued``."""

    def __init__(self, issued: Issued) -> None:
        self._der = issued.cert.public_bytes(Encoding.DER)

    def getpeercert(self, binary_form: bool = False) -> bytes:
        assert binary_form
        return self._der


def connection(issued: Issued = LEAF) -> ssl.SSLObject:
    return cast(ssl.SSLObject, PeerCert(issued))


class ProbeRecorder:
    def __init__(self, issued: Issued = LEAF, staple: bytes = b"") -> None:
        self.issued = issued
        self.staple = staple
        self.calls: list[tuple[str, int, str]] = []
        self.fail = False

    def __call__(self, address: str, port: int, name: str, cafile: str | None) -> Probe:
        self.calls.append((address, port, name))
        if self.fail:
            raise OSError("connection refused")
        der = self.issued.cert.public_bytes(Encoding.DER)
        return Probe(sha256_fingerprint(der), self.issued.cert, PKI.ca.cert, self.staple)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(probe: ProbeRecorder, *, require: bool = False, clock: Clock | None = None) -> StapleGate:
    return StapleGate(require=require, cafile=None, probe=probe, clock=clock or Clock())


async def test_no_staple_is_fine_and_probed_once_per_period() -> None:
    probe, clock = ProbeRecorder(), Clock()
    checker = gate(probe, clock=clock)
    for _ in range(3):
        await checker.check("hs.example", 8448, "192.0.2.1", connection())
    assert probe.calls == [("192.0.2.1", 8448, "hs.example")]
    clock.now += 3601
    await checker.check("hs.example", 8448, "192.0.2.1", connection())
    assert len(probe.calls) == 2


async def test_no_staple_is_refused_when_required() -> None:
    with pytest.raises(StapleRefused, match="staples no OCSP"):
        await gate(ProbeRecorder(), require=True).check("hs", 443, "192.0.2.1", connection())


async def test_good_staple_passes_and_binds_the_certificate() -> None:
    probe = ProbeRecorder(staple=PKI.response(LEAF.cert))
    checker = gate(probe, require=True)
    await checker.check("hs", 443, "192.0.2.1", connection())
    await checker.check("hs", 443, "192.0.2.1", connection())
    assert len(probe.calls) == 1
    # A connection with another certificate than the one checked: probed again, and
    # refused because the probe still sees the checked certificate.
    with pytest.raises(StapleRefused, match="another certificate"):
        await checker.check("hs", 443, "192.0.2.1", connection(OTHER))
    assert len(probe.calls) == 2


@pytest.mark.parametrize("require", [False, True])
async def test_revoked_staple_is_refused_whether_required_or_not(require: bool) -> None:
    probe = ProbeRecorder(staple=PKI.response(LEAF.cert, status="revoked"))
    checker = gate(probe, require=require)
    for _ in range(2):
        with pytest.raises(StapleRefused, match="REVOKED"):
            await checker.check("hs", 443, "192.0.2.1", connection())
    # The refusal is remembered briefly instead of probing for every request.
    assert len(probe.calls) == 1


async def test_failed_probe_is_tolerated_only_when_stapling_is_not_required() -> None:
    probe = ProbeRecorder()
    probe.fail = True
    await gate(probe).check("hs", 443, "192.0.2.1", connection())
    with pytest.raises(StapleRefused, match="probe handshake failed"):
        await gate(probe, require=True).check("hs", 443, "192.0.2.1", connection())


@pytest.fixture
def stapling_server(tmp_path: Path) -> Iterator[StaplingServer]:
    with StaplingServer(tmp_path, Identity(LEAF)) as server:
        yield server


def test_probe_reads_the_staple_and_the_verified_chain(
    stapling_server: StaplingServer, tmp_path: Path
) -> None:
    cafile = str(PKI.write_ca(tmp_path / "ca.pem"))
    staple = PKI.response(LEAF.cert)
    stapling_server.set_staple(staple)
    probe = probe_staple("127.0.0.1", stapling_server.port, "localhost", cafile)
    assert probe.staple == staple
    assert probe.leaf == LEAF.cert
    assert probe.issuer == PKI.ca.cert
    assert probe.fingerprint == sha256_fingerprint(LEAF.cert.public_bytes(Encoding.DER))

    stapling_server.set_staple(b"")
    assert probe_staple("127.0.0.1", stapling_server.port, "127.0.0.1", cafile).staple == b""


def test_probe_refuses_an_untrusted_certificate(
    stapling_server: StaplingServer, tmp_path: Path
) -> None:
    cafile = str(OcspPki("Unrelated CA").write_ca(tmp_path / "other-ca.pem"))
    with pytest.raises(SSL.Error):
        probe_staple("127.0.0.1", stapling_server.port, "localhost", cafile)
