"""``matrixrtc-auth doctor``: checks a deployment end to end, one line per check.

It reads the same environment as the service and asks what the service
would ask, so every network target comes from the operator's configuration
(the SFU in ``LIVEKIT_URL``, the full-access homeservers, the focus URL their
``.well-known/matrix/client`` announces, Redis). Each failing check says how
to fix it. The exit status is 0 only when every check passes.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import aiohttp
import redis.asyncio as aioredis
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api
from livekit.protocol.room import ListRoomsRequest
from redis.exceptions import RedisError

from matrixrtc_auth.config import Config, ConfigError, mask_url_password
from matrixrtc_auth.matrix.discovery import ServerDiscovery
from matrixrtc_auth.matrix.federation import FederationClient, FederationError
from matrixrtc_auth.matrix.http import (
    REQUEST_FAILURES,
    describe_failure,
    json_object,
    read_capped,
)
from matrixrtc_auth.matrix.servername import parse_server_name
from matrixrtc_auth.matrix.srv import DnsSrvResolver
from matrixrtc_auth.matrix.wellknown import HttpWellKnownFetcher
from matrixrtc_auth.netguard import NetworkGuard
from matrixrtc_auth.tls import client_ssl_context

TIMEOUT = 5.0
# What the doctor reads from a well-known or a focus: small JSON documents.
MAX_BODY_BYTES = 64 * 1024
FOCI_KEY = "org.matrix.msc4143.rtc_foci"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        text = f"{status} {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n     fix: {self.fix}"


class Doctor:
    def __init__(self, config: Config, *, well_known_port: int = 443) -> None:
        self.config = config
        self._port = well_known_port  # 443 but in tests
        self.checks: list[Check] = []

    def add(self, name: str, ok: bool, detail: str, fix: str = "") -> bool:
        # A fix belongs to a failure only (some callers give one either way).
        self.checks.append(Check(name, ok, detail, "" if ok else fix))
        return ok

    async def run(self) -> None:
        guard = NetworkGuard(self.config.public_facing)
        connector = aiohttp.TCPConnector(
            ssl=client_ssl_context(self.config), resolver=guard.resolver()
        )
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await self.check_sfu()
            discovery = ServerDiscovery(
                HttpWellKnownFetcher(session, guard, port=self._port), DnsSrvResolver()
            )
            federation = FederationClient(session, discovery, guard)
            servers = self.config.full_access_homeservers
            if servers is None:
                self.add("homeservers", True, "full access is '*': no homeserver to check")
            for server in sorted(servers or ()):
                await self.check_homeserver(server, federation, session)
        await self.check_redis()

    async def check_sfu(self) -> None:
        config = self.config
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ssl_context(config)),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        ) as session:
            lk = api.LiveKitAPI(
                config.livekit_url,
                config.livekit_key,
                config.livekit_secret,
                session=session,
                failover=False,
            )
            try:
                response = await lk.room.list_rooms(ListRoomsRequest())
            except api.ServerError as exc:
                fix = (
                    "LIVEKIT_KEY/LIVEKIT_SECRET must be a pair from the keys section of "
                    "LiveKit's config.yaml"
                    if exc.status in (401, 403)
                    else "check the SFU's logs"
                )
                self.add(
                    "livekit", False, f"{config.livekit_url} answered {exc.status} {exc.code}", fix
                )
                return
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.add(
                    "livekit",
                    False,
                    f"cannot reach {config.livekit_url}: {describe_failure(exc)}",
                    "check LIVEKIT_URL and that the SFU runs and is reachable from here",
                )
                return
        self.add(
            "livekit",
            True,
            f"{config.livekit_url} accepts the API key "
            f"{config.livekit_key} ({_count(len(response.rooms), 'room')})",
        )

    async def check_homeserver(
        self, server: str, federation: FederationClient, session: aiohttp.ClientSession
    ) -> None:
        name = parse_server_name(server)
        try:
            status, _ = await federation.get(
                name,
                "/_matrix/federation/v1/version",
                {},
                request_timeout=TIMEOUT,
                max_bytes=4096,
            )
        except FederationError as exc:
            self.add(
                f"federation {server}",
                False,
                exc.cause,
                "the certificate must chain to the system trust store or to SSL_CERT_FILE "
                "(for a private CA)"
                if "certificate" in exc.cause or "TLS" in exc.cause
                else "the service reaches homeservers like other homeservers do: publish "
                "/.well-known/matrix/server or an SRV record, or open port 8448, with a "
                "certificate valid for the server name",
            )
        else:
            self.add(
                f"federation {server}",
                status == 200,
                f"federation API answered {status}",
                "the federation listener must serve /_matrix/federation/v1/*",
            )
        await self.check_focus(server, session)

    async def check_focus(self, server: str, session: aiohttp.ClientSession) -> None:
        host = parse_server_name(server).url_host
        authority = host if self._port == 443 else f"{host}:{self._port}"
        url = f"https://{authority}/.well-known/matrix/client"
        check = f"rtc focus {server}"
        try:
            async with session.get(url, allow_redirects=False) as resp:
                document = (
                    json_object(await read_capped(resp, MAX_BODY_BYTES))
                    if resp.status == 200
                    else None
                )
        except REQUEST_FAILURES as exc:
            self.add(
                check,
                False,
                f"cannot read {url}: {describe_failure(exc)}",
                "clients look for it on port 443 of the server name's host (its port is not "
                "used): serve /.well-known/matrix/client there over HTTPS",
            )
            return
        foci = document.get(FOCI_KEY) if isinstance(document, dict) else None
        focus_urls = (
            [
                f.get("livekit_service_url")
                for f in foci
                if isinstance(f, dict)
                and f.get("type") == "livekit"
                and isinstance(f.get("livekit_service_url"), str)
            ]
            if isinstance(foci, list)
            else []
        )
        if not focus_urls:
            self.add(
                check,
                False,
                f"{url} announces no livekit focus",
                f'add "{FOCI_KEY}": [{{"type": "livekit", "livekit_service_url": '
                '"https://<this service>/livekit/jwt"}] to it',
            )
            return
        focus = str(focus_urls[0]).rstrip("/")
        problem = await self.answers_like_us(session, focus)
        if problem:
            self.add(
                check,
                False,
                f"{focus} {problem}",
                "point livekit_service_url at this service (through the reverse proxy)",
            )
        else:
            self.add(check, True, f"{focus} answers like this service")

    @staticmethod
    async def answers_like_us(session: aiohttp.ClientSession, focus: str) -> str | None:
        try:
            async with session.get(f"{focus}/healthz") as resp:
                if resp.status != 200:
                    return f"answers {resp.status} on /healthz"
            async with session.post(f"{focus}/get_token", data=b"{}") as resp:
                body = json_object(await read_capped(resp, MAX_BODY_BYTES)) or {}
                if resp.status != 400 or body.get("errcode") != "M_BAD_JSON":
                    return "does not answer /get_token like matrixrtc-auth"
        except REQUEST_FAILURES as exc:
            return f"is not reachable: {describe_failure(exc)}"
        return None

    async def check_redis(self) -> None:
        url = self.config.redis_url
        if url is None:
            return
        client = aioredis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            self.add(
                "redis",
                False,
                f"cannot reach {mask_url_password(url)}: {type(exc).__name__}",
                "start Redis or fix LIVEKIT_REDIS_URL (host, port, password, database)",
            )
        else:
            self.add("redis", True, f"{mask_url_password(url)} answers")
        finally:
            await client.aclose()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def run_doctor(env: Mapping[str, str], *, as_json: bool, well_known_port: int = 443) -> int:
    # The configuration check reports a short secret itself; PyJWT would repeat it.
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    notes: tuple[str, ...] = ()
    try:
        config = Config.from_env(env)
    except ConfigError as exc:
        checks = [Check("configuration", False, str(exc), "see the README's configuration table")]
    else:
        notes = config.warnings
        doctor = Doctor(config, well_known_port=well_known_port)
        doctor.add(
            "configuration", True, f"valid, {_count(len(notes), 'warning')}" if notes else "valid"
        )
        asyncio.run(doctor.run())
        checks = doctor.checks
    ok = all(check.ok for check in checks)
    if as_json:
        report = {"ok": ok, "checks": [asdict(c) for c in checks], "warnings": list(notes)}
        print(json.dumps(report, indent=2))
    else:
        for note in notes:
            print(f"WARN configuration: {note}")
        for check in checks:
            print(check.line())
    return 0 if ok else 1
