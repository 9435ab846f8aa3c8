"""Black-box tests of the SSRF guard (``LIVEKIT_IS_PUBLIC_FACING``, PROTOCOL.md section 7.1).

A public-facing service calls whichever homeserver a client names, so with the
guard on it must not reach the operator's own network: here the fake
homeserver on loopback, named by IP literal (``127.0.0.1:<port>``) and by
hostname (``localhost:<port>``). The client gets 401 ``M_UNAUTHORIZED``, the
homeserver sees nothing, and the log says the SSRF guard refused it. With the
guard off the very same homeserver works. Only loopback is ever contacted; the
address classes themselves are covered by the unit tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.blackbox.helpers import (
    Reply,
    Stack,
    get_token_body,
    is_warning,
    post_json,
    sfu_get_body,
    wait_for_line,
)
from tests.support.fake_homeserver import FakeHomeserver
from tests.support.service import ServiceProcess
from tests.support.tls import TestCA


@pytest.fixture
def localhost_homeserver(test_ca: TestCA) -> Iterator[FakeHomeserver]:
    """A fake homeserver named ``localhost:<port>`` (a hostname, resolved via /etc/hosts)."""
    context = test_ca.server_context("localhost", "127.0.0.1")
    with FakeHomeserver(context, hostname="localhost") as homeserver:
        yield homeserver


def _ask_both_endpoints(service: ServiceProcess, homeserver: FakeHomeserver) -> list[Reply]:
    server = homeserver.server_name
    user_id = f"@alice:{server}"
    homeserver.add_token("openid-alice-ssrf", user_id)
    return [
        post_json(service, "/sfu/get", sfu_get_body("openid-alice-ssrf", server)),
        post_json(service, "/get_token", get_token_body("openid-alice-ssrf", server, user_id)),
    ]


def _assert_refused_unreached(
    service: ServiceProcess, homeserver: FakeHomeserver, replies: list[Reply]
) -> None:
    for reply in replies:
        assert reply.status == 401, reply.body
        assert reply.errcode() == "M_UNAUTHORIZED", reply.body
    assert homeserver.requests == [], homeserver.requests
    line = wait_for_line(service, lambda line: is_warning(line) and "SSRF" in line)
    assert homeserver.server_name in line, line


def test_public_facing_refuses_loopback_ip_literal_without_contacting_it(stack: Stack) -> None:
    service = stack.start(LIVEKIT_IS_PUBLIC_FACING="true")
    _assert_refused_unreached(
        service, stack.homeserver, _ask_both_endpoints(service, stack.homeserver)
    )
    assert stack.sfu.calls() == []


def test_public_facing_refuses_hostname_resolving_to_loopback_without_contacting_it(
    stack: Stack, localhost_homeserver: FakeHomeserver
) -> None:
    service = stack.start(
        LIVEKIT_IS_PUBLIC_FACING="true",
        LIVEKIT_FULL_ACCESS_HOMESERVERS=localhost_homeserver.server_name,
    )
    replies = _ask_both_endpoints(service, localhost_homeserver)
    _assert_refused_unreached(service, localhost_homeserver, replies)
    assert stack.sfu.calls() == []


def test_guard_off_lets_loopback_ip_literal_homeserver_vouch(stack: Stack) -> None:
    service = stack.start(LIVEKIT_IS_PUBLIC_FACING="false")
    for reply in _ask_both_endpoints(service, stack.homeserver):
        assert reply.status == 200, reply.body
    assert len(stack.homeserver.userinfo_requests()) == 2


def test_guard_off_lets_localhost_hostname_homeserver_vouch(
    stack: Stack, localhost_homeserver: FakeHomeserver
) -> None:
    service = stack.start(LIVEKIT_FULL_ACCESS_HOMESERVERS=localhost_homeserver.server_name)
    for reply in _ask_both_endpoints(service, localhost_homeserver):
        assert reply.status == 200, reply.body
    assert len(localhost_homeserver.userinfo_requests()) == 2
