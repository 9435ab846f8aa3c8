"""Which URL the healthcheck command asks."""

from __future__ import annotations

import pytest

from matrixrtc_auth.healthcheck import default_url, health_url


@pytest.mark.parametrize(
    ("given", "asked"),
    [
        ("http://127.0.0.1:8080/healthz", "http://127.0.0.1:8080/healthz"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/healthz"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/healthz"),
        ("https://rtc.example.com/livekit/jwt", "https://rtc.example.com/livekit/jwt/healthz"),
        ("http://[::1]:8080/livekit/healthz", "http://[::1]:8080/livekit/healthz"),
    ],
)
def test_urls_not_naming_healthz_get_it_appended(given: str, asked: str) -> None:
    assert health_url(given) == asked


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8080/healthz"),
        ({"LIVEKIT_JWT_BIND": ":9000"}, "http://127.0.0.1:9000/healthz"),
        ({"LIVEKIT_JWT_BIND": "[::1]:9001"}, "http://[::1]:9001/healthz"),
        ({"LIVEKIT_JWT_PORT": "9002"}, "http://127.0.0.1:9002/healthz"),
    ],
)
def test_default_url_follows_the_listen_address(env: dict[str, str], url: str) -> None:
    assert default_url(env) == url
