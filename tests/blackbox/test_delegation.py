"""Black-box tests of delegated delayed leave events (MSC4140, PROTOCOL.md 2.2-2.5 and 8).

The service runs as a process next to a fake SFU (answering GetParticipant,
checking the ``roomAdmin`` grant), the fake homeserver (OpenID userinfo) and a
fake client-server API (``FakeClientApi``) that records every restart and
send of a delayed event and, like Synapse, sends a pending event by itself
once its delay runs out without a restart. LiveKit webhooks are signed the way
the SFU signs them. Delays are a few seconds so that the suite stays quick;
every wait polls with a deadline, and the only fixed waits are the quiet
periods a scenario is about ("nothing is sent during ...").
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import redis

from tests.blackbox.helpers import (
    Reply,
    Stack,
    call,
    get_token_body,
    is_warning,
    member_identity,
    post_json,
    room_alias,
    sfu_get_body,
    wait_for_line,
)
from tests.support.fake_client_api import (
    PENDING,
    SENT_BY_SERVICE,
    DelayedCall,
    FakeClientApi,
)
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401
from tests.support.service import ServiceProcess
from tests.support.webhooks import sign, webhook_body

ROOM_ID = "!delegation:example.com"
SLOT_ID = "m.call#ROOM"
# How late a prompt reaction (to a webhook, a 404, ...) may come on a busy machine.
PROMPT = 1.5


@pytest.fixture
def cs_api() -> Iterator[FakeClientApi]:
    with FakeClientApi() as fake:
        yield fake


# -- the call members -------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One call member of the fake homeserver, with a fresh OpenID token."""

    user_id: str
    token: str
    server_name: str
    device_id: str
    member_id: str
    room_id: str = ROOM_ID
    slot_id: str = SLOT_ID

    @property
    def alias(self) -> str:
        return room_alias(self.room_id, self.slot_id)

    @property
    def identity(self) -> str:
        return member_identity(self.user_id, self.device_id, self.member_id)

    def body(self, delay_id: str | None = None, delay_ms: int | None = None) -> dict[str, Any]:
        body = get_token_body(
            self.token,
            self.server_name,
            self.user_id,
            room_id=self.room_id,
            slot_id=self.slot_id,
            member_id=self.member_id,
            device_id=self.device_id,
        )
        if delay_id is not None:
            body["delay_id"] = delay_id
        if delay_ms is not None:
            body["delay_timeout"] = delay_ms
        return body


def new_member(stack: Stack, localpart: str = "alice", device_id: str = "DEVICEA") -> Member:
    user_id, token = stack.login(localpart)
    return Member(
        user_id=user_id,
        token=token,
        server_name=stack.homeserver.server_name,
        device_id=device_id,
        member_id=f"member-{secrets.token_hex(6)}",
    )


def new_delay_id() -> str:
    # Synapse's delay IDs look like this; the "+" checks that the service escapes the path.
    return f"syd_{secrets.token_urlsafe(12)}+x"


# -- the service and what it is told ------------------------------------------------


def start(stack: Stack, cs_api: FakeClientApi, **env: str | None) -> ServiceProcess:
    """The service, finding the client-server API of the fake homeserver at ``cs_api``."""
    overrides: dict[str, str | None] = {
        "LIVEKIT_CS_API_URL_OVERRIDES": f"{stack.homeserver.server_name}={cs_api.url}"
    }
    overrides.update(env)
    return stack.start(**overrides)


def delegate(
    service: ServiceProcess,
    cs_api: FakeClientApi,
    member: Member,
    delay: float,
    *,
    times_out: bool = True,
    delay_id: str | None = None,
) -> str:
    """Schedules a delayed event on the fake and delegates it; returns its delay ID."""
    delay_id = delay_id or new_delay_id()
    cs_api.add_event(delay_id, delay, times_out=times_out)
    reply = post_json(service, "/delegate_delayed_leave", member.body(delay_id, int(delay * 1000)))
    assert reply.status == 200, (reply.status, reply.body)
    assert reply.json() == {}
    return delay_id


def process(service: ServiceProcess) -> subprocess.Popen[str]:
    assert service.proc is not None
    return service.proc


