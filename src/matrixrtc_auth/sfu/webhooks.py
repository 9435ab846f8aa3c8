"""LiveKit webhooks: checking their signature and reading participant events.

LiveKit signs each webhook with a JWT in ``Authorization`` (issuer: the API
key, signed with its secret) whose ``sha256`` claim is the hash of the exact
body bytes. The official SDK's receiver checks both. Only participant events
matter to delegation; everything else is acknowledged and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit import api
from livekit.protocol.models import DisconnectReason

from matrixrtc_auth.delegation.fsm import Signal

_EVENTS = frozenset({"participant_joined", "participant_left", "participant_connection_aborted"})


class WebhookRefused(Exception):
    """The webhook is not provably from our SFU; ``cause`` is for the log."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True)
class ParticipantEvent:
    event: str
    room: str
    identity: str
    signal: Signal
    # For disconnects: whether the participant left on purpose (CLIENT_INITIATED).
    intentional: bool


class WebhookVerifier:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self._receiver = api.WebhookReceiver(api.TokenVerifier(api_key, api_secret))

    def parse(self, body: bytes, authorization: str | None) -> ParticipantEvent | None:
        """The participant event in a verified webhook, or None for other events."""
        token = (authorization or "").strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        if not token:
            raise WebhookRefused("no Authorization header")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRefused("body is not UTF-8") from None
        try:
            event = self._receiver.receive(text, token)
        # The SDK raises PyJWT errors, a bare Exception for a hash mismatch and
        # protobuf errors for a bad body: any of them means "not acted on".
        except Exception as exc:
            raise WebhookRefused(f"verification failed: {type(exc).__name__}") from None
        if event.event not in _EVENTS or not event.room.name or not event.participant.identity:
            return None
        intentional = event.participant.disconnect_reason == DisconnectReason.CLIENT_INITIATED
        if event.event == "participant_joined":
            signal = Signal.JOINED
        elif event.event == "participant_left" and intentional:
            signal = Signal.LEFT
        else:
            # PROTOCOL.md 2.5: a disconnect the client did not ask for is an abort.
            signal = Signal.CONNECTION_ABORTED
        return ParticipantEvent(
            event=event.event,
            room=event.room.name,
            identity=event.participant.identity,
            signal=signal,
            intentional=intentional,
        )
