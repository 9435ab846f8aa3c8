"""Black-box tests of stapled OCSP: the service against a real TLS homeserver on loopback
that staples responses built with cryptography's OCSP builder (good, revoked, expired,
wrongly signed, none), with and without ``REQUIRE_OCSP_STAPLE``."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blackbox.helpers import ServiceFactory, post_json, sfu_get_body
from tests.support.fake_sfu import FakeSfu
from tests.support.ocsp_pki import OcspPki, now
from tests.support.service import ServiceProcess
from tests.support.stapling_server import Identity, StaplingServer

HOUR = datetime.timedelta(hours=1)
PKI = OcspPki()
LEAF = PKI.server()
ROGUE = OcspPki("Rogue CA")


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    return PKI.write_ca(tmp_path / "ocsp-ca.pem")


@pytest.fixture
def homeserver(tmp_path: Path) -> Iterator[StaplingServer]:
    with StaplingServer(tmp_path, Identity(LEAF)) as server:
        yield server


def start(
    start_service: ServiceFactory,
    sfu: FakeSfu,
    server: StaplingServer,
    ca_file: Path,
    **extra: str,
) -> ServiceProcess:
    env = {
        "LIVEKIT_URL": sfu.url,
        "LIVEKIT_KEY": sfu.api_key,
        "LIVEKIT_SECRET": sfu.api_secret,
        "LIVEKIT_FULL_ACCESS_HOMESERVERS": server.server_name,
        "SSL_CERT_FILE": str(ca_file),
        **extra,
    }
    return start_service(env)


def join(service: ServiceProcess, server: StaplingServer) -> int:
    return post_json(service, "/sfu/get", sfu_get_body("any-token", server.server_name)).status


@pytest.mark.parametrize("require", ["false", "true"])
def test_good_staple_is_accepted(
    homeserver: StaplingServer,
    ca_file: Path,
    fake_sfu: FakeSfu,
    start_service: ServiceFactory,
    require: str,
) -> None:
    homeserver.set_staple(PKI.response(LEAF.cert))
    service = start(start_service, fake_sfu, homeserver, ca_file, REQUIRE_OCSP_STAPLE=require)
    assert join(service, homeserver) == 200
    assert join(service, homeserver) == 200
    assert homeserver.userinfo_requests == 2
    service.wait_for_log("stapled OCSP response checked: good")
    # One probe for both requests (each on a new connection: the server closes them).
    assert homeserver.staples_sent == 1


def test_good_staple_from_a_delegated_responder_is_accepted(
    homeserver: StaplingServer, ca_file: Path, fake_sfu: FakeSfu, start_service: ServiceFactory
) -> None:
    homeserver.set_staple(PKI.response(LEAF.cert, signer=PKI.responder()))
    service = start(start_service, fake_sfu, homeserver, ca_file, REQUIRE_OCSP_STAPLE="true")
    assert join(service, homeserver) == 200


@pytest.mark.parametrize(
    ("make_staple", "cause"),
    [
        (lambda: PKI.response(LEAF.cert, status="revoked"), "certificate status is REVOKED"),
        (
            lambda: PKI.response(
                LEAF.cert, this_update=now() - 3 * HOUR, next_update=now() - HOUR
            ),
            "OCSP response expired",
        ),
        (
            lambda: PKI.response(
                LEAF.cert, signer=ROGUE.ca, include_signer=False, issuer=PKI.ca.cert
            ),
            "signed by neither the issuer nor its responder",
        ),
        (
            lambda: PKI.response(LEAF.cert, signer=ROGUE.responder(), issuer=PKI.ca.cert),
            "responder's certificate is not from the issuer",
        ),
    ],
    ids=["revoked", "expired", "wrongly-signed", "foreign-responder"],
)
def test_bad_staple_is_refused_before_the_token_is_sent(
    homeserver: StaplingServer,
    ca_file: Path,
    fake_sfu: FakeSfu,
    start_service: ServiceFactory,
    make_staple,
    cause: str,
) -> None:
    homeserver.set_staple(make_staple())
    service = start(start_service, fake_sfu, homeserver, ca_file)
    assert join(service, homeserver) == 401
    line = service.wait_for_log(cause)
    assert "refused by the OCSP check" in line
    assert homeserver.userinfo_requests == 0
    assert fake_sfu.calls("CreateRoom") == []


def test_missing_staple_is_accepted_when_not_required(
    homeserver: StaplingServer, ca_file: Path, fake_sfu: FakeSfu, start_service: ServiceFactory
) -> None:
    service = start(start_service, fake_sfu, homeserver, ca_file)
    assert join(service, homeserver) == 200
    assert join(service, homeserver) == 200
    assert homeserver.userinfo_requests == 2
    # Two requests on two connections, plus the one probe.
    assert homeserver.connections == 3


def test_missing_staple_is_refused_when_required(
    homeserver: StaplingServer, ca_file: Path, fake_sfu: FakeSfu, start_service: ServiceFactory
) -> None:
    service = start(start_service, fake_sfu, homeserver, ca_file, REQUIRE_OCSP_STAPLE="true")
    assert join(service, homeserver) == 401
    service.wait_for_log("staples no OCSP response")
    assert homeserver.userinfo_requests == 0


def test_connection_with_another_certificate_than_the_checked_one_is_refused(
    tmp_path: Path, ca_file: Path, fake_sfu: FakeSfu, start_service: ServiceFactory
) -> None:
    # Connections alternate: the service's own gets OTHER (no staple), its probe gets
    # LEAF with a good staple. The good verdict must not cover the other certificate.
    other = PKI.server()
    with StaplingServer(
        tmp_path, Identity(other), Identity(LEAF, PKI.response(LEAF.cert))
    ) as server:
        service = start(start_service, fake_sfu, server, ca_file)
        assert join(service, server) == 401
        service.wait_for_log("another certificate than the one whose OCSP staple was checked")
        assert server.userinfo_requests == 0
        service.stop()


def test_skip_verify_turns_ocsp_checks_off_with_a_warning(
    homeserver: StaplingServer, ca_file: Path, fake_sfu: FakeSfu, start_service: ServiceFactory
) -> None:
    homeserver.set_staple(PKI.response(LEAF.cert, status="revoked"))
    service = start(
        start_service,
        fake_sfu,
        homeserver,
        ca_file,
        REQUIRE_OCSP_STAPLE="true",
        LIVEKIT_INSECURE_SKIP_VERIFY_TLS="YES_I_KNOW_WHAT_I_AM_DOING",
    )
    service.wait_for_log("REQUIRE_OCSP_STAPLE has no effect")
    assert join(service, homeserver) == 200
