"""End-to-end tests of ``matrixrtc-auth doctor`` against a deployment on loopback.

The deployment: the fake LiveKit SFU, the real Synapse (server name
``localhost:<federation port>``), Redis, a running service process, and a TLS
server of this module (certificate from the test CA for ``localhost``) serving
the homeserver's ``/.well-known/matrix/client`` whose ``livekit`` focus points
at that service. The doctor runs in-process with the well-known on that
server's port. When everything is right every check passes; each broken part
then makes exactly its own check fail, with a fix, and leaves the others
passing. A last test runs the command itself with a broken configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from matrixrtc_auth.doctor import run_doctor
from tests.conftest import ServiceFactory
from tests.e2e.synapse import SynapseServer
from tests.support.fake_sfu import FakeSfu
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401
from tests.support.service import ServiceProcess
from tests.support.threaded_server import ThreadedServer
from tests.support.tls import TestCA

FOCI_KEY = "org.matrix.msc4143.rtc_foci"
WELL_KNOWN_CLIENT = "/.well-known/matrix/client"
_INHERITED = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")

Report = dict[str, Any]


class WellKnownClientServer(ThreadedServer):
    """Serves ``/.well-known/matrix/client`` over TLS on 127.0.0.1; 404 for anything else."""

    def __init__(self, ca: TestCA) -> None:
        self._lock = threading.Lock()
        self._document: Any = None
        app = web.Application()
        app.router.add_get(WELL_KNOWN_CLIENT, self._serve_document)
        super().__init__(app, ssl_context=ca.server_context("localhost", "127.0.0.1"))

    def set_document(self, document: Any) -> None:
        with self._lock:
            self._document = document

    async def _serve_document(self, request: web.Request) -> web.Response:
        with self._lock:
            document = self._document
        if document is None:
            raise web.HTTPNotFound()
        return web.json_response(document)


class NotFoundServer(ThreadedServer):
    """A plain HTTP server on 127.0.0.1 that answers 404 to everything."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        super().__init__(app)

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="not here")


@dataclass
class Deployment:
    sfu: FakeSfu
    synapse: SynapseServer
    ca: TestCA
    redis: RedisServer
    service: ServiceProcess
    well_known: WellKnownClientServer

    def client_document(self, focus_url: str) -> dict[str, Any]:
        return {
            "m.homeserver": {"base_url": self.synapse.client_url},
            FOCI_KEY: [{"type": "livekit", "livekit_service_url": focus_url}],
        }

    def env(self, **overrides: str | None) -> dict[str, str]:
        """The doctor's environment, the service's own; ``None`` removes a variable."""
        env: dict[str, str | None] = {
            "LIVEKIT_URL": self.sfu.url,
            "LIVEKIT_KEY": self.sfu.api_key,
            "LIVEKIT_SECRET": self.sfu.api_secret,
            "LIVEKIT_FULL_ACCESS_HOMESERVERS": self.synapse.server_name,
            "SSL_CERT_FILE": str(self.ca.cert_file),
            "LIVEKIT_REDIS_URL": self.redis.url,
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def expected_checks(self, *servers: str) -> set[str]:
        names = {"configuration", "livekit", "redis"}
        for server in servers or (self.synapse.server_name,):
            names |= {f"federation {server}", f"rtc focus {server}"}
        return names


@pytest.fixture
def well_known(test_ca: TestCA) -> Iterator[WellKnownClientServer]:
    with WellKnownClientServer(test_ca) as server:
        yield server


@pytest.fixture
def deployment(
    fake_sfu: FakeSfu,
    synapse: SynapseServer,
    test_ca: TestCA,
    redis_server: RedisServer,  # noqa: F811
    start_service: ServiceFactory,
    well_known: WellKnownClientServer,
) -> Deployment:
    service = start_service(
        {
            "LIVEKIT_URL": fake_sfu.url,
            "LIVEKIT_KEY": fake_sfu.api_key,
            "LIVEKIT_SECRET": fake_sfu.api_secret,
            "LIVEKIT_FULL_ACCESS_HOMESERVERS": synapse.server_name,
            "SSL_CERT_FILE": str(test_ca.cert_file),
        }
    )
    found = Deployment(fake_sfu, synapse, test_ca, redis_server, service, well_known)
    well_known.set_document(found.client_document(service.base_url))
    return found


def doctor(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], **overrides: str | None
) -> tuple[int, Report]:
    """Runs the doctor in-process on ``deployment``; returns its exit status and JSON report."""
    capsys.readouterr()
    code = run_doctor(
        deployment.env(**overrides), as_json=True, well_known_port=deployment.well_known.port
    )
    report: Report = json.loads(capsys.readouterr().out)
    return code, report


