"""Access tiers and the order of the allow / block-restricted / block checks."""

from __future__ import annotations

import pytest

from matrixrtc_auth.access import AccessPolicy, Tier
from matrixrtc_auth.config import Config, ConfigError
from matrixrtc_auth.errors import Forbidden

BASE = {"LIVEKIT_URL": "ws://sfu", "LIVEKIT_KEY": "k", "LIVEKIT_SECRET": "s"}


def policy(**env: str) -> AccessPolicy:
    return AccessPolicy(Config.from_env({**BASE, **env}))


def test_default_gives_everyone_full_access() -> None:
    assert policy().admit("anywhere.example") is Tier.FULL


def test_full_access_list_makes_others_restricted() -> None:
    p = policy(LIVEKIT_FULL_ACCESS_HOMESERVERS="home.example")
    assert p.admit("home.example") is Tier.FULL
    assert p.admit("HOME.example") is Tier.FULL
    assert p.admit("other.example") is Tier.RESTRICTED


def test_allow_list_refuses_everyone_else() -> None:
    p = policy(
        LIVEKIT_FULL_ACCESS_HOMESERVERS="home.example",
        LIVEKIT_ALLOWED_HOMESERVERS="home.example,partner.example",
    )
    assert p.admit("partner.example") is Tier.RESTRICTED
    with pytest.raises(Forbidden) as info:
        p.admit("stranger.example")
    assert "LIVEKIT_ALLOWED_HOMESERVERS" in info.value.log_cause


def test_block_restricted_leaves_only_full_access() -> None:
    p = policy(
        LIVEKIT_FULL_ACCESS_HOMESERVERS="home.example", LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS="true"
    )
    assert p.admit("home.example") is Tier.FULL
    with pytest.raises(Forbidden) as info:
        p.admit("other.example")
    assert "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS" in info.value.log_cause


def test_block_list_refuses_named_servers() -> None:
    p = policy(LIVEKIT_BLOCKED_HOMESERVERS="evil.example")
    with pytest.raises(Forbidden):
        p.admit("evil.example")
    assert p.admit("fine.example") is Tier.FULL


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {
                "LIVEKIT_ALLOWED_HOMESERVERS": "a.example,b.example",
                "LIVEKIT_BLOCKED_HOMESERVERS": "b.example",
            },
            ["LIVEKIT_ALLOWED_HOMESERVERS", "b.example"],
        ),
        (
            {
                "LIVEKIT_FULL_ACCESS_HOMESERVERS": "a.example",
                "LIVEKIT_BLOCKED_HOMESERVERS": "a.example",
            },
            ["LIVEKIT_FULL_ACCESS_HOMESERVERS", "a.example"],
        ),
        (
            {
                "LIVEKIT_FULL_ACCESS_HOMESERVERS": "a.example",
                "LIVEKIT_ALLOWED_HOMESERVERS": "a.example,b.example",
                "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS": "yes",
            },
            ["LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS", "b.example"],
        ),
    ],
)
def test_conflicting_lists_are_refused_naming_the_entries(
    env: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env({**BASE, **env})
    for name in names:
        assert name in str(info.value)


def test_block_list_next_to_allow_list_is_a_warning() -> None:
    config = Config.from_env(
        {
            **BASE,
            "LIVEKIT_ALLOWED_HOMESERVERS": "a.example",
            "LIVEKIT_BLOCKED_HOMESERVERS": "z.example",
        }
    )
    assert any("no effect" in w for w in config.warnings)


def test_star_is_not_an_allow_list() -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_ALLOWED_HOMESERVERS"):
        Config.from_env({**BASE, "LIVEKIT_ALLOWED_HOMESERVERS": "*"})
