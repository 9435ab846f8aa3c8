"""Webhook signals: which LiveKit events mean joined, left on purpose, or aborted."""

from __future__ import annotations

import pytest

from matrixrtc_auth.delegation.fsm import Signal
from matrixrtc_auth.sfu.webhooks import WebhookRefused, WebhookVerifier
from tests.support.webhooks import sign, webhook_body

KEY, SECRET = "webhook-key", "webhook-secret-of-thirty-two-bytes!!"


@pytest.mark.parametrize(
    ("event", "reason", "signal"),
    [
        ("participant_joined", None, Signal.JOINED),
        ("participant_left", "CLIENT_INITIATED", Signal.LEFT),
        ("participant_left", "CONNECTION_TIMEOUT", Signal.CONNECTION_ABORTED),
        ("participant_left", None, Signal.CONNECTION_ABORTED),
        ("participant_connection_aborted", "CLIENT_INITIATED", Signal.CONNECTION_ABORTED),
    ],
)
def test_participant_events_map_to_signals(event: str, reason: str | None, signal: Signal) -> None:
    body = webhook_body(event, "room-alias", "identity-1", reason)
    parsed = WebhookVerifier(KEY, SECRET).parse(body, sign(body, KEY, SECRET))
    assert parsed is not None
    assert (parsed.room, parsed.identity, parsed.signal) == ("room-alias", "identity-1", signal)


def test_other_events_are_ignored() -> None:
    body = webhook_body("track_published", "room-alias", "identity-1")
    assert WebhookVerifier(KEY, SECRET).parse(body, sign(body, KEY, SECRET)) is None


@pytest.mark.parametrize("authorization", [None, "", "not-a-jwt"])
def test_unsigned_webhooks_are_refused(authorization: str | None) -> None:
    body = webhook_body("participant_left", "r", "i", "CLIENT_INITIATED")
    with pytest.raises(WebhookRefused):
        WebhookVerifier(KEY, SECRET).parse(body, authorization)


def test_altered_body_is_refused() -> None:
    body = webhook_body("participant_left", "r", "i", "CLIENT_INITIATED")
    signature = sign(body, KEY, SECRET)
    with pytest.raises(WebhookRefused):
        WebhookVerifier(KEY, SECRET).parse(body.replace(b'"i"', b'"j"'), signature)


def test_bearer_prefix_is_accepted() -> None:
    body = webhook_body("participant_joined", "r", "i")
    assert WebhookVerifier(KEY, SECRET).parse(body, "Bearer " + sign(body, KEY, SECRET))
