"""Fixtures for the black-box tests: the service's surroundings bundled as one ``Stack``."""

from __future__ import annotations

import pytest

from tests.blackbox.helpers import ServiceFactory, Stack
from tests.support.fake_homeserver import FakeHomeserver
from tests.support.fake_sfu import FakeSfu
from tests.support.tls import TestCA


@pytest.fixture
def stack(
    fake_sfu: FakeSfu,
    fake_homeserver: FakeHomeserver,
    test_ca: TestCA,
    start_service: ServiceFactory,
) -> Stack:
    return Stack(fake_sfu, fake_homeserver, test_ca, start_service)