def failing(report: Report) -> dict[str, Report]:
    return {check["name"]: check for check in report["checks"] if not check["ok"]}


def assert_only_failure(code: int, report: Report, name: str, expected: set[str]) -> Report:
    """Exactly ``name`` failed, with a fix; every other expected check ran and passed."""
    assert code == 1, report
    assert report["ok"] is False
    assert {check["name"] for check in report["checks"]} == expected, report
    failed = failing(report)
    assert set(failed) == {name}, report
    assert failed[name]["fix"].strip(), report
    assert failed[name]["detail"].strip(), report
    return failed[name]


def test_every_check_passes_when_the_deployment_is_right(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = doctor(deployment, capsys)
    assert failing(report) == {}, report
    assert code == 0
    assert report["ok"] is True
    assert {check["name"] for check in report["checks"]} == deployment.expected_checks()
    # Nothing to fix: no passing check carries a fix.
    assert [check["fix"] for check in report["checks"]] == [""] * len(report["checks"])
    by_name = {check["name"]: check for check in report["checks"]}
    assert (
        deployment.service.base_url
        in by_name[f"rtc focus {deployment.synapse.server_name}"]["detail"]
    )


def test_wrong_livekit_secret_fails_only_the_livekit_check(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "not-the-sfu-secret-0123456789-abcdefghijklmnop"
    code, report = doctor(deployment, capsys, LIVEKIT_SECRET=wrong)
    check = assert_only_failure(code, report, "livekit", deployment.expected_checks())
    assert "401" in check["detail"], check
    assert "LIVEKIT_SECRET" in check["fix"]
    assert wrong not in json.dumps(report)


def test_unreachable_homeserver_fails_only_its_federation_check(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = f"localhost:{free_port()}"
    servers = f"{deployment.synapse.server_name},{unreachable}"
    code, report = doctor(deployment, capsys, LIVEKIT_FULL_ACCESS_HOMESERVERS=servers)
    # The .well-known is looked up by host name, so the focus of the unreachable
    # server (also "localhost") still passes: only its federation check fails.
    expected = deployment.expected_checks(deployment.synapse.server_name, unreachable)
    assert_only_failure(code, report, f"federation {unreachable}", expected)


def test_missing_rtc_focus_fails_only_the_rtc_focus_check(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.well_known.set_document(
        {"m.homeserver": {"base_url": deployment.synapse.client_url}}
    )
    code, report = doctor(deployment, capsys)
    name = f"rtc focus {deployment.synapse.server_name}"
    check = assert_only_failure(code, report, name, deployment.expected_checks())
    assert "no livekit focus" in check["detail"], check
    assert FOCI_KEY in check["fix"]


def test_focus_pointing_at_the_sfu_fails_only_the_rtc_focus_check(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.well_known.set_document(deployment.client_document(deployment.sfu.http_url))
    code, report = doctor(deployment, capsys)
    name = f"rtc focus {deployment.synapse.server_name}"
    check = assert_only_failure(code, report, name, deployment.expected_checks())
    assert deployment.sfu.http_url in check["detail"], check


def test_focus_pointing_at_a_server_answering_404_fails_only_the_rtc_focus_check(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    with NotFoundServer() as elsewhere:
        focus = f"http://127.0.0.1:{elsewhere.port}/livekit/jwt"
        deployment.well_known.set_document(deployment.client_document(focus))
        code, report = doctor(deployment, capsys)
    name = f"rtc focus {deployment.synapse.server_name}"
    check = assert_only_failure(code, report, name, deployment.expected_checks())
    assert "404" in check["detail"], check


def test_redis_down_fails_only_the_redis_check(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.redis.stop()
    code, report = doctor(deployment, capsys)
    check = assert_only_failure(code, report, "redis", deployment.expected_checks())
    assert "LIVEKIT_REDIS_URL" in check["fix"]


def test_doctor_command_without_livekit_url_exits_1_with_a_failed_configuration_check() -> None:
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.update(
        {
            "LIVEKIT_KEY": "devkey",
            "LIVEKIT_SECRET": "a-long-enough-secret-0123456789-abcdef",
            "LIVEKIT_FULL_ACCESS_HOMESERVERS": "example.com",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "matrixrtc_auth", "doctor", "--json"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    # A configuration that does not parse stops the doctor before any network check.
    assert [check["name"] for check in report["checks"]] == ["configuration"], report
    check = report["checks"][0]
    assert check["ok"] is False
    assert "LIVEKIT_URL" in check["detail"], check
    assert check["fix"].strip()
