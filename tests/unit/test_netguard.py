"""The SSRF guard: which addresses are public, and that the checked address is the one used."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from matrixrtc_auth.netguard import BlockedAddress, NetworkGuard, is_public


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:0001::",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.4.4", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_ip_literal_hosts_are_checked_and_names_left_to_the_resolver() -> None:
    guard = NetworkGuard(True)
    with pytest.raises(BlockedAddress):
        guard.check_host("127.0.0.1")
    with pytest.raises(BlockedAddress):
        guard.check_host("[::1]")
    guard.check_host("8.8.8.8")
    guard.check_host("example.com")
    NetworkGuard(False).check_host("127.0.0.1")


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next address of a script (a hostile DNS server)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def loopback_server():
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""
    accepted = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port, accepted
    server.close()
    await server.wait_closed()


async def test_guarded_resolver_refuses_a_private_answer(loopback_server) -> None:
    port, accepted = loopback_server
    guard = NetworkGuard(True)
    connector = aiohttp.TCPConnector(resolver=guard.resolver(ScriptedResolver("127.0.0.1")))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://homeserver.test:{port}/")
    assert isinstance(info.value.os_error, BlockedAddress)
    assert accepted == []


async def test_the_checked_answer_is_the_connected_one(loopback_server) -> None:
    # In this test 127.0.0.2 stands for a public address and 127.0.0.1 (where the
    # server listens) for the private one. The hostile resolver answers "public"
    # to the first lookup and "private" to every later one: a guard that checked
    # in one lookup and connected with another would reach the server.
    port, accepted = loopback_server
    guard = NetworkGuard(True, allow=lambda a: str(a) != "127.0.0.1")
    hostile = ScriptedResolver("127.0.0.2", "127.0.0.1")
    connector = aiohttp.TCPConnector(resolver=guard.resolver(hostile), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            # Connects to the checked 127.0.0.2, where nothing listens.
            await session.get(f"http://homeserver.test:{port}/")
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://homeserver.test:{port}/")
    assert isinstance(info.value.os_error, BlockedAddress)
    assert hostile.lookups == 2
    assert accepted == []


async def test_guard_off_connects_to_loopback(loopback_server) -> None:
    port, accepted = loopback_server
    connector = aiohttp.TCPConnector(
        resolver=NetworkGuard(False).resolver(ScriptedResolver("127.0.0.1"))
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get(f"http://homeserver.test:{port}/")
    assert accepted, "with the guard off the loopback server is reached"