def post_webhook(
    service: ServiceProcess,
    body: bytes,
    authorization: str | None,
) -> Reply:
    headers = {"Content-Type": "application/webhook+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return call(service, "POST", "/sfu_webhook", body, headers)


def webhook(
    service: ServiceProcess,
    stack: Stack,
    event: str,
    member: Member,
    reason: str | None = None,
) -> None:
    """A webhook as the SFU sends it, signed with the API secret; it must be accepted."""
    body = webhook_body(event, member.alias, member.identity, reason)
    reply = post_webhook(service, body, sign(body, stack.sfu.api_key, stack.sfu.api_secret))
    assert reply.status == 200, (reply.status, reply.body)


def joined(service: ServiceProcess, stack: Stack, member: Member) -> None:
    webhook(service, stack, "participant_joined", member)


def left(service: ServiceProcess, stack: Stack, member: Member) -> None:
    webhook(service, stack, "participant_left", member, "CLIENT_INITIATED")


# -- waiting --------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def wait_for_call(
    cs_api: FakeClientApi,
    action: str,
    delay_id: str,
    timeout: float,
    *,
    count: int = 1,
) -> DelayedCall:
    """Waits for the ``count``-th call of ``action`` for ``delay_id``; returns that call."""
    wait_until(
        lambda: len(cs_api.calls(action, delay_id)) >= count,
        timeout,
        f"{action} #{count} of {delay_id} (calls so far: {cs_api.calls()})",
    )
    return cs_api.calls(action, delay_id)[count - 1]


def transition(service: ServiceProcess, member: Member, states: str, timeout: float = 5.0) -> str:
    """Waits for the log line of the job's transition ``states`` (``"waiting->aborted"``)."""
    return wait_for_line(
        service,
        lambda line: (
            "transition" in line
            and f"lk_identity={member.identity}" in line
            and f"state={states}" in line
        ),
        timeout,
    )


def connected(
    service: ServiceProcess, stack: Stack, cs_api: FakeClientApi, member: Member, delay_id: str
) -> DelayedCall:
    """Reports the member joined and waits for the first restart; returns it."""
    joined(service, stack, member)
    return wait_for_call(cs_api, "restart", delay_id, PROMPT)


# -- Redis ------------------------------------------------------------------------------


