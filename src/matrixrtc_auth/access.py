"""Access tiers: which homeservers' users may make the service create rooms.

Decided from configuration alone, before the homeserver is contacted.
"""

from __future__ import annotations

import enum

from matrixrtc_auth.config import Config


class Tier(enum.Enum):
    FULL = "full"  # may have the room created
    RESTRICTED = "restricted"  # may only join rooms that exist


class AccessPolicy:
    def __init__(self, config: Config) -> None:
        self._config = config

    def tier(self, server_name: str) -> Tier:
        return Tier.FULL if self._config.is_full_access(server_name) else Tier.RESTRICTED
