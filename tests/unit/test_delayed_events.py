"""Classifying the homeserver's answers to delayed-event calls (PROTOCOL.md 8.2).

200/204 are done, 404 means the event is gone (sent or cancelled), everything
else is retried; a 429 carries the wait asked for, from a ``Retry-After``
header (seconds or an HTTP date) or the body's ``retry_after_ms``.
"""

from __future__ import annotations

import email.utils
import json

import pytest

from matrixrtc_auth.delegation.delayed_events import (
    CallResult,
    Outcome,
    classify,
    parse_retry_after,
)

NOW = 1_750_000_000.0


def body(document: object) -> bytes:
    return json.dumps(document).encode()


# -- classify ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204])
def test_success_is_done(status: int) -> None:
    result = classify(status, None, b"{}")
    assert result.outcome is Outcome.DONE
    assert result.retry_after is None


def test_404_means_the_event_is_gone() -> None:
    result = classify(404, None, body({"errcode": "M_NOT_FOUND", "error": "not found"}))
    assert result == CallResult(Outcome.GONE, result.detail)
    assert result.retry_after is None
    assert "404" in result.detail


@pytest.mark.parametrize("status", [201, 301, 400, 401, 403, 405, 409, 500, 502, 503, 504])
def test_other_statuses_are_retried_without_a_given_wait(status: int) -> None:
    result = classify(status, "30", body({"retry_after_ms": 5000}))
    assert result.outcome is Outcome.RETRY
    # Only a 429 says how long to wait.
    assert result.retry_after is None
    assert str(status) in result.detail


def test_429_with_retry_after_seconds() -> None:
    result = classify(429, "3", body({"errcode": "M_LIMIT_EXCEEDED"}))
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == 3.0
    assert "429" in result.detail


def test_429_with_retry_after_ms_in_the_body() -> None:
    result = classify(429, None, body({"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}))
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == 1.5


def test_429_header_is_preferred_to_the_body() -> None:
    result = classify(429, "2", body({"retry_after_ms": 9000}))
    assert result.retry_after == 2.0


def test_429_with_garbage_header_falls_back_to_the_body() -> None:
    result = classify(429, "soon", body({"retry_after_ms": 250}))
    assert result.retry_after == 0.25


def test_429_without_any_hint_is_retried_with_the_backoff() -> None:
    result = classify(429, None, b"")
    assert result.outcome is Outcome.RETRY
    assert result.retry_after is None


@pytest.mark.parametrize(
    "raw",
    [
        body({"retry_after_ms": 2500}),
        body({"retry_after_ms": 2500.0}),
    ],
)
def test_retry_after_ms_numbers(raw: bytes) -> None:
    assert classify(429, None, raw).retry_after == 2.5


def test_retry_after_ms_zero() -> None:
    assert classify(429, None, body({"retry_after_ms": 0})).retry_after == 0.0


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        body([1, 2, 3]),
        body("retry_after_ms"),
        body(None),
        body({}),
        body({"retry_after_ms": None}),
        body({"retry_after_ms": "1500"}),
        body({"retry_after_ms": True}),
        body({"retry_after_ms": -100}),
        body({"retry_after_ms": [1500]}),
        body({"retry_after_ms": {"ms": 1500}}),
    ],
)
def test_unusable_retry_after_ms_is_ignored(raw: bytes) -> None:
    result = classify(429, None, raw)
    assert result.outcome is Outcome.RETRY
    assert result.retry_after is None


# -- parse_retry_after -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("1", 1.0), ("120", 120.0), (" 7 ", 7.0), ("007", 7.0)],
)
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_as_http_date_in_the_future() -> None:
    value = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(value, now=NOW) == pytest.approx(30.0, abs=1.0)


def test_retry_after_as_http_date_with_numeric_zone() -> None:
    value = email.utils.formatdate(NOW + 90, usegmt=False)  # "+0000" instead of "GMT"
    assert parse_retry_after(value, now=NOW) == pytest.approx(90.0, abs=1.0)


def test_retry_after_as_http_date_in_the_past_means_now() -> None:
    value = email.utils.formatdate(NOW - 3600, usegmt=True)
    assert parse_retry_after(value, now=NOW) == 0.0


def test_retry_after_fixed_http_date() -> None:
    # RFC 9110's example date, one minute after "now".
    value = "Sun, 06 Nov 1994 08:49:37 GMT"
    now = email.utils.parsedate_to_datetime(value).timestamp() - 60
    assert parse_retry_after(value, now=now) == pytest.approx(60.0)


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "1.5", "1e3", "0x10", "Someday, 99 Foo 20xx", "3 s"],
)
def test_garbage_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None
