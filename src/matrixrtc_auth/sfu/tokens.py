"""LiveKit access tokens for participants (PROTOCOL.md section 4).

The token lets its holder join one room, publish and subscribe, and update its
own metadata. It never carries ``roomCreate``: that grant would also let the
holder delete any room, so the service creates rooms itself instead.
"""

from __future__ import annotations

from datetime import timedelta

from livekit import api

from matrixrtc_auth.sfu.naming import LiveKitIdentity, LiveKitRoomAlias

TOKEN_LIFETIME = timedelta(hours=1)


class TokenMinter:
    """Signs participant tokens with the SFU's API key and secret."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self._key = api_key
        self._secret = api_secret

    def __repr__(self) -> str:
        return f"TokenMinter(api_key={self._key!r})"

    def mint(self, identity: LiveKitIdentity, room: LiveKitRoomAlias) -> str:
        grants = api.VideoGrants(
            room_join=True,
            room=room,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=True,
            can_update_own_metadata=True,
        )
        token = (
            api.AccessToken(self._key, self._secret)
            .with_identity(identity)
            .with_grants(grants)
            .with_ttl(TOKEN_LIFETIME)
        )
        return token.to_jwt()
