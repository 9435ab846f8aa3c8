"""Black-box tests of the Prometheus metrics: what ``/metrics`` counts, and where it is served.

The service runs as a process with ``LIVEKIT_METRICS_BIND`` naming a listener of
its own on loopback. A test reads ``/metrics`` before and after a few requests
and checks, with ``prometheus_client``'s own parser, that every counter moved by
exactly what the requests did: no more, no less, and under labels that carry
endpoints, statuses and outcomes only, never tokens or user IDs.
"""

from __future__ import annotations

import http.client
import os
import time
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.blackbox.helpers import Stack, call, get_token_body, post_json, post_raw
from tests.support.ports import free_port
from tests.support.service import ServiceProcess

# (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

REQUESTS = "matrixrtc_auth_requests_total"
VERIFICATIONS = "matrixrtc_auth_homeserver_verifications_total"
VERIFICATION_COUNT = "matrixrtc_auth_homeserver_verification_duration_seconds_count"
REQUEST_LATENCY_COUNT = "matrixrtc_auth_request_duration_seconds_count"
SFU_CALLS = "matrixrtc_auth_sfu_calls_total"
DISCOVERY = "matrixrtc_auth_discovery_cache_total"


def metrics_text(port: int, timeout: float = 5.0) -> str:
    """``/metrics`` from the metrics listener on ``port``; waits until it listens."""
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, (resp.status, body)
            assert resp.getheader("Content-Type", "").startswith("text/plain")
            return body.decode("utf-8")
        except ConnectionRefusedError:
            # The metrics listener opens just after the main one.
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
        finally:
            conn.close()


def parse(text: str) -> Samples:
    """Every sample of the exposition, parsed by ``prometheus_client``."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def moved(
    before: Samples, after: Samples, name: str, *label_names: str
) -> Counter[tuple[str, ...]]:
    """How much each series of ``name`` grew, keyed by the values of ``label_names``."""
    growth: Counter[tuple[str, ...]] = Counter()
    for (sample, labels), value in after.items():
        if sample != name:
            continue
        delta = value - before.get((sample, labels), 0.0)
        if delta:
            by_name = dict(labels)
            growth[tuple(by_name[label] for label in label_names)] += int(delta)
    return growth


def listening_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` listens on (its sockets, matched in ``/proc/net/tcp*``)."""
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text(encoding="ascii").splitlines()[1:]:
            columns = row.split()
            local, state, inode = columns[1], columns[3], columns[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def pid_of(service: ServiceProcess) -> int:
    assert service.proc is not None
    return service.proc.pid


def start_with_metrics(stack: Stack) -> tuple[ServiceProcess, int]:
    port = free_port()
    service = stack.start(LIVEKIT_METRICS_BIND=f"127.0.0.1:{port}")
    return service, port


def test_counters_move_by_exactly_the_requests_made(stack: Stack) -> None:
    service, port = start_with_metrics(stack)
    server = stack.homeserver.server_name
    before = parse(metrics_text(port))

    for name in ("alice", "bob"):
        user_id, token = stack.login(name)
        reply = post_json(service, "/get_token", get_token_body(token, server, user_id))
        assert reply.status == 200, reply.body
    unknown = get_token_body("unknown-openid-token", server, stack.user("carol"))
    assert post_json(service, "/get_token", unknown).status == 401
    assert post_raw(service, "/get_token", b"{not json").status == 400
    assert call(service, "GET", "/no/such/path").status == 404

    after = parse(metrics_text(port))
    assert moved(before, after, REQUESTS, "endpoint", "status") == {
        ("/get_token", "200"): 2,
        ("/get_token", "401"): 1,
        ("/get_token", "400"): 1,
        # The route, never the raw path, names the endpoint.
        ("unmatched", "404"): 1,
    }
    assert moved(before, after, REQUEST_LATENCY_COUNT, "endpoint") == {
        ("/get_token",): 4,
        ("unmatched",): 1,
    }
    assert moved(before, after, VERIFICATIONS, "outcome") == {("verified",): 2, ("refused",): 1}
    assert moved(before, after, VERIFICATION_COUNT) == {(): 3}
    assert moved(before, after, SFU_CALLS, "method", "outcome") == {("CreateRoom", "ok"): 2}
    assert [c.method for c in stack.sfu.calls()] == ["CreateRoom", "CreateRoom"]
    # The fake homeserver is named 127.0.0.1:<port>: an IP literal needs no discovery,
    # so the discovery cache is neither hit nor missed.
    assert moved(before, after, DISCOVERY, "result") == {}


def test_metrics_are_not_served_on_the_main_listener(stack: Stack) -> None:
    service, port = start_with_metrics(stack)
    assert "matrixrtc_auth_requests_total" in metrics_text(port)
    reply = call(service, "GET", "/metrics")
    assert reply.status == 404
    assert reply.errcode() == "M_UNRECOGNIZED"
    assert b"matrixrtc_auth" not in reply.body


def test_metrics_listener_is_the_only_extra_port_and_binds_loopback(stack: Stack) -> None:
    service, port = start_with_metrics(stack)
    metrics_text(port)
    assert listening_ports(pid_of(service)) == {service.port, port}
    service.wait_for_log(f"serving /metrics on 127.0.0.1:{port}")


def test_without_metrics_bind_nothing_listens_for_metrics(stack: Stack) -> None:
    service = stack.start()
    assert listening_ports(pid_of(service)) == {service.port}
    assert not any("/metrics" in line for line in service.log_lines()), service.logs


def test_metrics_text_carries_no_token_secret_jwt_or_user_id(stack: Stack) -> None:
    service, port = start_with_metrics(stack)
    server = stack.homeserver.server_name
    room_id = "!secretRoomId:example.com"
    user_id, token = stack.login("alice")
    reply = post_json(
        service, "/get_token", get_token_body(token, server, user_id, room_id=room_id)
    )
    assert reply.status == 200, reply.body
    issued_jwt = reply.json()["jwt"]
    refused_token = "unknown-openid-token-0123456789"
    refused = get_token_body(refused_token, server, stack.user("mallory"), room_id=room_id)
    assert post_json(service, "/get_token", refused).status == 401

    text = metrics_text(port)
    assert parse(text)[(REQUESTS, (("endpoint", "/get_token"), ("status", "200")))] == 1
    forbidden = {
        "LiveKit secret": stack.sfu.api_secret,
        "OpenID token": token,
        "refused OpenID token": refused_token,
        "issued JWT": issued_jwt,
        "JWT signature": issued_jwt.rsplit(".", 1)[1],
        "user ID": user_id,
        "refused user ID": stack.user("mallory"),
        "localpart": "alice",
        "room ID": room_id,
    }
    leaked = [what for what, value in forbidden.items() if value in text]
    assert not leaked, leaked
