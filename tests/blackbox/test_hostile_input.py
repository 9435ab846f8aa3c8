"""Black-box tests of hostile input (PROTOCOL.md sections 2.1 and 10).

A property test throws arbitrary bodies at every token endpoint: JSON of any
shape (nested objects and arrays, wrong types, huge numbers, long and odd
strings with control characters, NUL and lone surrogates), request-shaped JSON
with such values in the known fields, invalid UTF-8 and random bytes. Whatever
arrives, the service answers below 500 with a Matrix error body and keeps
serving. The other tests check the protocol limits: body and header sizes, and
clients that send slowly or not at all are cut off after a few seconds without
holding up anyone else.

One service process serves the whole module. It allows only the fake
homeserver (``LIVEKIT_ALLOWED_HOMESERVERS``), so no generated server name can
make it look anything up or contact anything but loopback.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.blackbox.helpers import Reply, call, post_json, post_raw, sfu_get_body
from tests.support.fake_homeserver import FakeHomeserver
from tests.support.fake_sfu import FakeSfu
from tests.support.service import ServiceProcess
from tests.support.tls import TestCA

TOKEN_ENDPOINTS = ("/sfu/get", "/get_token", "/livekit/jwt/sfu/get")
# Stands for the fake homeserver's name, known only once it runs.
HOMESERVER = "<<homeserver>>"
KEEPALIVE_SECONDS = 5.0


@dataclass
class Hostile:
    service: ServiceProcess
    homeserver: FakeHomeserver
    sfu: FakeSfu


@pytest.fixture(scope="module")
def hostile(test_ca: TestCA) -> Iterator[Hostile]:
    context = test_ca.server_context("localhost", "127.0.0.1")
    with FakeSfu() as sfu, FakeHomeserver(context) as homeserver:
        service = ServiceProcess(
            {
                "LIVEKIT_URL": sfu.url,
                "LIVEKIT_KEY": sfu.api_key,
                "LIVEKIT_SECRET": sfu.api_secret,
                "LIVEKIT_ALLOWED_HOMESERVERS": homeserver.server_name,
                "LIVEKIT_FULL_ACCESS_HOMESERVERS": homeserver.server_name,
                "SSL_CERT_FILE": str(test_ca.cert_file),
            }
        )
        try:
            service.start()
            yield Hostile(service, homeserver, sfu)
        finally:
            service.stop()
            print(f"--- service on port {service.port} ---\n{service.logs}")


# -- what hostile clients send ------------------------------------------------------

_ODD_STRINGS = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "\u001b[31mred\u001b[0m",
        "line\nforged WARNING line",
        "\r\n\r\n",
        "\u2028\u2029",
        "\ud800",
        "\udfff\ud800",
        "\ufeff",
        "%00%0d%0a",
        "../../../etc/passwd",
        "https://127.0.0.1/?access_token=x#frag",
        "@alice:example.com",
        "!room:example.com",
        "example.com",
        "127.0.0.1:1",
        "[::1]:8448",
        "localhost",
        "a" * 255,
        "a" * 256,
        "b" * 1025,
        "é" * 300,
        HOMESERVER,
        f"{HOMESERVER}/path",
        f"user@{HOMESERVER}",
    ]
)
_CHARACTERS = st.one_of(
    st.characters(),
    st.characters(max_codepoint=0x1F),
    st.integers(0xD800, 0xDFFF).map(chr),
)
_STRINGS = st.one_of(_ODD_STRINGS, st.text(_CHARACTERS, max_size=300))
_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**700), max_value=10**700),
    st.floats(),
    st.sampled_from([0, -1, 2**63, -(2**63) - 1, 1e308, 5e-324]),
)
_LEAVES = st.one_of(st.none(), st.booleans(), _NUMBERS, _STRINGS)
_JSON = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(_STRINGS, children, max_size=5)
    ),
    max_leaves=25,
)
_OPENID = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {},
        optional={
            "access_token": _JSON,
            "token_type": _JSON,
            "matrix_server_name": st.one_of(st.just(HOMESERVER), _JSON),
            "expires_in": _JSON,
        },
    ),
)
_MEMBER = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {}, optional={"id": _JSON, "claimed_user_id": _JSON, "claimed_device_id": _JSON}
    ),
)
_REQUEST_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "room": _JSON,
        "room_id": _JSON,
        "slot_id": _JSON,
        "device_id": _JSON,
        "openid_token": _OPENID,
        "member": _MEMBER,
        "delay_id": _JSON,
        "delay_timeout": _JSON,
    },
)
# Valid server names the allow list refuses before any lookup.
_OTHER_SERVERS = st.one_of(
    st.sampled_from(["example.com", "EXAMPLE.COM:8448", "127.0.0.1:1", "[::1]:8448", "localhost"]),
    st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}(:[0-9]{1,5})?", fullmatch=True),
)


def _mostly(valid: Any, hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The valid value three times out of four, else something hostile."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), hostile)


_WELL_FORMED_OPENID = st.fixed_dictionaries(
    {
        "access_token": st.one_of(_STRINGS, st.text(_CHARACTERS, min_size=1, max_size=1024)),
        "matrix_server_name": st.one_of(
            st.just(HOMESERVER), _OTHER_SERVERS, _OTHER_SERVERS, _STRINGS
        ),
    },
    optional={"token_type": _JSON, "expires_in": _JSON},
)
_DEVICE_IDS = st.one_of(
    st.just("DEVICE"),
    st.from_regex(r"[A-Za-z0-9+/=_.-]{1,40}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9+/=_.-]{1,40}", fullmatch=True),
    _STRINGS,
)
_OPTIONAL_EXTRAS = {"delay_id": _JSON, "delay_timeout": _JSON, "unknown_field": _JSON}
# Mostly well-formed requests with hostile values: these get past parsing to the access
# check (403) or, for the fake homeserver's own name, to the homeserver (401).
_ALMOST_LEGACY = st.fixed_dictionaries(
    {
        "room": _mostly("!room:example.com", _STRINGS),
        "openid_token": _mostly(None, _OPENID).flatmap(
            lambda hostile: _WELL_FORMED_OPENID if hostile is None else st.just(hostile)
        ),
        "device_id": _DEVICE_IDS,
    },
    optional=_OPTIONAL_EXTRAS,
)
_ALMOST_CURRENT = st.fixed_dictionaries(
    {
        "room_id": _mostly("!room:example.com", _STRINGS),
        "slot_id": _mostly("m.call#ROOM", _STRINGS),
        "openid_token": _mostly(None, _OPENID).flatmap(
            lambda hostile: _WELL_FORMED_OPENID if hostile is None else st.just(hostile)
        ),
        "member": _mostly(None, _MEMBER).flatmap(
            lambda hostile: (
                st.fixed_dictionaries(
                    {
                        "id": _mostly("member-1", _STRINGS),
                        "claimed_user_id": _mostly("@alice:example.com", _STRINGS),
                        "claimed_device_id": _DEVICE_IDS,
                    }
                )
                if hostile is None
                else st.just(hostile)
            )
        ),
    },
    optional=_OPTIONAL_EXTRAS,
)


def _encodings(document: Any) -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        [
            json.dumps(document).encode("ascii"),
            # Lone surrogates as raw (invalid) UTF-8 instead of \u escapes.
            json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        ]
    )


def _nested(depth: int) -> bytes:
    return b'{"":' * depth + b"1" + b"}" * depth


_LEGACY_PATHS = st.sampled_from(("/sfu/get", "/livekit/jwt/sfu/get"))
_ANY_PATH = st.sampled_from(TOKEN_ENDPOINTS)
_ANY_BODY = st.one_of(
    st.one_of(_JSON, _REQUEST_SHAPED).flatmap(_encodings),
    _ALMOST_CURRENT.flatmap(_encodings),
    st.binary(max_size=4000),
    # Nesting deep enough to exhaust a recursive parser, within the 3 KiB limit.
    st.integers(1, 1536).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 600).map(_nested),
    st.integers(1, 3100).map(lambda n: b"9" * n),
)
# (endpoint, body): half of them nearly right for their endpoint, the rest anything.
_REQUESTS = st.one_of(
    st.tuples(_LEGACY_PATHS, _ALMOST_LEGACY.flatmap(_encodings)),
    st.tuples(st.just("/get_token"), _ALMOST_CURRENT.flatmap(_encodings)),
    st.tuples(_ANY_PATH, _ANY_BODY),
    st.tuples(_ANY_PATH, _ANY_BODY),
)


def _with_homeserver(body: bytes, server_name: str) -> bytes:
    return body.replace(HOMESERVER.encode("ascii"), server_name.encode("ascii"))


def _assert_matrix_error(reply: Reply) -> None:
    assert reply.status < 500, (reply.status, reply.body)
    assert reply.status >= 400, (reply.status, reply.body)
    document = reply.json()
    assert isinstance(document, dict), reply.body
    assert isinstance(document.get("errcode"), str), reply.body
    assert document["errcode"].startswith("M_"), reply.body


def test_arbitrary_bodies_get_matrix_errors_and_service_stays_healthy(hostile: Hostile) -> None:
    server_name = hostile.homeserver.server_name
    statuses: dict[int, int] = {}

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=_REQUESTS)
    def hostile_post(request: tuple[str, bytes]) -> None:
        path, body = request
        reply = post_raw(hostile.service, path, _with_homeserver(body, server_name))
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        _assert_matrix_error(reply)

    hostile_post()
    # Some bodies got as far as the homeserver (401), most were refused earlier.
    assert {400, 401, 403, 413} <= set(statuses), statuses
    assert call(hostile.service, "GET", "/healthz").status == 200
    logs = hostile.service.logs
    assert "Traceback" not in logs, logs
    assert "Logging error" not in logs, logs
    assert hostile.sfu.calls() == []


def test_deeply_nested_json_is_refused_as_not_json(hostile: Hostile) -> None:
    for body in (b"[" * 1100 + b"]" * 1100, b"[" * 1536 + b"]" * 1536, b'[{"":' * 500):
        reply = post_raw(hostile.service, "/sfu/get", body)
        assert reply.status == 400, reply.body
        assert reply.errcode() == "M_NOT_JSON", reply.body


# -- size limits --------------------------------------------------------------------


def test_oversize_body_is_refused_as_too_large_on_every_endpoint(hostile: Hostile) -> None:
    server = hostile.homeserver.server_name
    body = sfu_get_body("t", server, room="!" + "r" * 3100)
    asked_before = hostile.homeserver.userinfo_count
    for path in TOKEN_ENDPOINTS:
        reply = post_json(hostile.service, path, body)
        assert reply.status == 413, reply.body
        assert reply.errcode() == "M_TOO_LARGE", reply.body
    assert hostile.homeserver.userinfo_count == asked_before


def test_more_than_a_hundred_headers_are_refused_as_too_large(hostile: Hostile) -> None:
    headers = {f"X-Extra-{n}": "v" for n in range(101)}
    reply = call(hostile.service, "POST", "/sfu/get", b"{}", headers)
    assert 400 <= reply.status < 500, reply.body
    assert reply.status == 431, reply.body
    assert reply.errcode() == "M_TOO_LARGE", reply.body


def test_hundred_headers_are_accepted(hostile: Hostile) -> None:
    # http.client adds Host, Accept-Encoding and Content-Length itself.
    headers = {f"X-Extra-{n}": "v" for n in range(97)}
    reply = call(hostile.service, "POST", "/sfu/get", b"{}", headers)
    assert reply.status == 400, reply.body
    assert reply.errcode() == "M_BAD_JSON", reply.body


def test_headers_over_eight_kib_in_total_are_refused_as_too_large(hostile: Hostile) -> None:
    headers = {f"X-Extra-{n}": "v" * 1000 for n in range(9)}
    reply = call(hostile.service, "POST", "/sfu/get", b"{}", headers)
    assert reply.status == 431, reply.body
    assert reply.errcode() == "M_TOO_LARGE", reply.body


# -- slow and idle clients ----------------------------------------------------------


def _connect(service: ServiceProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", service.port), timeout=10)


def _closed_or_answered(sock: socket.socket, wait: float) -> bytes | None:
    """What the server sent within ``wait`` seconds: bytes, b"" if it closed, None if quiet."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return None
    try:
        return sock.recv(4096)
    except ConnectionError:
        return b""


