"""Checks of the Synapse fixture itself, with no service involved.

They prove what the service tests rely on: registration, OpenID tokens, and the
federation userinfo endpoint served over TLS with a certificate of the test CA.
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.synapse import SynapseServer, SynapseUser


def test_server_name_is_localhost_with_federation_port(synapse: SynapseServer) -> None:
    assert synapse.server_name == f"localhost:{synapse.federation_port}"
    assert synapse.running
    assert synapse.startup_seconds is not None


def test_synapse_is_configured_to_stay_on_loopback(synapse: SynapseServer) -> None:
    config = json.loads(synapse.config_path.read_text())

    assert [listener["bind_addresses"] for listener in config["listeners"]] == [
        ["127.0.0.1"],
        ["127.0.0.1"],
    ]
    assert config["trusted_key_servers"] == []
    assert config["report_stats"] is False
    assert config["federation_domain_whitelist"] == [synapse.server_name]
    assert config["url_preview_enabled"] is False


def test_userinfo_over_tls_federation_names_registered_user(
    synapse: SynapseServer, synapse_user: SynapseUser
) -> None:
    token = synapse.client.openid_token(synapse_user)
    assert token["matrix_server_name"] == synapse.server_name
    assert token["token_type"] == "Bearer"
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0

    status, body = synapse.client.openid_userinfo(token["access_token"])

    assert status == 200, body
    assert body == {"sub": synapse_user.user_id}
    assert synapse_user.user_id == f"@{synapse_user.localpart}:{synapse.server_name}"


def test_userinfo_refuses_unknown_token(synapse: SynapseServer) -> None:
    status, body = synapse.client.openid_userinfo("not-a-real-token")

    assert status == 401
    assert isinstance(body, dict) and body["errcode"] == "M_UNKNOWN_TOKEN"


def test_federation_certificate_is_not_trusted_without_test_ca(synapse: SynapseServer) -> None:
    url = f"{synapse.federation_url}/_matrix/federation/v1/version"
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen(url, timeout=5, context=ssl.create_default_context())
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


def test_rooms_can_be_created(synapse: SynapseServer, synapse_user: SynapseUser) -> None:
    room_id = synapse.client.create_room(synapse_user, name="e2e room")

    assert room_id.startswith("!")
    members = synapse.client.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/joined_members",
        access_token=synapse_user.access_token,
    )
    assert synapse_user.user_id in members["joined"]


def test_delayed_events_can_be_restarted_and_sent(
    synapse: SynapseServer, synapse_user: SynapseUser
) -> None:
    client = synapse.client
    room_id = client.create_room(synapse_user)
    event_type, state_key = "org.matrix.msc3401.call.member", f"_{synapse_user.user_id}_dev"
    delay_id = client.schedule_delayed_state(
        synapse_user, room_id, event_type, state_key, {"left": True}, delay_ms=60_000
    )
    assert client.state_event(synapse_user, room_id, event_type, state_key) is None

    assert client.delayed_event_action(delay_id, "restart") == (200, {})
    assert client.delayed_event_action(delay_id, "send") == (200, {})

    assert client.state_event(synapse_user, room_id, event_type, state_key) == {"left": True}
    status, body = client.delayed_event_action(delay_id, "send")
    assert status == 404
    assert isinstance(body, dict) and body["errcode"] == "M_NOT_FOUND"


def _inet_sockets(pid: int) -> list[tuple[str, str, str]]:
    """(protocol, local address, remote address) of each IP socket the process holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        table = Path(f"/proc/{pid}/net/{proto}")
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.append((proto, _address(fields[1]), _address(fields[2])))
    return found


def _address(hex_address: str) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        text = str(ipaddress.IPv4Address(raw[::-1]))
    else:
        # /proc writes IPv6 addresses as four host-order 32-bit words.
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        text = str(ipaddress.IPv6Address(words))
    return f"{text}:{int(port, 16)}"


def test_synapse_sockets_are_all_on_loopback(
    synapse: SynapseServer, synapse_user: SynapseUser
) -> None:
    # Exercise it a little first so that any outgoing connection would have been made.
    synapse.client.create_room(synapse_user)
    assert synapse.pid is not None

    sockets = _inet_sockets(synapse.pid)

    listening = {local for proto, local, remote in sockets if remote.startswith("0.0.0.0:")}
    assert f"127.0.0.1:{synapse.client_port}" in listening
    assert f"127.0.0.1:{synapse.federation_port}" in listening
    for proto, local, remote in sockets:
        for address in (local, remote):
            host = ipaddress.ip_address(address.rsplit(":", 1)[0])
            assert host.is_loopback or host.is_unspecified, (proto, local, remote)
        assert not local.startswith("0.0.0.0:"), (proto, local, remote)