def stored_with(redis_url: str, delay_id: str) -> list[bytes]:
    """Keys of the Redis string values that mention ``delay_id`` (the stored jobs)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    try:
        found = []
        for key in client.scan_iter(count=500):
            if client.type(key) != b"string":
                continue
            value = client.get(key)
            if isinstance(value, bytes) and delay_id.encode() in value:
                found.append(key)
        return found
    finally:
        client.close()


# -- waiting for the first connection --------------------------------------------------


def test_never_connected_sends_after_the_wait(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay = 2.0
    started = time.time()
    # The fake never times the event out, so the send seen is the service's own.
    delay_id = delegate(service, cs_api, member, delay, times_out=False)
    answered = time.time()

    sent = wait_for_call(cs_api, "send", delay_id, delay + 3.0)
    # The wait is min(1 h, delay): not earlier, and not much later.
    assert sent.at >= started + delay, (sent.at - started, delay)
    assert sent.at <= answered + delay + 2.0, (sent.at - answered, delay)
    assert cs_api.calls("restart") == []
    assert cs_api.sent_by(delay_id) == SENT_BY_SERVICE
    transition(service, member, "waiting->disconnected")
    # It was looking for the participant meanwhile, with a token the SFU accepts.
    polls = stack.sfu.calls("GetParticipant")
    assert polls, "GetParticipant was never asked"
    assert {p.status for p in polls} == {404}, [p.status for p in polls]
    assert {p.claims["video"]["room"] for p in polls} == {member.alias}
    assert {p.request.identity for p in polls} == {member.identity}  # type: ignore[attr-defined]


def test_found_by_polling_get_participant_restarts(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    # Still waiting: nothing for the homeserver yet.
    wait_until(lambda: len(stack.sfu.calls("GetParticipant")) >= 1, PROMPT, "a first poll")
    assert cs_api.calls() == []

    # No webhook at all: the participant simply shows up in the SFU.
    stack.sfu.add_participant(member.alias, member.identity)
    found_at = time.time()
    restart = wait_for_call(cs_api, "restart", delay_id, 3.0)
    # The backoff starts at 1 s and grows by 1.5 (with jitter): the next poll is soon.
    assert restart.at - found_at <= 1.5 + PROMPT
    assert restart.status == 200
    transition(service, member, "waiting->connected")
    assert cs_api.calls("send") == []
    assert cs_api.sent_by(delay_id) == PENDING
    assert any(c.status == 200 for c in stack.sfu.calls("GetParticipant"))


def test_connection_aborted_before_connecting_sends_nothing(
    stack: Stack, cs_api: FakeClientApi
) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay = 2.0
    delay_id = delegate(service, cs_api, member, delay, times_out=False)
    webhook(service, stack, "participant_connection_aborted", member, "JOIN_FAILURE")
    transition(service, member, "waiting->aborted")
    # Past the wait (min(1 h, delay)): a job still waiting would have sent by now.
    time.sleep(delay + 1.0)
    assert cs_api.calls() == []
    assert cs_api.sent_by(delay_id) == PENDING


# -- disconnecting after connecting ----------------------------------------------------


def test_left_after_connecting_sends_promptly(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)

    before = time.time()
    left(service, stack, member)
    sent = wait_for_call(cs_api, "send", delay_id, PROMPT)
    assert sent.at - before <= PROMPT
    assert sent.status == 200
    assert cs_api.sent_by(delay_id) == SENT_BY_SERVICE
    transition(service, member, "connected->disconnected")
    transition(service, member, "disconnected->done")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("participant_connection_aborted", "CONNECTION_TIMEOUT"),
        ("participant_left", "CONNECTION_TIMEOUT"),
        ("participant_left", None),
    ],
)
def test_aborted_after_connecting_sends(
    stack: Stack, cs_api: FakeClientApi, event: str, reason: str | None
) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)

    before = time.time()
    webhook(service, stack, event, member, reason)
    sent = wait_for_call(cs_api, "send", delay_id, PROMPT)
    assert sent.at - before <= PROMPT
    assert cs_api.sent_by(delay_id) == SENT_BY_SERVICE


def test_missed_webhook_is_caught_by_the_sanity_check(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api, LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS="1")
    member = new_member(stack)
    stack.sfu.add_participant(member.alias, member.identity)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)
    # While the participant is there, the sanity check leaves the job alone.
    time.sleep(1.5)
    assert cs_api.calls("send") == []

    # Gone from the SFU, and the "left" webhook never arrives.
    stack.sfu.remove_participant(member.alias, member.identity)
    gone_at = time.time()
    sent = wait_for_call(cs_api, "send", delay_id, 1.0 + 2 * PROMPT)
    assert sent.at - gone_at <= 1.0 + 2 * PROMPT
    assert cs_api.sent_by(delay_id) == SENT_BY_SERVICE


def test_sanity_check_ignores_sfu_errors(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api, LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS="1")
    member = new_member(stack)
    stack.sfu.add_participant(member.alias, member.identity)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)
    # The SFU cannot say for a while: that is not "gone" (only NotFound is).
    stack.sfu.fail_next("GetParticipant", 503, count=1000)
    checks = len(stack.sfu.calls("GetParticipant"))
    wait_until(
        lambda: len(stack.sfu.calls("GetParticipant")) >= checks + 2,
        2.0 + 2 * PROMPT,
        "two failing sanity checks",
    )
    assert {c.status for c in stack.sfu.calls("GetParticipant")[checks:]} == {503}
    assert cs_api.calls("send") == []
    stack.sfu.fail_next("GetParticipant", 503, count=0)
    left(service, stack, member)
    wait_for_call(cs_api, "send", delay_id, PROMPT)


# -- restarting ---------------------------------------------------------------------------


def test_restarts_repeat_over_several_delay_periods(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay = 2.0
    delay_id = delegate(service, cs_api, member, delay)
    first = connected(service, stack, cs_api, member, delay_id)

    # Three whole delay periods: without restarts the fake would have sent it long ago.
    wait_for_call(cs_api, "restart", delay_id, 3 * delay + PROMPT, count=4)
    time.sleep(max(0.0, first.at + 3 * delay + 0.2 - time.time()))
    restarts = cs_api.calls("restart", delay_id)
    assert cs_api.sent_by(delay_id) == PENDING, restarts
    assert cs_api.calls("send") == []
    gaps = [b.at - a.at for a, b in itertools.pairwise(restarts)]
    # The cadence is 80 % of the delay: well inside it, and not a busy loop.
    for gap in gaps:
        assert 0.6 * delay <= gap <= 0.95 * delay, gaps
    assert all(r.status == 200 for r in restarts)


def test_restart_answering_404_stops_the_job(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay = 2.0
    delay_id = delegate(service, cs_api, member, delay)
    # The client cancelled the event (or the homeserver sent it): restart says 404.
    cs_api.fail_next("restart", 404)
    first = connected(service, stack, cs_api, member, delay_id)
    assert first.status == 404
    transition(service, member, "connected->aborted")

    # A late "left" finds no job, and no restart is tried again.
    left(service, stack, member)
    time.sleep(0.8 * delay + 1.0)
    assert cs_api.calls("send") == []
    assert len(cs_api.calls("restart")) == 1


def test_send_answering_404_counts_as_done(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)
    cs_api.fail_next("send", 404)
    left(service, stack, member)

    sent = wait_for_call(cs_api, "send", delay_id, PROMPT)
    assert sent.status == 404
    transition(service, member, "disconnected->done")
    wait_for_line(
        service,
        lambda line: f"lk_identity={member.identity}" in line and "already sent" in line,
    )
    # Done means done: no retry of the send.
    time.sleep(1.5)
    assert len(cs_api.calls("send")) == 1


def test_send_failing_with_500_is_retried(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)
    cs_api.fail_next("send", 500, count=2)
    left(service, stack, member)

    third = wait_for_call(cs_api, "send", delay_id, 3.0, count=3)
    assert third.status == 200
    assert [c.status for c in cs_api.calls("send")] == [500, 500, 200]
    assert cs_api.sent_by(delay_id) == SENT_BY_SERVICE
    transition(service, member, "disconnected->done")


def test_restart_429_retry_after_header_is_respected(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    cs_api.fail_next("restart", 429, retry_after="2")
    limited = connected(service, stack, cs_api, member, delay_id)
    assert limited.status == 429

    retried = wait_for_call(cs_api, "restart", delay_id, 2.0 + PROMPT, count=2)
    assert retried.at - limited.at >= 2.0, retried.at - limited.at
    assert retried.status == 200
    assert cs_api.sent_by(delay_id) == PENDING


def test_send_429_retry_after_ms_body_is_respected(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)
    cs_api.fail_next("send", 429, retry_after_ms=1800)
    left(service, stack, member)

    limited = wait_for_call(cs_api, "send", delay_id, PROMPT)
    assert limited.status == 429
    retried = wait_for_call(cs_api, "send", delay_id, 1.8 + PROMPT, count=2)
    assert retried.at - limited.at >= 1.8, retried.at - limited.at
    assert retried.status == 200
    assert cs_api.sent_by(delay_id) == SENT_BY_SERVICE


def test_delay_id_is_sent_path_escaped(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    # Characters that would change the URL if they went into the path as they are.
    delay_id = "syd_a/b?c d#e%2Ff&g"
    delegate(service, cs_api, member, 4.0, delay_id=delay_id)
    connected(service, stack, cs_api, member, delay_id)
    left(service, stack, member)
    wait_for_call(cs_api, "send", delay_id, PROMPT)
    assert cs_api.other_requests == []


def test_restarts_failing_until_the_deadline_abort_the_job(
    stack: Stack, cs_api: FakeClientApi
) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay = 3.0
    delay_id = delegate(service, cs_api, member, delay)
    cs_api.fail_next("restart", 500, count=1000)
    joined(service, stack, member)
    # Retried with the backoff while the event's deadline allows, then given up.
    transition(service, member, "connected->aborted", timeout=delay + 2 * PROMPT)
    restarts = cs_api.calls("restart", delay_id)
    assert len(restarts) >= 2, restarts
    assert {r.status for r in restarts} == {500}
    time.sleep(PROMPT)
    assert len(cs_api.calls("restart", delay_id)) == len(restarts)
    assert cs_api.calls("send") == []


# -- several jobs -----------------------------------------------------------------------


def test_replacement_affects_only_the_newest_job(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay = 4.0
    # Connected all along: each job finds the participant by polling.
    stack.sfu.add_participant(member.alias, member.identity)
    old_id = delegate(service, cs_api, member, delay)
    wait_for_call(cs_api, "restart", old_id, 3.0)

    # Right after a restart: the old job's next one is 0.8 * delay away.
    new_id = delegate(service, cs_api, member, delay)
    replaced_at = time.time()
    wait_for_call(cs_api, "restart", new_id, 3.0)
    transition(service, member, "connected->replaced")

    # Past the old job's restart cadence: only the new job restarts.
    time.sleep(max(0.0, replaced_at + 0.8 * delay + 0.5 - time.time()))
    left(service, stack, member)
    wait_for_call(cs_api, "send", new_id, PROMPT)
    time.sleep(0.5)
    late_old = [c for c in cs_api.calls(delay_id=old_id) if c.at >= replaced_at]
    assert late_old == [], late_old
    assert cs_api.calls("send", old_id) == []
    assert len(cs_api.calls("restart", new_id)) >= 2
    assert cs_api.sent_by(new_id) == SENT_BY_SERVICE


def test_two_jobs_never_cross_talk(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    alice = new_member(stack, "alice", "ALICEDEV")
    bob = new_member(stack, "bob", "BOBDEV")
    delay = 2.0
    alice_id = delegate(service, cs_api, alice, delay)
    bob_id = delegate(service, cs_api, bob, delay)
    connected(service, stack, cs_api, alice, alice_id)
    connected(service, stack, cs_api, bob, bob_id)

    left(service, stack, alice)
    wait_for_call(cs_api, "send", alice_id, PROMPT)
    bob_restarts = len(cs_api.calls("restart", bob_id))
    # Bob's job goes on restarting, well past his delay, and is never sent.
    wait_for_call(cs_api, "restart", bob_id, 2 * delay + PROMPT, count=bob_restarts + 2)
    assert cs_api.calls("send", bob_id) == []
    assert cs_api.sent_by(bob_id) == PENDING
    assert len(cs_api.calls("send", alice_id)) == 1
    alice_restarts = cs_api.calls("restart", alice_id)
    alice_sent = cs_api.calls("send", alice_id)[0]
    assert all(r.at < alice_sent.at for r in alice_restarts)

    # And the other way round.
    left(service, stack, bob)
    wait_for_call(cs_api, "send", bob_id, PROMPT)
    assert len(cs_api.calls("send", alice_id)) == 1


# -- webhooks that are not from the SFU ------------------------------------------------


def _body_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _forged(kind: str, stack: Stack, member: Member) -> tuple[bytes, str | None]:
    """A "participant_left" webhook for ``member`` that the service must not believe."""
    body = webhook_body("participant_left", member.alias, member.identity, "CLIENT_INITIATED")
    key, secret = stack.sfu.api_key, stack.sfu.api_secret
    now = int(time.time())
    if kind == "wrong_secret":
        return body, sign(body, key, "not-the-secret-" + "x" * 32)
    if kind == "unknown_key":
        return body, sign(body, "otherkey", secret)
    if kind == "unsigned":
        return body, None
    if kind == "garbage_token":
        return body, "not-a-jwt"
    if kind == "expired":
        claims = {"iss": key, "nbf": now - 7200, "exp": now - 3600, "sha256": _body_hash(body)}
        return body, jwt.encode(claims, secret, algorithm="HS256")
    if kind == "no_body_hash":
        return body, jwt.encode({"iss": key, "nbf": now, "exp": now + 600}, secret, "HS256")
    assert kind == "altered_body"
    # Signed for a harmless event, delivered with another one.
    harmless = webhook_body("room_started", member.alias, member.identity)
    return body, sign(harmless, key, secret)


@pytest.mark.parametrize(
    "kind",
    [
        "wrong_secret",
        "unknown_key",
        "unsigned",
        "garbage_token",
        "expired",
        "no_body_hash",
        "altered_body",
    ],
)
def test_unverified_webhook_is_refused_and_changes_nothing(
    stack: Stack, cs_api: FakeClientApi, kind: str
) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)

    body, authorization = _forged(kind, stack, member)
    reply = post_webhook(service, body, authorization)
    assert reply.status == 401, (reply.status, reply.body)
    assert reply.errcode() == "M_UNAUTHORIZED"
    # Acting on it would send at once; a moment of quiet shows it was not.
    time.sleep(0.5)
    assert cs_api.calls("send") == []
    # The job is still connected: the genuine "left" is what sends the event.
    genuine_at = time.time()
    left(service, stack, member)
    sent = wait_for_call(cs_api, "send", delay_id, PROMPT)
    assert sent.at >= genuine_at
    assert len(cs_api.calls("send")) == 1
    wait_for_line(service, lambda line: is_warning(line) and "webhook" in line.lower())


def test_unverified_joined_webhook_does_not_connect(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    body = webhook_body("participant_joined", member.alias, member.identity)
    reply = post_webhook(service, body, sign(body, stack.sfu.api_key, "x" * 40))
    assert reply.status == 401
    time.sleep(PROMPT)
    assert cs_api.calls() == []
    assert cs_api.sent_by(delay_id) == PENDING


# -- refused delegations ---------------------------------------------------------------


def test_restricted_user_delegating_on_get_token_gets_400(
    stack: Stack, cs_api: FakeClientApi
) -> None:
    service = start(stack, cs_api, LIVEKIT_FULL_ACCESS_HOMESERVERS="other.example")
    member = new_member(stack)
    stack.sfu.add_room(member.alias)
    delay_id = new_delay_id()
    cs_api.add_event(delay_id, 2.0)
    reply = post_json(service, "/get_token", member.body(delay_id, 2000))
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.errcode() == "M_BAD_JSON"
    assert "jwt" not in reply.json()
    # Without delegation the same user is served (the room exists).
    assert post_json(service, "/get_token", member.body()).status == 200
    assert cs_api.calls() == []


def test_restricted_user_delegating_on_delegate_endpoint_gets_403(
    stack: Stack, cs_api: FakeClientApi
) -> None:
    service = start(stack, cs_api, LIVEKIT_FULL_ACCESS_HOMESERVERS="other.example")
    member = new_member(stack)
    stack.sfu.add_room(member.alias)
    delay_id = new_delay_id()
    cs_api.add_event(delay_id, 2.0)
    reply = post_json(service, "/delegate_delayed_leave", member.body(delay_id, 2000))
    assert reply.status == 403, (reply.status, reply.body)
    assert reply.errcode() == "M_FORBIDDEN"
    joined(service, stack, member)
    time.sleep(PROMPT)
    assert cs_api.calls() == []


@pytest.mark.parametrize("path", ["/delegate_delayed_leave", "/get_token"])
def test_delegation_without_a_client_server_api_is_refused(stack: Stack, path: str) -> None:
    # No override, and the fake homeserver publishes no .well-known/matrix/client.
    service = stack.start()
    member = new_member(stack)
    reply = post_json(service, path, member.body(new_delay_id(), 2000))
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.errcode() == "M_BAD_JSON"
    assert "jwt" not in reply.json()
    assert stack.sfu.room_names() == set()
    # The log names the homeserver whose client-server API is missing.
    server = stack.homeserver.server_name
    wait_for_line(service, lambda line: is_warning(line) and server in line)


@pytest.mark.parametrize("path", ["/delegate_delayed_leave", "/get_token", "/sfu/get"])
@pytest.mark.parametrize("field", ["delay_id", "delay_timeout"])
def test_one_delay_field_without_the_other_is_refused(
    stack: Stack, cs_api: FakeClientApi, path: str, field: str
) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    if path == "/sfu/get":
        body = sfu_get_body(member.token, member.server_name, room=ROOM_ID)
    else:
        body = member.body()
    body[field] = new_delay_id() if field == "delay_id" else 2000
    reply = post_json(service, path, body)
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.errcode() == "M_BAD_JSON"
    # Checked before any network call.
    assert stack.homeserver.userinfo_requests() == []
    assert stack.sfu.calls() == []


# -- persistence and shutdown ---------------------------------------------------------


def test_job_survives_a_service_restart(
    stack: Stack,
    cs_api: FakeClientApi,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    first = start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    member = new_member(stack)
    delay = 4.0
    # Starting a process on a busy machine takes a while: only the service sends it.
    delay_id = delegate(first, cs_api, member, delay, times_out=False)
    assert stored_with(redis_server.url, delay_id), "the job is stored before the 200"
    connected(first, stack, cs_api, member, delay_id)
    process(first).kill()
    first.wait_exit(5.0)
    assert cs_api.calls("send") == []

    second = start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    before = time.time()
    left(second, stack, member)
    sent = wait_for_call(cs_api, "send", delay_id, PROMPT)
    assert sent.at - before <= PROMPT
    assert cs_api.sent_by(delay_id) == SENT_BY_SERVICE
    # Done: the stored job is deleted.
    wait_until(lambda: not stored_with(redis_server.url, delay_id), PROMPT, "job deleted")


def test_restored_job_keeps_restarting(
    stack: Stack,
    cs_api: FakeClientApi,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    first = start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    member = new_member(stack)
    stack.sfu.add_participant(member.alias, member.identity)
    delay_id = delegate(first, cs_api, member, 4.0, times_out=False)
    wait_for_call(cs_api, "restart", delay_id, 3.0)
    process(first).kill()
    first.wait_exit(5.0)
    restarts = len(cs_api.calls("restart", delay_id))

    # The participant is still in the SFU: the new process finds it and takes over.
    start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    wait_for_call(cs_api, "restart", delay_id, 3.0, count=restarts + 1)
    assert cs_api.calls("send") == []


def test_replacement_leaves_only_the_newest_job_stored(
    stack: Stack,
    cs_api: FakeClientApi,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    service = start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    member = new_member(stack)
    old_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, old_id)
    new_id = delegate(service, cs_api, member, 4.0)
    transition(service, member, "connected->replaced")
    assert stored_with(redis_server.url, old_id) == []
    assert len(stored_with(redis_server.url, new_id)) == 1

    # The replaced job ending does not erase its successor; the successor's end does.
    joined(service, stack, member)
    wait_for_call(cs_api, "restart", new_id, PROMPT)
    assert len(stored_with(redis_server.url, new_id)) == 1
    left(service, stack, member)
    wait_for_call(cs_api, "send", new_id, PROMPT)
    wait_until(lambda: not stored_with(redis_server.url, new_id), PROMPT, "job deleted")
    assert cs_api.calls("send", old_id) == []


def test_expired_job_is_purged_on_restart(
    stack: Stack,
    cs_api: FakeClientApi,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    first = start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    member = new_member(stack)
    delay = 2.0
    delegated_at = time.time()
    delay_id = delegate(first, cs_api, member, delay, times_out=False)
    # Killed while still waiting for the participant, before its wait is over.
    process(first).kill()
    first.wait_exit(5.0)
    assert time.time() < delegated_at + delay, "too slow: the job may have sent already"
    assert stored_with(redis_server.url, delay_id)
    # Its deadline passes while no service runs.
    time.sleep(max(0.0, delegated_at + delay + 0.3 - time.time()))

    second = start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    # /healthz answers once the restore is over.
    assert stored_with(redis_server.url, delay_id) == []
    left(second, stack, member)
    time.sleep(PROMPT)
    assert cs_api.calls() == []
    assert cs_api.sent_by(delay_id) == PENDING


def test_sigterm_stops_jobs_without_sending(stack: Stack, cs_api: FakeClientApi) -> None:
    service = start(stack, cs_api)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)

    stopping = time.monotonic()
    process(service).send_signal(signal.SIGTERM)
    assert service.wait_exit(5.0) == 0
    assert time.monotonic() - stopping < 5.0
    assert cs_api.calls("send") == []
    assert cs_api.sent_by(delay_id) == PENDING


def test_sigterm_keeps_the_stored_job(
    stack: Stack,
    cs_api: FakeClientApi,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    service = start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    member = new_member(stack)
    delay_id = delegate(service, cs_api, member, 4.0)
    connected(service, stack, cs_api, member, delay_id)

    process(service).send_signal(signal.SIGTERM)
    assert service.wait_exit(5.0) == 0
    assert cs_api.calls("send") == []
    assert stored_with(redis_server.url, delay_id), "a stopped job stays stored"


def test_start_without_redis_warns_that_jobs_live_in_memory(
    stack: Stack, cs_api: FakeClientApi
) -> None:
    service = start(stack, cs_api)
    wait_for_line(
        service,
        lambda line: is_warning(line) and "LIVEKIT_REDIS_URL" in line and "memory" in line,
    )


def test_start_with_redis_does_not_warn_about_memory(
    stack: Stack,
    cs_api: FakeClientApi,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    service = start(stack, cs_api, LIVEKIT_REDIS_URL=redis_server.url)
    wait_for_line(service, lambda line: "listening on" in line)
    assert not any(is_warning(line) and "memory" in line for line in service.log_lines())
