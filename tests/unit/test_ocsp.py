"""Checking stapled OCSP responses (``ocsp.check_staple``): every rule, no network."""

from __future__ import annotations

import datetime

import pytest

from matrixrtc_auth.ocsp import CLOCK_SKEW, StapleInvalid, check_staple
from tests.support.ocsp_pki import OcspPki, now

PKI = OcspPki()
LEAF = PKI.server()
OTHER_LEAF = PKI.server(hostname="other.localhost")
ROGUE = OcspPki("Rogue CA")
HOUR = datetime.timedelta(hours=1)


def check(data: bytes, at: datetime.datetime | None = None) -> datetime.datetime | None:
    return check_staple(data, LEAF.cert, PKI.ca.cert, at or now())


def test_good_response_signed_by_the_issuer_passes() -> None:
    next_update = check(PKI.response(LEAF.cert))
    assert next_update is not None and next_update > now()


def test_good_response_without_next_update_passes() -> None:
    assert check(PKI.response(LEAF.cert, without_next_update=True)) is None


def test_good_response_from_a_delegated_responder_passes() -> None:
    check(PKI.response(LEAF.cert, signer=PKI.responder()))


def test_delegated_responder_without_ocsp_signing_usage_is_refused() -> None:
    data = PKI.response(LEAF.cert, signer=PKI.responder(ocsp_signing=False))
    with pytest.raises(StapleInvalid, match="may not sign OCSP"):
        check(data)


def test_responder_certified_by_another_ca_is_refused() -> None:
    data = PKI.response(LEAF.cert, signer=ROGUE.responder(), issuer=PKI.ca.cert)
    with pytest.raises(StapleInvalid, match="not from the issuer"):
        check(data)


def test_responder_certificate_missing_from_the_response_is_refused() -> None:
    data = PKI.response(LEAF.cert, signer=PKI.responder(), include_signer=False)
    with pytest.raises(StapleInvalid, match="neither the issuer nor"):
        check(data)


def test_response_signed_by_a_stranger_is_refused() -> None:
    data = PKI.response(LEAF.cert, signer=ROGUE.ca, include_signer=False, issuer=PKI.ca.cert)
    with pytest.raises(StapleInvalid, match="neither the issuer nor"):
        check(data)


@pytest.mark.parametrize("status", ["revoked", "unknown"])
def test_status_other_than_good_is_refused(status: str) -> None:
    with pytest.raises(StapleInvalid, match=status.upper()):
        check(PKI.response(LEAF.cert, status=status))


def test_expired_response_is_refused() -> None:
    data = PKI.response(LEAF.cert, this_update=now() - 3 * HOUR, next_update=now() - HOUR)
    with pytest.raises(StapleInvalid, match="expired"):
        check(data)


def test_clock_allowance_applies_at_both_ends() -> None:
    recently_expired = PKI.response(
        LEAF.cert, this_update=now() - HOUR, next_update=now() - CLOCK_SKEW / 2
    )
    check(recently_expired)
    slightly_future = PKI.response(LEAF.cert, this_update=now() + CLOCK_SKEW / 2)
    check(slightly_future)
    future = PKI.response(LEAF.cert, this_update=now() + 2 * CLOCK_SKEW)
    with pytest.raises(StapleInvalid, match="not valid before"):
        check(future)


def test_response_about_another_certificate_is_refused() -> None:
    with pytest.raises(StapleInvalid, match="another certificate"):
        check(PKI.response(OTHER_LEAF.cert))


def test_unsuccessful_and_garbage_responses_are_refused() -> None:
    with pytest.raises(StapleInvalid, match="TRY_LATER"):
        check(OcspPki.unsuccessful())
    with pytest.raises(StapleInvalid, match="DER"):
        check(b"\x30\x03garbage")


def test_issuer_that_did_not_sign_the_leaf_is_refused() -> None:
    data = ROGUE.response(LEAF.cert, issuer=ROGUE.ca.cert)
    with pytest.raises(StapleInvalid, match="no issuer"):
        check_staple(data, LEAF.cert, ROGUE.ca.cert, now())
