"""The token flow: admit, verify the user, prepare the room, check duplicates, sign.

This is the heart of ``/sfu/get``, ``/get_token`` and
``/delegate_delayed_leave``; the handlers only parse and answer. Each refusal
is a ``MatrixError`` whose client message stays vague and whose
``log_cause`` says precisely what happened.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from matrixrtc_auth.access import AccessPolicy, Tier
from matrixrtc_auth.delegation.manager import MAX_JOBS_PER_USER, JobManager, TooManyJobs
from matrixrtc_auth.delegation.store import StoredJob
from matrixrtc_auth.duplicates import DuplicateChecker
from matrixrtc_auth.errors import (
    BadJson,
    Forbidden,
    LimitExceeded,
    NotFound,
    Unauthorized,
    Unknown,
)
from matrixrtc_auth.http.requests import JoinRequest
from matrixrtc_auth.identities import IdentityRegistry, Owner
from matrixrtc_auth.logs import fields
from matrixrtc_auth.matrix.openid import OpenIDVerifier, VerificationFailed
from matrixrtc_auth.matrix.v2 import V2Verifier
from matrixrtc_auth.metrics import VERIFICATION_LATENCY, VERIFICATIONS
from matrixrtc_auth.sfu.naming import (
    LiveKitIdentity,
    LiveKitRoomAlias,
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
        delegations: JobManager,
        duplicates: DuplicateChecker | None = None,
        registry: IdentityRegistry | None = None,
        v2: V2Verifier | None = None,
    ) -> None:
        self._livekit_url = livekit_url
        self._policy = policy
        self._verifier = verifier
        self._rooms = rooms
        self._minter = minter
        self._delegations = delegations
        # Both set when duplicate prevention is on, neither otherwise.
        self._duplicates = duplicates
        self._registry = registry
        # Set with MATRIX_VERIFICATION_METHOD=v2; used for full-access servers only.
        self._v2 = v2

    async def issue(self, join: JoinRequest, client: str) -> IssuedToken:
        """``/sfu/get`` and ``/get_token``: a LiveKit token, delegation when asked."""
        tier = self._policy.admit(join.server.original)
        if join.delayed_leave is not None and tier is not Tier.FULL:
            raise BadJson(
                "Delegating a delayed leave event needs a full-access homeserver",
                log_cause=f"restricted {join.server.original} asked for delegation",
            )
        user_id = await self._verify(join, tier)
        if join.delayed_leave is not None:
            await self._require_cs_api(join)
        alias, identity = self._names(join, user_id)

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
        if join.delayed_leave is not None:
            await self._delegate(join, user_id, alias, identity)
        log.info(
            "token issued",
            extra=fields(
                matrix_id=user_id,
                tier=tier.value,
                room=alias,
                lk_identity=identity,
                client=client,
                delegated=join.delayed_leave is not None,
            ),
        )
        return IssuedToken(self._livekit_url, jwt)

    async def delegate_only(self, join: JoinRequest, client: str) -> None:
        """``/delegate_delayed_leave``: the client is connected already; no token, no room."""
        tier = self._policy.admit(join.server.original)
        if tier is not Tier.FULL:
            raise Forbidden(
                "Delegating a delayed leave event needs a full-access homeserver",
                log_cause=f"restricted {join.server.original} asked for delegation",
            )
        user_id = await self._verify(join, tier)
        await self._require_cs_api(join)
        alias, identity = self._names(join, user_id)
        await self._delegate(join, user_id, alias, identity)
        log.info(
            "delayed leave delegated",
            extra=fields(matrix_id=user_id, room=alias, lk_identity=identity, client=client),
        )

    async def _verify(self, join: JoinRequest, tier: Tier) -> str:
        server = join.server
        started = time.perf_counter()
        try:
            if tier is Tier.FULL and self._v2 is not None:
                user_id = await self._v2.verify(server, join.openid.access_token, join.device_id)
            else:
                user_id = await self._verifier.verify(server, join.openid.access_token)
        except VerificationFailed as exc:
            VERIFICATIONS.labels("refused").inc()
            VERIFICATION_LATENCY.observe(time.perf_counter() - started)
            raise Unauthorized(
                "The OpenID token could not be verified",
                log_cause=f"OpenID verification failed at {server.original}: {exc.cause}",
            ) from None
        VERIFICATIONS.labels("verified").inc()
        VERIFICATION_LATENCY.observe(time.perf_counter() - started)
        if join.claimed_user_id is not None and join.claimed_user_id != user_id:
            raise Unauthorized(
                "The OpenID token does not belong to the claimed user",
                log_cause=f"claimed_user_id is not the verified user {user_id}",
            )
        return user_id

    @staticmethod
    def _names(join: JoinRequest, user_id: str) -> tuple[LiveKitRoomAlias, LiveKitIdentity]:
        alias = room_alias(join.room_id, join.slot_id)
        if join.member_id is None:
            return alias, legacy_identity(user_id, join.device_id)
        return alias, participant_identity(user_id, join.device_id, join.member_id)

    async def _require_cs_api(self, join: JoinRequest) -> None:
        server_name = join.server.original
        if await self._delegations.services.cs_api.base_url(server_name) is None:
            raise BadJson(
                "The homeserver's client-server API cannot be found",
                log_cause=f"no client-server API for {server_name} (set "
                "LIVEKIT_CS_API_URL_OVERRIDES or publish .well-known/matrix/client)",
            )

    async def _delegate(
        self, join: JoinRequest, user_id: str, alias: LiveKitRoomAlias, identity: LiveKitIdentity
    ) -> None:
        leave = join.delayed_leave
        assert leave is not None
        spec = StoredJob(
            room=alias,
            identity=identity,
            delay_id=leave.delay_id,
            delay_timeout_ms=leave.delay_timeout_ms,
            server_name=join.server.original,
            user_id=user_id,
            created_at=time.time(),
        )
        try:
            await self._delegations.delegate(spec)
        except TooManyJobs:
            raise LimitExceeded(
                "Too many delegated leave events for this user",
                log_cause=f"{user_id} already has {MAX_JOBS_PER_USER} delegation jobs",
            ) from None
