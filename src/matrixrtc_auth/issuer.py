"""The token flow: admit, verify the user, prepare the room, check duplicates, sign.

This is the heart of ``/sfu/get`` and ``/get_token``; the handlers only parse
and answer. Each refusal is a ``MatrixError`` whose client message stays
vague and whose ``log_cause`` says precisely what happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from matrixrtc_auth.access import AccessPolicy, Tier
from matrixrtc_auth.duplicates import DuplicateChecker
from matrixrtc_auth.errors import NotFound, Unauthorized, Unknown
from matrixrtc_auth.http.requests import JoinRequest
from matrixrtc_auth.identities import IdentityRegistry, Owner
from matrixrtc_auth.logs import fields
from matrixrtc_auth.matrix.openid import OpenIDVerifier, VerificationFailed
from matrixrtc_auth.sfu.naming import (
    legacy_identity,
    participant_identity,
    room_alias,
)
from matrixrtc_auth.sfu.rooms import SfuError, SfuRooms
from matrixrtc_auth.sfu.tokens import TokenMinter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedToken:
    url: str
    jwt: str


class TokenIssuer:
    def __init__(
        self,
        *,
        livekit_url: str,
        policy: AccessPolicy,
        verifier: OpenIDVerifier,
        rooms: SfuRooms,
        minter: TokenMinter,
        duplicates: DuplicateChecker | None = None,
        registry: IdentityRegistry | None = None,
    ) -> None:
        self._livekit_url = livekit_url
        self._policy = policy
        self._verifier = verifier
        self._rooms = rooms
        self._minter = minter
        # Both set when duplicate prevention is on, neither otherwise.
        self._duplicates = duplicates
        self._registry = registry

    async def issue(self, join: JoinRequest, client: str) -> IssuedToken:
        server = join.server
        tier = self._policy.admit(server.original)

        try:
            user_id = await self._verifier.verify(server, join.openid.access_token)
        except VerificationFailed as exc:
            raise Unauthorized(
                "The OpenID token could not be verified",
                log_cause=f"OpenID verification failed at {server.original}: {exc.cause}",
            ) from None
        if join.claimed_user_id is not None and join.claimed_user_id != user_id:
            raise Unauthorized(
                "The OpenID token does not belong to the claimed user",
                log_cause=f"claimed_user_id is not the verified user {user_id}",
            )

        alias = room_alias(join.room_id, join.slot_id)
        if join.member_id is None:
            identity = legacy_identity(user_id, join.device_id)
        else:
            identity = participant_identity(user_id, join.device_id, join.member_id)

        try:
            if tier is Tier.FULL:
                await self._rooms.ensure_room(alias)
            elif not await self._rooms.room_exists(alias):
                raise NotFound(
                    "The call has not been started by a user who may start it",
                    log_cause=f"restricted user {user_id} asked for missing room {alias}",
                )
        except SfuError as exc:
            raise Unknown("The LiveKit SFU is unavailable", log_cause=exc.cause) from None

        if self._duplicates is not None:
            await self._duplicates.check(alias, user_id, join.device_id)

        jwt = self._minter.mint(identity, alias)
        if self._registry is not None and join.member_id is not None:
            await self._registry.remember(identity, Owner(user_id, join.device_id))
        log.info(
            "token issued",
            extra=fields(
                matrix_id=user_id,
                tier=tier.value,
                room=alias,
                lk_identity=identity,
                client=client,
            ),
        )
        return IssuedToken(self._livekit_url, jwt)
