"""Who does an OpenID token belong to? (V1 verification, PROTOCOL.md section 3.1)

The homeserver the client named answers over federation. Its answer only
counts for users of that very server: a homeserver vouching for somebody
else's users would otherwise be believed.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from matrixrtc_auth.matrix.federation import FederationClient, FederationError
from matrixrtc_auth.matrix.http import json_object
from matrixrtc_auth.matrix.servername import ServerName

USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"
USERINFO_TIMEOUT = 3.0
USERINFO_MAX_BYTES = 1024
# Discovery (well-known, SRV) plus the userinfo call, all told.
VERIFY_DEADLINE = 8.0
MAX_USER_ID_LENGTH = 255

# Historical user IDs allow any printable ASCII but ':' in the localpart.
_LOCALPART = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")


class VerificationFailed(Exception):
    """The token was not confirmed; ``cause`` is for the log, not the client."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class OpenIDVerifier:
    def __init__(self, federation: FederationClient) -> None:
        self._federation = federation

    async def verify(self, server: ServerName, access_token: str) -> str:
        """The Matrix user ID the token belongs to, on ``server``."""
        try:
            async with asyncio.timeout(VERIFY_DEADLINE):
                status, body = await self._federation.get(
                    server,
                    USERINFO_PATH,
                    {"access_token": access_token},
                    request_timeout=USERINFO_TIMEOUT,
                    max_bytes=USERINFO_MAX_BYTES,
                )
        except FederationError as exc:
            raise VerificationFailed(exc.cause) from None
        except TimeoutError:
            raise VerificationFailed(f"no answer within {VERIFY_DEADLINE:g}s") from None

        document = json_object(body)
        if status != 200:
            raise VerificationFailed(answered(status, document))
        if document is None:
            raise VerificationFailed("homeserver answer is not a JSON object")
        user_id = document.get("sub")
        if not isinstance(user_id, str):
            raise VerificationFailed("homeserver answer has no 'sub'")
        check_user_id(user_id, server.original)
        return user_id


def answered(status: int, document: dict[str, Any] | None) -> str:
    """``homeserver answered 401 M_UNKNOWN_TOKEN``: the status, and the errcode if any."""
    errcode = document.get("errcode") if document else None
    detail = f" {errcode[:64]}" if isinstance(errcode, str) else ""
    return f"homeserver answered {status}{detail}"


def check_user_id(user_id: str, server_name: str) -> None:
    """Raises unless ``user_id`` is a valid user ID of exactly ``server_name``."""
    if len(user_id) > MAX_USER_ID_LENGTH or not user_id.startswith("@"):
        raise VerificationFailed("homeserver answered an invalid user ID")
    localpart, sep, domain = user_id[1:].partition(":")
    if not sep or not _LOCALPART.fullmatch(localpart):
        raise VerificationFailed("homeserver answered an invalid user ID")
    if domain != server_name:
        raise VerificationFailed(
            f"homeserver vouched for a user of another server ({domain[:100]!r})"
        )
