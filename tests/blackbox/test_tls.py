"""Black-box tests of TLS towards homeservers: untrusted certificates are refused unless the
operator explicitly turns verification off, with the exact value the contract names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.blackbox.helpers import (
    ServiceFactory,
    Stack,
    is_warning,
    post_json,
    sfu_get_body,
    wait_for_line,
)
from tests.support import tls
from tests.support.fake_homeserver import FakeHomeserver
from tests.support.fake_sfu import FakeSfu

SKIP_VERIFY = "LIVEKIT_INSECURE_SKIP_VERIFY_TLS"
SKIP_VERIFY_ON = "YES_I_KNOW_WHAT_I_AM_DOING"


@pytest.fixture(scope="session")
def untrusted_ca(tmp_path_factory: pytest.TempPathFactory) -> tls.TestCA:
    """A CA that the service is never told to trust."""
    return tls.make_ca(tmp_path_factory.mktemp("untrusted-ca"))


@pytest.fixture
def untrusted_homeserver(untrusted_ca: tls.TestCA) -> Iterator[FakeHomeserver]:
    """A homeserver whose certificate comes from a CA the service does not trust."""
    with FakeHomeserver(untrusted_ca.server_context("localhost", "127.0.0.1")) as homeserver:
        yield homeserver


@pytest.fixture
def untrusted_stack(
    fake_sfu: FakeSfu,
    untrusted_homeserver: FakeHomeserver,
    test_ca: tls.TestCA,
    start_service: ServiceFactory,
) -> Stack:
    """Like ``stack``, but with ``untrusted_homeserver``.

    The homeserver is set up before the service factory, so it is torn down after
    the services: a service still connected to it must not outlive it.
    """
    return Stack(fake_sfu, untrusted_homeserver, test_ca, start_service)


def test_untrusted_homeserver_certificate_is_refused(untrusted_stack: Stack) -> None:
    stack = untrusted_stack
    service = stack.start()
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 401, reply.body
    assert reply.errcode() == "M_UNAUTHORIZED"
    assert stack.homeserver.userinfo_requests() == []
    assert stack.sfu.calls() == []


def test_certificate_for_another_name_is_refused(
    fake_sfu: FakeSfu, test_ca: tls.TestCA, start_service: ServiceFactory
) -> None:
    # Trusted CA, but the certificate names only "localhost" while the server is 127.0.0.1.
    with FakeHomeserver(test_ca.server_context("localhost")) as homeserver:
        stack = Stack(fake_sfu, homeserver, test_ca, start_service)
        service = stack.start()
        _, token = stack.login("alice")
        reply = post_json(service, "/sfu/get", sfu_get_body(token, homeserver.server_name))
        assert reply.status == 401, reply.body
        assert homeserver.userinfo_requests() == []


def test_skip_verify_accepts_untrusted_homeserver_and_warns_at_start(
    untrusted_stack: Stack,
) -> None:
    stack = untrusted_stack
    service = stack.start(**{SKIP_VERIFY: SKIP_VERIFY_ON})
    wait_for_line(service, lambda line: is_warning(line) and SKIP_VERIFY in line)
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    assert len(stack.homeserver.userinfo_requests()) == 1


def test_skip_verify_set_to_true_stays_off(untrusted_stack: Stack) -> None:
    stack = untrusted_stack
    service = stack.start(**{SKIP_VERIFY: "true"})
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 401, reply.body
    assert stack.homeserver.userinfo_requests() == []


def test_localhost_server_name_is_verified_against_its_certificate(
    fake_sfu: FakeSfu, test_ca: tls.TestCA, start_service: ServiceFactory
) -> None:
    context = test_ca.server_context("localhost", "127.0.0.1")
    with FakeHomeserver(context, hostname="localhost") as homeserver:
        stack = Stack(fake_sfu, homeserver, test_ca, start_service)
        service = stack.start()
        _, token = stack.login("alice")
        reply = post_json(service, "/sfu/get", sfu_get_body(token, homeserver.server_name))
        assert reply.status == 200, reply.body
        asked = homeserver.userinfo_requests()
        assert [r.host for r in asked] == [homeserver.server_name]
