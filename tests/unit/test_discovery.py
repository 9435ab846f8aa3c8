"""Server discovery: every resolution step, the names carried, caching and shared lookups."""

from __future__ import annotations

import asyncio

import pytest

from matrixrtc_auth.matrix.discovery import (
    Destination,
    ServerDiscovery,
    SrvAnswer,
    SrvRecord,
    WellKnownAnswer,
    pick_srv,
)
from matrixrtc_auth.matrix.servername import parse_server_name


class FakeWellKnown:
    def __init__(
        self, answers: dict[str, WellKnownAnswer] | None = None, delay: float = 0.0
    ) -> None:
        self.answers = answers or {}
        self.delay = delay
        self.fetches: list[str] = []

    async def fetch(self, hostname: str) -> WellKnownAnswer:
        self.fetches.append(hostname)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answers.get(hostname, WellKnownAnswer(None, 3600.0))


class FakeSrv:
    def __init__(self, records: dict[str, list[SrvRecord]] | None = None) -> None:
        self.records = records or {}
        self.lookups: list[str] = []

    async def lookup(self, name: str) -> SrvAnswer:
        self.lookups.append(name)
        return SrvAnswer(self.records.get(name, []), 600.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def discovery(
    well_known: FakeWellKnown | None = None, srv: FakeSrv | None = None, clock: Clock | None = None
) -> ServerDiscovery:
    return ServerDiscovery(well_known or FakeWellKnown(), srv or FakeSrv(), clock=clock or Clock())


async def resolve(d: ServerDiscovery, name: str) -> Destination:
    return await d.resolve(parse_server_name(name))


async def test_ip_literal_uses_default_port_and_needs_no_lookup() -> None:
    wk, srv = FakeWellKnown(), FakeSrv()
    assert await resolve(discovery(wk, srv), "1.2.3.4") == Destination(
        "1.2.3.4", 8448, "1.2.3.4", "1.2.3.4"
    )
    assert await resolve(discovery(wk, srv), "[::1]:8000") == Destination(
        "::1", 8000, "[::1]:8000", "::1"
    )
    assert wk.fetches == [] and srv.lookups == []


async def test_explicit_port_connects_there_with_full_host_header() -> None:
    wk = FakeWellKnown()
    dest = await resolve(discovery(wk), "example.com:8009")
    assert dest == Destination("example.com", 8009, "example.com:8009", "example.com")
    assert dest.url("/x") == "https://example.com:8009/x"
    assert wk.fetches == []


async def test_well_known_delegation_with_port() -> None:
    wk = FakeWellKnown({"example.com": WellKnownAnswer("matrix.example.net:443", 3600)})
    dest = await resolve(discovery(wk), "example.com")
    assert dest == Destination(
        "matrix.example.net", 443, "matrix.example.net:443", "matrix.example.net"
    )


async def test_well_known_delegation_to_ip_literal() -> None:
    wk = FakeWellKnown({"example.com": WellKnownAnswer("[2001:db8::5]", 3600)})
    assert await resolve(discovery(wk), "example.com") == Destination(
        "2001:db8::5", 8448, "[2001:db8::5]", "2001:db8::5"
    )


async def test_well_known_delegation_then_srv_keeps_delegated_name_for_host_and_tls() -> None:
    wk = FakeWellKnown({"example.com": WellKnownAnswer("matrix.example.net", 3600)})
    srv = FakeSrv(
        {"_matrix-fed._tcp.matrix.example.net": [SrvRecord(10, 0, 8443, "fed1.example.net.")]}
    )
    dest = await resolve(discovery(wk, srv), "example.com")
    assert dest == Destination(
        "fed1.example.net", 8443, "matrix.example.net", "matrix.example.net"
    )


async def test_well_known_delegation_without_srv_falls_back_to_8448() -> None:
    wk = FakeWellKnown({"example.com": WellKnownAnswer("matrix.example.net", 3600)})
    srv = FakeSrv()
    dest = await resolve(discovery(wk, srv), "example.com")
    assert dest == Destination(
        "matrix.example.net", 8448, "matrix.example.net", "matrix.example.net"
    )
    assert srv.lookups == [
        "_matrix-fed._tcp.matrix.example.net",
        "_matrix._tcp.matrix.example.net",
    ]


async def test_no_well_known_then_srv_on_the_server_name() -> None:
    srv = FakeSrv({"_matrix-fed._tcp.example.com": [SrvRecord(0, 0, 443, "hs.example.com.")]})
    assert await resolve(discovery(srv=srv), "example.com") == Destination(
        "hs.example.com", 443, "example.com", "example.com"
    )


async def test_deprecated_srv_name_is_used_when_the_new_one_is_absent() -> None:
    srv = FakeSrv({"_matrix._tcp.example.com": [SrvRecord(0, 0, 8500, "old.example.com")]})
    assert await resolve(discovery(srv=srv), "example.com") == Destination(
        "old.example.com", 8500, "example.com", "example.com"
    )


async def test_nothing_found_means_hostname_port_8448() -> None:
    assert await resolve(discovery(), "example.com") == Destination(
        "example.com", 8448, "example.com", "example.com"
    )


async def test_invalid_delegation_is_ignored() -> None:
    wk = FakeWellKnown({"example.com": WellKnownAnswer("evil.com/path", 3600)})
    assert await resolve(discovery(wk), "example.com") == Destination(
        "example.com", 8448, "example.com", "example.com"
    )


async def test_results_are_cached_until_the_ttl_passes() -> None:
    clock = Clock()
    wk = FakeWellKnown({"example.com": WellKnownAnswer("hs.example.com:443", 7200)})
    d = discovery(wk, clock=clock)
    for _ in range(5):
        await resolve(d, "example.com")
    assert wk.fetches == ["example.com"]
    clock.now += 7199
    await resolve(d, "EXAMPLE.com")
    assert len(wk.fetches) == 1
    clock.now += 2
    await resolve(d, "example.com")
    assert len(wk.fetches) == 2


async def test_concurrent_lookups_share_one_fetch() -> None:
    wk = FakeWellKnown({"example.com": WellKnownAnswer("hs.example.com:443", 3600)}, delay=0.05)
    d = discovery(wk)
    results = await asyncio.gather(*(resolve(d, "example.com") for _ in range(50)))
    assert len(set(results)) == 1
    assert wk.fetches == ["example.com"]


def test_srv_choice_prefers_lowest_priority_and_skips_dot_targets() -> None:
    records = [
        SrvRecord(20, 100, 1, "late.example."),
        SrvRecord(10, 0, 2, "."),
        SrvRecord(10, 5, 3, "early.example."),
    ]
    for _ in range(20):
        chosen = pick_srv(records)
        assert chosen is not None and chosen.target == "early.example."
    assert pick_srv([SrvRecord(0, 0, 0, ".")]) is None


@pytest.mark.parametrize("seed", range(5))
def test_srv_weights_are_respected(seed: int) -> None:
    import random

    random.seed(seed)
    records = [SrvRecord(0, 0, 1, "never.example."), SrvRecord(0, 10, 2, "always.example.")]
    chosen = pick_srv(records)
    assert chosen is not None and chosen.target == "always.example."


async def test_well_known_is_kept_for_its_own_ttl_while_srv_answers_come_and_go() -> None:
    clock = Clock()
    wk = FakeWellKnown({"example.com": WellKnownAnswer("matrix.example.net", 24 * 3600.0)})
    srv = FakeSrv()
    d = discovery(wk, srv, clock=clock)
    for _ in range(12):  # two hours, past the five minutes "no SRV record" is kept
        assert (await resolve(d, "example.com")).host == "matrix.example.net"
        clock.now += 600
    assert wk.fetches == ["example.com"]
    assert len(srv.lookups) > 2
