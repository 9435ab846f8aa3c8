"""Who gets in, and with which tier (PROTOCOL.md section 5).

Decided from configuration alone, before the homeserver is contacted, so a
refused server costs nothing. The order of the checks is the contract:

1. an allow list is set and the server is not on it       -> refused
2. the server is restricted and restricted ones are blocked -> refused
3. no allow list, no block-restricted, server on the block list -> refused

Otherwise the server's users are full-access (may have rooms created) or
restricted (may only join rooms that exist).
"""

from __future__ import annotations

import enum

from matrixrtc_auth.config import Config
from matrixrtc_auth.errors import Forbidden


class Tier(enum.Enum):
    FULL = "full"  # may have the room created
    RESTRICTED = "restricted"  # may only join rooms that exist


_REFUSED = "This homeserver may not use this MatrixRTC service"


class AccessPolicy:
    def __init__(self, config: Config) -> None:
        self._config = config

    def admit(self, server_name: str) -> Tier:
        """The tier of ``server_name``'s users; ``Forbidden`` if they may not come in."""
        config = self._config
        name = server_name.lower()
        if config.allowed_homeservers and name not in config.allowed_homeservers:
            raise Forbidden(
                _REFUSED, log_cause=f"{server_name} is not in LIVEKIT_ALLOWED_HOMESERVERS"
            )
        tier = Tier.FULL if config.is_full_access(name) else Tier.RESTRICTED
        if tier is Tier.RESTRICTED and config.block_restricted:
            raise Forbidden(
                _REFUSED,
                log_cause=f"{server_name} is restricted and "
                "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS is on",
            )
        if (
            not config.allowed_homeservers
            and not config.block_restricted
            and name in config.blocked_homeservers
        ):
            raise Forbidden(_REFUSED, log_cause=f"{server_name} is in LIVEKIT_BLOCKED_HOMESERVERS")
        return tier
