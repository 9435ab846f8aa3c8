"""Fixtures shared by every test layer: a test CA, a service-process factory and the fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.fake_homeserver import FakeHomeserver
from tests.support.fake_sfu import FakeSfu
from tests.support.service import ServiceProcess
from tests.support.tls import TestCA, make_ca

ServiceFactory = Callable[..., ServiceProcess]


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def start_service(request: pytest.FixtureRequest) -> Iterator[ServiceFactory]:
    """Starts service processes; stops them after the test and shows their logs."""
    started: list[ServiceProcess] = []

    def factory(env: dict[str, str], *, wait_healthy: bool = True) -> ServiceProcess:
        service = ServiceProcess(env)
        started.append(service)
        return service.start(wait_healthy=wait_healthy)

    yield factory
    for service in started:
        service.stop()
        # Printed output is shown by pytest only for failing tests.
        print(f"--- service on port {service.port} ---\n{service.logs}")


@pytest.fixture
def fake_sfu() -> Iterator[FakeSfu]:
    """A fake LiveKit SFU on a free loopback port (``fake_sfu.url`` for ``LIVEKIT_URL``)."""
    with FakeSfu() as sfu:
        yield sfu


@pytest.fixture
def fake_homeserver(test_ca: TestCA) -> Iterator[FakeHomeserver]:
    """A fake homeserver with a certificate from ``test_ca``, named ``127.0.0.1:<port>``."""
    with FakeHomeserver(test_ca.server_context("localhost", "127.0.0.1")) as homeserver:
        yield homeserver


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        for layer in ("unit", "blackbox", "e2e"):
            if layer in path.parts:
                item.add_marker(getattr(pytest.mark, layer))
