"""The user a homeserver vouches for must be one of its own."""

from __future__ import annotations

import pytest

from matrixrtc_auth.matrix.openid import VerificationFailed, check_user_id


@pytest.mark.parametrize(
    ("user_id", "server"),
    [
        ("@alice:example.com", "example.com"),
        ("@a.b_c=d/e+f:hs.example:8448", "hs.example:8448"),
        ("@x:[::1]:8448", "[::1]:8448"),
    ],
)
def test_own_users_are_accepted(user_id: str, server: str) -> None:
    check_user_id(user_id, server)


@pytest.mark.parametrize(
    ("user_id", "server"),
    [
        ("@alice:evil.com", "example.com"),
        ("@alice:example.com:8448", "example.com"),
        ("@alice:example.com", "example.com:8448"),
        ("@alice:EXAMPLE.com", "example.com"),
        ("alice:example.com", "example.com"),
        ("@:example.com", "example.com"),
        ("@al ice:example.com", "example.com"),
        ("@alice", "example.com"),
        ("@" + "a" * 300 + ":example.com", "example.com"),
    ],
)
def test_other_or_invalid_users_are_refused(user_id: str, server: str) -> None:
    with pytest.raises(VerificationFailed):
        check_user_id(user_id, server)
