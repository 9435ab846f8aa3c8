"""Black-box tests of CORS: Element Call is a web app, so browsers must be allowed to call the
token endpoints from any origin and to read error bodies too."""

from __future__ import annotations

from tests.blackbox.helpers import Reply, Stack, call, post_json, post_raw, sfu_get_body

ALLOWED_HEADERS = {"accept", "content-type", "content-length", "accept-encoding", "x-csrf-token"}
PREFLIGHT = {
    "Origin": "https://call.example.com",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


def _tokens(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def _assert_cors(reply: Reply) -> None:
    assert reply.header("Access-Control-Allow-Origin") == "*", dict(reply.headers)
    assert "post" in _tokens(reply.header("Access-Control-Allow-Methods"))
    assert _tokens(reply.header("Access-Control-Allow-Headers")) >= ALLOWED_HEADERS


def test_preflight_on_token_endpoints_allows_any_origin(stack: Stack) -> None:
    service = stack.start()
    for path in ("/sfu/get", "/get_token", "/livekit/jwt/sfu/get"):
        reply = call(service, "OPTIONS", path, headers=PREFLIGHT)
        assert reply.status == 200, (path, reply.status)
        _assert_cors(reply)
    assert stack.homeserver.requests == []


def test_successful_token_response_carries_cors_headers(stack: Stack) -> None:
    service = stack.start()
    _, token = stack.login("alice")
    reply = post_json(service, "/sfu/get", sfu_get_body(token, stack.homeserver.server_name))
    assert reply.status == 200, reply.body
    _assert_cors(reply)


def test_error_responses_carry_cors_headers(stack: Stack) -> None:
    service = stack.start()
    server = stack.homeserver.server_name
    replies = {
        "400 /sfu/get": post_raw(service, "/sfu/get", b"{not json"),
        "400 /get_token": post_raw(service, "/get_token", b"[]"),
        "401 /sfu/get": post_json(service, "/sfu/get", sfu_get_body("unknown", server)),
    }
    for label, reply in replies.items():
        assert str(reply.status) == label.split()[0], (label, reply.status)
        _assert_cors(reply)
