"""Load benchmark: ``/get_token`` against the test fakes, everything on loopback.

Run with ``make bench`` (or ``.venv/bin/python -m bench.load --help``). It starts
the fake homeserver (HTTPS, a throwaway CA), the fake SFU and the service as a
separate process, drives ``/get_token`` with a bounded number of requests at a
fixed concurrency, and reports:

- tokens per second and latency percentiles as seen by the load generator;
- CPU time the service process spent per token, and the single-core capacity
  that implies (the load generator and the fakes share the other core, so the
  measured rate is a floor, the capacity a better picture of the service);
- new TCP connections the homeserver saw, and ``.well-known`` fetches, per
  1,000 tokens after warm-up (connection pooling and discovery caching at
  work: both should be about zero).

When it may bind port 443 on 127.0.0.1 (as root), the homeserver's server name
is ``localhost`` and discovery goes through a real ``.well-known`` fetch;
otherwise it is ``localhost:<port>`` and the well-known column says "n/a".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from tests.support.fake_homeserver import FakeHomeserver
from tests.support.fake_sfu import FakeSfu
from tests.support.service import ServiceProcess
from tests.support.threaded_server import ThreadedServer
from tests.support.tls import make_ca

USERS = 200
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Counters:
    connections: int
    well_known: int
    cpu_seconds: float


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid``, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class WellKnownServer(ThreadedServer):
    """Serves ``/.well-known/matrix/server`` on 127.0.0.1:443, counting fetches."""

    def __init__(self, ssl_context: ssl.SSLContext, delegated: str) -> None:
        self.fetches = 0
        app = web.Application()
        app.router.add_get("/.well-known/matrix/server", self._serve_well_known)
        self._delegated = delegated
        super().__init__(app, ssl_context=ssl_context, port=443)

    async def _serve_well_known(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response(
            {"m.server": self._delegated}, headers={"Cache-Control": "max-age=3600"}
        )


def body(server_name: str, index: int) -> bytes:
    user = index % USERS
    return json.dumps(
        {
            "room_id": f"!room{index % 10}:{server_name}",
            "slot_id": "m.call#ROOM",
            "openid_token": {
                "access_token": f"openid-token-{user}",
                "token_type": "Bearer",
                "matrix_server_name": server_name,
                "expires_in": 3600,
            },
            "member": {
                "id": f"member-{index}",
                "claimed_user_id": f"@user{user}:{server_name}",
                "claimed_device_id": f"DEVICE{user}",
            },
        }
    ).encode()


async def drive(url: str, server_name: str, count: int, concurrency: int) -> list[float]:
    """Sends ``count`` requests, ``concurrency`` at a time; returns latencies (s)."""
    latencies: list[float] = []
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal next_index
            while next_index < count:
                index = next_index
                next_index += 1
                started = time.perf_counter()
                async with session.post(url, data=body(server_name, index)) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"request {index} answered {resp.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=5000, help="measured requests")
    parser.add_argument("--warmup", type=int, default=500, help="requests before measuring")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if not 0 < args.tokens <= 100_000 or not 0 < args.concurrency <= 512:
        parser.error("keep --tokens within 1..100000 and --concurrency within 1..512")

    with tempfile.TemporaryDirectory() as tmp:
        ca = make_ca(Path(tmp))
        context = ca.server_context("localhost", "127.0.0.1")
        homeserver = FakeHomeserver(context, hostname="localhost").start()
        sfu = FakeSfu().start()
        well_known: WellKnownServer | None = None
        server_name = homeserver.server_name
        try:
            well_known = WellKnownServer(context, homeserver.server_name).start()
            server_name = "localhost"
        except (PermissionError, OSError):
            well_known = None
        for user in range(USERS):
            homeserver.add_token(f"openid-token-{user}", f"@user{user}:{server_name}")

        service = ServiceProcess(
            {
                "LIVEKIT_URL": sfu.url,
                "LIVEKIT_KEY": sfu.api_key,
                "LIVEKIT_SECRET": sfu.api_secret,
                "LIVEKIT_FULL_ACCESS_HOMESERVERS": server_name,
                "SSL_CERT_FILE": str(ca.cert_file),
            }
        ).start()
        try:
            assert service.proc is not None
            pid = service.proc.pid
            url = f"{service.base_url}/get_token"
            asyncio.run(drive(url, server_name, args.warmup, args.concurrency))

            before = Counters(
                homeserver.connections_opened,
                well_known.fetches if well_known else 0,
                process_cpu_seconds(pid),
            )
            started = time.perf_counter()
            latencies = asyncio.run(drive(url, server_name, args.tokens, args.concurrency))
            elapsed = time.perf_counter() - started
            after = Counters(
                homeserver.connections_opened,
                well_known.fetches if well_known else 0,
                process_cpu_seconds(pid),
            )
        finally:
            service.stop()
            sfu.stop()
            homeserver.stop()
            if well_known is not None:
                well_known.stop()

    per_thousand = 1000 / args.tokens
    cpu_per_token = (after.cpu_seconds - before.cpu_seconds) / args.tokens
    report = {
        "tokens": args.tokens,
        "concurrency": args.concurrency,
        "tokens_per_second": round(args.tokens / elapsed),
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p90": round(percentile(latencies, 0.90) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
            "max": round(max(latencies) * 1000, 2),
        },
        "service_cpu_ms_per_token": round(cpu_per_token * 1000, 3),
        "service_tokens_per_cpu_second": round(1 / cpu_per_token) if cpu_per_token else None,
        "new_homeserver_connections_per_1000_tokens": round(
            (after.connections - before.connections) * per_thousand, 2
        ),
        "well_known_fetches_per_1000_tokens": (
            round((after.well_known - before.well_known) * per_thousand, 2)
            if well_known
            else "n/a (port 443 not available)"
        ),
        "homeserver_connections_total": after.connections,
        "well_known_fetches_total": after.well_known if well_known else "n/a",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