@dataclass
class _Trickle:
    """Sends ``data`` one byte a second until the server answers or hangs up."""

    sock: socket.socket
    data: bytes
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    answer: bytes | None = None
    sent: int = 0

    def run(self) -> None:
        deadline = self.started + 15
        for byte in self.data:
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:
                self.answer = b""
                break
            self.sent += 1
            got = _closed_or_answered(self.sock, 1.0)
            if got is not None or time.monotonic() > deadline:
                self.answer = got
                break
        self.ended = time.monotonic()


def test_client_trickling_headers_is_cut_off_while_others_are_served(hostile: Hostile) -> None:
    service = hostile.service
    slow_headers = b"POST /sfu/get HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 30
    with _connect(service) as sock:
        trickle = _Trickle(sock, slow_headers)
        worker = threading.Thread(target=trickle.run, daemon=True)
        worker.start()
        slowest_other = 0.0
        served = 0
        while worker.is_alive() and time.monotonic() - trickle.started < 12:
            health = call(service, "GET", "/healthz", timeout=5)
            refused = post_raw(service, "/get_token", b"{}", timeout=5)
            assert health.status == 200
            assert refused.status == 400
            slowest_other = max(slowest_other, health.elapsed, refused.elapsed)
            served += 2
            time.sleep(0.2)
        worker.join(5)
    assert trickle.ended is not None, "the trickling client was never cut off"
    held = trickle.ended - trickle.started
    assert held < 8.5, f"trickling client held its connection for {held:.1f}s"
    assert trickle.answer is not None, "the trickling client was never cut off"
    assert trickle.sent < len(slow_headers)
    assert served >= 10
    assert slowest_other < 1.0, slowest_other


