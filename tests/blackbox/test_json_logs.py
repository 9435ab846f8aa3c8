"""Black-box tests of ``LIVEKIT_LOG_FORMAT=json``: one JSON object per line, stable field names.

One service process (module scope) lives through a start, an issued token, a
refused token and a shutdown, at debug level so that every logger gets to
write; the tests then read everything it wrote, standard error included. An
unknown format is refused at start-up.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.blackbox.helpers import get_token_body, post_json
from tests.support.fake_homeserver import FakeHomeserver
from tests.support.fake_sfu import FakeSfu
from tests.support.service import ServiceProcess
from tests.support.tls import TestCA

BASE_FIELDS = ("time", "level", "logger", "message")


@dataclass(frozen=True)
class Run:
    """What one service process wrote through start, token, refusal and shutdown."""

    lines: list[str]
    exit_code: int | None
    user_id: str
    openid_token: str
    refused_token: str
    issued_jwt: str
    secret: str
    server_name: str

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    def first(self, message: str) -> dict[str, Any]:
        for document in self.documents():
            if document["message"] == message:
                return document
        raise AssertionError(f"no {message!r} line in:\n" + "\n".join(self.lines))


@pytest.fixture(scope="module")
def run(test_ca: TestCA) -> Iterator[Run]:
    context = test_ca.server_context("localhost", "127.0.0.1")
    with FakeSfu() as sfu, FakeHomeserver(context) as homeserver:
        user_id = f"@alice:{homeserver.server_name}"
        token = f"openid-alice-{secrets.token_urlsafe(18)}"
        homeserver.add_token(token, user_id)
        refused_token = f"unknown-openid-{secrets.token_urlsafe(18)}"
        service = ServiceProcess(
            {
                "LIVEKIT_URL": sfu.url,
                "LIVEKIT_KEY": sfu.api_key,
                "LIVEKIT_SECRET": sfu.api_secret,
                "LIVEKIT_FULL_ACCESS_HOMESERVERS": homeserver.server_name,
                "SSL_CERT_FILE": str(test_ca.cert_file),
                "LIVEKIT_LOG_FORMAT": "json",
                "LIVEKIT_LOG_LEVEL": "debug",
            }
        )
        try:
            service.start()
            server = homeserver.server_name
            issued = post_json(service, "/get_token", get_token_body(token, server, user_id))
            assert issued.status == 200, issued.body
            refused = get_token_body(refused_token, server, f"@bob:{server}")
            assert post_json(service, "/get_token", refused).status == 401
            service.wait_for_log('"request refused"')
        finally:
            exit_code = service.stop()
        yield Run(
            lines=service.log_lines(),
            exit_code=exit_code,
            user_id=user_id,
            openid_token=token,
            refused_token=refused_token,
            issued_jwt=issued.json()["jwt"],
            secret=sfu.api_secret,
            server_name=server,
        )


def test_every_line_is_a_json_object_with_time_level_logger_and_message(run: Run) -> None:
    assert run.exit_code == 0
    assert len(run.lines) >= 5, run.lines
    for line in run.lines:
        document = json.loads(line)
        assert isinstance(document, dict), line
        for name in BASE_FIELDS:
            assert isinstance(document.get(name), str) and document[name], (name, line)
        assert document["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
        # ISO 8601, in UTC.
        assert datetime.fromisoformat(document["time"]).utcoffset() == timedelta(0), line


def test_lines_cover_start_and_shutdown(run: Run) -> None:
    messages = [document["message"] for document in run.documents()]
    assert any(message.startswith("listening on 127.0.0.1:") for message in messages), messages
    assert "shutting down: finishing requests in flight" in messages
    assert messages[-1] == "stopped"


def test_token_line_has_user_room_identity_tier_and_client(run: Run) -> None:
    line = run.first("token issued")
    assert line["level"] == "INFO"
    assert line["logger"].startswith("matrixrtc_auth")
    assert line["matrix_id"] == run.user_id
    assert line["tier"] == "full"
    assert line["client"] == "127.0.0.1"
    for name in ("room", "lk_identity", "request_id"):
        assert isinstance(line.get(name), str) and line[name], (name, line)


def test_refusal_line_has_status_and_cause(run: Run) -> None:
    line = run.first("request refused")
    assert line["level"] == "WARNING"
    assert line["status"] == 401
    assert run.server_name in line["cause"]
    assert line["path"] == "/get_token"


def test_no_line_carries_an_openid_token_the_secret_or_the_issued_jwt(run: Run) -> None:
    _, payload, signature = run.issued_jwt.split(".")
    forbidden = {
        "OpenID token": run.openid_token,
        "refused OpenID token": run.refused_token,
        "LiveKit secret": run.secret,
        "issued JWT payload": payload,
        "issued JWT signature": signature,
    }
    for line in run.lines:
        for what, value in forbidden.items():
            assert value not in line, f"{what} in log line: {line}"


def test_unknown_log_format_exits_non_zero_naming_the_variable() -> None:
    service = ServiceProcess(
        {
            "LIVEKIT_URL": "ws://127.0.0.1:7880",
            "LIVEKIT_KEY": "devkey",
            "LIVEKIT_SECRET": "a-long-enough-secret-0123456789-abcdef",
            "LIVEKIT_FULL_ACCESS_HOMESERVERS": "example.com",
            "LIVEKIT_LOG_FORMAT": "xml",
        }
    )
    service.start(wait_healthy=False)
    try:
        code = service.wait_exit(10)
    finally:
        service.stop()
    assert code != 0
    assert "LIVEKIT_LOG_FORMAT" in service.logs, service.logs
