"""Duplicate session prevention (PROTOCOL.md section 6).

When the room exists, its participants are listed and mapped back to
(user, device): ``/sfu/get`` identities spell it out (``user:device``, the
device after the last colon), hashed ones are looked up in the identity
registry. A join is refused when the same user and device are already there
(``LIVEKIT_BLOCK_SAME_DEVICE_DUPLICATE``) or the same user is there with
another device (``LIVEKIT_BLOCK_SAME_USER_MULTIPLE_DEVICES``). If the
participants cannot be listed, the join goes ahead: availability wins.
"""

from __future__ import annotations

import logging

from matrixrtc_auth.errors import DuplicateSession
from matrixrtc_auth.identities import IdentityRegistry, Owner
from matrixrtc_auth.logs import fields
from matrixrtc_auth.sfu.naming import LiveKitRoomAlias
from matrixrtc_auth.sfu.rooms import SfuError, SfuRooms

log = logging.getLogger(__name__)


def legacy_owner(identity: str) -> Owner | None:
    """The owner spelled out in a ``user:device`` identity, if it is one."""
    if not identity.startswith("@"):
        return None
    user_id, sep, device_id = identity.rpartition(":")
    if not sep or ":" not in user_id or not device_id:
        return None
    return Owner(user_id, device_id)


class DuplicateChecker:
    def __init__(
        self,
        rooms: SfuRooms,
        registry: IdentityRegistry,
        *,
        same_device: bool,
        same_user: bool,
    ) -> None:
        self._rooms = rooms
        self._registry = registry
        self._same_device = same_device
        self._same_user = same_user

    async def check(self, alias: LiveKitRoomAlias, user_id: str, device_id: str) -> None:
        try:
            identities = await self._rooms.list_participants(alias)
        except SfuError as exc:
            log.warning(
                "cannot list participants; duplicate check skipped",
                extra=fields(room=alias, cause=exc.cause),
            )
            return
        owners = [o for o in map(legacy_owner, identities) if o is not None]
        hashed = [i for i in identities if legacy_owner(i) is None]
        owners += (await self._registry.lookup(hashed)).values()

        for owner in owners:
            if owner.user_id != user_id:
                continue
            if owner.device_id == device_id and self._same_device:
                raise DuplicateSession(
                    "This device is already in the call",
                    log_cause=f"{user_id} device {device_id} is already in room {alias}",
                )
            if owner.device_id != device_id and self._same_user:
                raise DuplicateSession(
                    "This user is already in the call with another device",
                    log_cause=f"{user_id} is already in room {alias} with device "
                    f"{owner.device_id}",
                )