def test_client_dribbling_its_body_is_answered_timeout_or_cut_off(hostile: Hostile) -> None:
    head = b"POST /sfu/get HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with _connect(hostile.service) as sock:
        sock.sendall(head + b"Content-Length: 200\r\n\r\n")
        trickle = _Trickle(sock, b'{"room": "' + b"r" * 150)
        trickle.run()
    assert trickle.ended is not None
    held = trickle.ended - trickle.started
    assert held < 8.5, f"dribbling client held its connection for {held:.1f}s"
    assert trickle.answer is not None, "the dribbling client was never answered or cut off"
    if trickle.answer:
        status_line = trickle.answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 408"), trickle.answer
        assert b"errcode" in trickle.answer


def test_idle_keep_alive_connection_is_closed_after_a_few_seconds(hostile: Hostile) -> None:
    with _connect(hostile.service) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = _closed_or_answered(sock, 5)
        assert answer is not None and answer.startswith(b"HTTP/1.1 200"), answer
        answered = time.monotonic()
        closed = None
        while time.monotonic() - answered < 12:
            got = _closed_or_answered(sock, 12)
            if got == b"":
                closed = time.monotonic() - answered
                break
    assert closed is not None, "the idle connection was never closed"
    assert KEEPALIVE_SECONDS - 2 < closed < KEEPALIVE_SECONDS + 3, closed
