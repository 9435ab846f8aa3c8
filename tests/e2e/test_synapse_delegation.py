"""Delegated delayed leave events against a real Synapse with MSC4140 enabled.

A user joins a call the way current clients do: a call membership state
event, plus a delayed "leave" (empty content) scheduled on Synapse and handed
to the service. While LiveKit reports the participant connected, the service
keeps restarting the delayed event, so the membership outlives the original
delay; when LiveKit reports the participant gone, the service sends the leave
at once.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from typing import Any

import pytest

from tests.conftest import ServiceFactory
from tests.e2e.synapse import SynapseServer, SynapseUser
from tests.support import tls
from tests.support.fake_sfu import FakeSfu
from tests.support.service import ServiceProcess
from tests.support.webhooks import sign, webhook_body

from .test_synapse_tokens import livekit_name

MEMBER_EVENT = "org.matrix.msc3401.call.member"
DELAY_MS = 3000


def post(
    service: ServiceProcess, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=20)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


@pytest.fixture
def service(
    start_service: ServiceFactory, fake_sfu: FakeSfu, synapse: SynapseServer, test_ca: tls.TestCA
) -> ServiceProcess:
    return start_service(
        {
            "LIVEKIT_URL": fake_sfu.url,
            "LIVEKIT_KEY": fake_sfu.api_key,
            "LIVEKIT_SECRET": fake_sfu.api_secret,
            "LIVEKIT_FULL_ACCESS_HOMESERVERS": synapse.server_name,
            "SSL_CERT_FILE": str(test_ca.cert_file),
            "LIVEKIT_CS_API_URL_OVERRIDES": f"{synapse.server_name}={synapse.client_url}",
        }
    )


class Call:
    """One user's call membership in one room, with a delayed leave scheduled."""

    def __init__(self, synapse: SynapseServer, user: SynapseUser) -> None:
        self.synapse = synapse
        self.user = user
        self.room_id = synapse.client.create_room(user)
        self.device_id = user.device_id
        self.member_id = str(uuid.uuid4())
        self.state_key = f"_{user.user_id}_{self.device_id}_m.call"
        synapse.client.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{self.room_id}/state/{MEMBER_EVENT}/{self.state_key}",
            {"application": "m.call", "device_id": self.device_id},
            access_token=user.access_token,
        )
        self.delay_id = synapse.client.schedule_delayed_state(
            user, self.room_id, MEMBER_EVENT, self.state_key, {}, DELAY_MS
        )
        self.alias = livekit_name(self.room_id, "m.call#ROOM")
        self.identity = livekit_name(user.user_id, self.device_id, self.member_id)

    def body(self, **extra: Any) -> bytes:
        return json.dumps(
            {
                "room_id": self.room_id,
                "slot_id": "m.call#ROOM",
                "openid_token": self.synapse.client.openid_token(self.user),
                "member": {
                    "id": self.member_id,
                    "claimed_user_id": self.user.user_id,
                    "claimed_device_id": self.device_id,
                },
                "delay_id": self.delay_id,
                "delay_timeout": DELAY_MS,
                **extra,
            }
        ).encode()

    def membership(self) -> dict[str, Any] | None:
        return self.synapse.client.state_event(
            self.user, self.room_id, MEMBER_EVENT, self.state_key
        )

    def wait_for_leave(self, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.membership() == {}:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"leave not sent within {timeout}s: {self.membership()}")


def webhook(
    service: ServiceProcess, sfu: FakeSfu, event: str, call: Call, reason: str | None = None
) -> None:
    body = webhook_body(event, call.alias, call.identity, reason)
    status, _ = post(
        service,
        "/sfu_webhook",
        body,
        {
            "Authorization": sign(body, sfu.api_key, sfu.api_secret),
            "Content-Type": "application/webhook+json",
        },
    )
    assert status == 200


def keeps_membership_then_leaves_on_disconnect(
    service: ServiceProcess, fake_sfu: FakeSfu, call: Call
) -> None:
    webhook(service, fake_sfu, "participant_joined", call)
    # Well past the original delay: without restarts Synapse would have sent the leave.
    time.sleep(DELAY_MS / 1000 * 2)
    assert call.membership() == {"application": "m.call", "device_id": call.device_id}

    webhook(service, fake_sfu, "participant_left", call, reason="CLIENT_INITIATED")
    assert call.wait_for_leave(timeout=3.0) < 3.0
    service.wait_for_log("leave event sent")


def test_delegation_through_get_token_restarts_then_sends(
    service: ServiceProcess, fake_sfu: FakeSfu, synapse: SynapseServer, synapse_user: SynapseUser
) -> None:
    call = Call(synapse, synapse_user)
    status, answer = post(service, "/get_token", call.body())
    assert status == 200, answer
    assert answer["jwt"]
    keeps_membership_then_leaves_on_disconnect(service, fake_sfu, call)


def test_delegation_through_delegate_endpoint_restarts_then_sends(
    service: ServiceProcess, fake_sfu: FakeSfu, synapse: SynapseServer, synapse_user: SynapseUser
) -> None:
    call = Call(synapse, synapse_user)
    status, answer = post(service, "/delegate_delayed_leave", call.body())
    assert status == 200, answer
    assert answer == {}
    keeps_membership_then_leaves_on_disconnect(service, fake_sfu, call)


def test_client_supplied_cs_api_url_is_ignored(
    service: ServiceProcess, fake_sfu: FakeSfu, synapse: SynapseServer, synapse_user: SynapseUser
) -> None:
    call = Call(synapse, synapse_user)
    body = call.body(delay_cs_api_url="http://127.0.0.1:9/nowhere")
    status, _ = post(service, "/delegate_delayed_leave", body)
    assert status == 200
    keeps_membership_then_leaves_on_disconnect(service, fake_sfu, call)
