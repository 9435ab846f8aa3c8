"""Stapled OCSP for homeserver connections: fetch, check, remember, bind.

Python's ``ssl`` module, which carries every aiohttp connection, cannot ask
for or read a stapled OCSP response. So the first time a homeserver (host,
port) is used, ``StapleGate`` opens one extra TLS handshake with pyOpenSSL in a
worker thread (the event loop never blocks), to the very address the real
connection reached, asking for a staple. The staple, if any, is checked with
``ocsp.check_staple`` and the verdict remembered per (host, port, certificate
SHA-256 fingerprint).

``StaplingConnector`` binds the verdict to the connection the service really
uses: every new pooled connection to a homeserver where a staple was seen (or
``REQUIRE_OCSP_STAPLE`` is on) must present the certificate whose staple was
checked, compared by fingerprint, before any request is written on it; a
mismatch or a bad verdict closes it and the request fails. A homeserver that
staples nothing while stapling is not required costs that one probe per
``QUIET_TTL`` and nothing per connection or request.

Costs: one extra handshake per homeserver per verdict lifetime (at most
``VERDICT_TTL``, less when the response's ``nextUpdate`` is sooner); when
stapling is relevant, a SHA-256 of the peer certificate per new connection.
Requests on kept-alive connections cost nothing more. Nothing is contacted at
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import select
import socket
import ssl
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from matrixrtc_auth.logs import fields
from matrixrtc_auth.netguard import parse_ip
from matrixrtc_auth.ocsp import StapleInvalid, check_staple, sha256_fingerprint

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0
VERDICT_TTL = 3600.0
# A homeserver that stapled nothing is asked again after this long.
QUIET_TTL = 3600.0
# Refusals and failed probes are remembered briefly, so that a broken homeserver
# costs one probe per minute rather than one per request.
FAILURE_TTL = 60.0
MIN_TTL = 60.0
MAX_ENTRIES = 4096
# Probes run in a pool of their own: a flood of slow homeservers must not starve
# the default executor, which also serves DNS lookups.
PROBE_WORKERS = 4

CacheKey = tuple[str, int]


class StapleRefused(aiohttp.ClientError):
    """The connection is refused because of OCSP; ``cause`` says why."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True)
class Probe:
    """What one pyOpenSSL handshake saw."""

    fingerprint: str
    leaf: x509.Certificate
    issuer: x509.Certificate | None
    staple: bytes


@dataclass(frozen=True)
class Verdict:
    fingerprint: str | None  # None when the probe failed
    stapled: bool
    refusal: str | None  # None: the connection may be used
    expires: float


ProbeFunction = Callable[[str, int, str, str | None], Probe]


class StapleGate:
    """Decides, per homeserver connection, whether its OCSP situation is acceptable."""

    def __init__(
        self,
        *,
        require: bool,
        cafile: str | None,
        probe: ProbeFunction | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._require = require
        self._cafile = cafile
        self._probe = probe or probe_staple
        self._clock = clock
        self._verdicts: dict[tuple[str, int, str], Verdict] = {}
        # Destinations that staple nothing while stapling is not required.
        self._quiet: dict[CacheKey, float] = {}
        self._inflight: dict[tuple[str, int, str], asyncio.Task[Verdict]] = {}
        self._executor = ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="ocsp-probe")

    def close(self) -> None:
        """Stops the probe threads (probes under way finish within their timeout)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def check(self, name: str, port: int, peer: str, ssl_object: ssl.SSLObject) -> None:
        """Raises ``StapleRefused`` unless the connection to ``peer`` may be used."""
        key = (name.lower(), port)
        now = self._clock()
        quiet_until = self._quiet.get(key)
        if quiet_until is not None and quiet_until > now:
            return

        der = ssl_object.getpeercert(binary_form=True)
        if der is None:
            raise StapleRefused("the homeserver presented no certificate")
        fingerprint = sha256_fingerprint(der)
        verdict = self._verdicts.get((*key, fingerprint))
        if verdict is None or verdict.expires <= now:
            verdict = await self._shared_probe(key, peer, fingerprint)
        if verdict.refusal is not None:
            raise StapleRefused(verdict.refusal)
        if verdict.stapled and verdict.fingerprint != fingerprint:
            raise StapleRefused(
                "this connection presents another certificate than the one whose OCSP "
                "staple was checked"
            )

    async def _shared_probe(self, key: CacheKey, peer: str, fingerprint: str) -> Verdict:
        flight = (*key, fingerprint)
        task = self._inflight.get(flight)
        if task is None:
            task = asyncio.create_task(self._probe_and_judge(key, peer))
            self._inflight[flight] = task
            task.add_done_callback(lambda _: self._inflight.pop(flight, None))
        # Shielded: one cancelled request must not cancel a probe others wait for.
        verdict = await asyncio.shield(task)
        self._remember(key, verdict, fingerprint)
        return verdict

    async def _probe_and_judge(self, key: CacheKey, peer: str) -> Verdict:
        name, port = key
        try:
            probe = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._probe, peer, port, name, self._cafile
            )
        # Any failure of the probe itself (network, TLS, or the library refusing to
        # run, e.g. cffi callbacks under a W^X sandbox) is "could not check", never
        # a 500: it refuses the homeserver only when stapling is required.
        except Exception as exc:
            cause = f"the OCSP probe handshake failed ({type(exc).__name__})"
            log.warning(
                "cannot check OCSP stapling",
                extra=fields(server_name=f"{name}:{port}", cause=cause),
            )
            refusal = cause if self._require else None
            return Verdict(None, False, refusal, self._clock() + FAILURE_TTL)
        return self._judge(name, port, probe)

    def _judge(self, name: str, port: int, probe: Probe) -> Verdict:
        now = self._clock()
        if not probe.staple:
            refusal = "the homeserver staples no OCSP response (REQUIRE_OCSP_STAPLE)"
            if self._require:
                return Verdict(probe.fingerprint, False, refusal, now + FAILURE_TTL)
            return Verdict(probe.fingerprint, False, None, now + QUIET_TTL)
        if probe.issuer is None:
            cause = "stapled OCSP response, but no issuer certificate to check it with"
            return Verdict(probe.fingerprint, True, cause, now + FAILURE_TTL)
        wall = datetime.datetime.now(datetime.UTC)
        try:
            next_update = check_staple(probe.staple, probe.leaf, probe.issuer, wall)
        except StapleInvalid as exc:
            return Verdict(probe.fingerprint, True, f"stapled OCSP: {exc}", now + FAILURE_TTL)
        ttl = VERDICT_TTL
        if next_update is not None:
            ttl = min(ttl, max(MIN_TTL, (next_update - wall).total_seconds()))
        log.info(
            "stapled OCSP response checked: good",
            extra=fields(server_name=f"{name}:{port}"),
        )
        return Verdict(probe.fingerprint, True, None, now + ttl)

    def _remember(self, key: CacheKey, verdict: Verdict, fingerprint: str) -> None:
        if len(self._verdicts) >= MAX_ENTRIES:
            self._verdicts.clear()
            self._quiet.clear()
        if not verdict.stapled and verdict.refusal is None:
            self._quiet[key] = verdict.expires
        else:
            self._quiet.pop(key, None)
        # Stored under the certificate the probe saw (the connection's, if they agree).
        self._verdicts[(*key, verdict.fingerprint or fingerprint)] = verdict


class StaplingConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that runs every new TLS connection past a ``StapleGate``."""

    def __init__(self, *, gate: StapleGate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = gate
        # Connections already admitted; pooled reuse costs a set lookup.
        self._admitted: weakref.WeakSet[object] = weakref.WeakSet()

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
    ) -> Connection:
        conn = await super().connect(req, traces, timeout)
        protocol = conn.protocol
        if not req.is_ssl() or protocol is None or protocol in self._admitted:
            return conn
        try:
            transport = conn.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            peername = transport.get_extra_info("peername") if transport else None
            if not isinstance(ssl_object, ssl.SSLObject) or not peername:
                raise StapleRefused("not a TLS connection")
            name = (req.server_hostname or req.url.host or "").rstrip(".")
            port = req.url.port or 443
            await self._gate.check(name, port, str(peername[0]), ssl_object)
        except BaseException:
            conn.close()
            raise
        self._admitted.add(protocol)
        return conn


def probe_staple(address: str, port: int, tls_name: str, cafile: str | None) -> Probe:
    """One blocking TLS handshake asking for a staple; for a worker thread."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_verify(SSL.VERIFY_PEER, lambda _conn, _cert, _err, _depth, ok: bool(ok))
    _load_trust(context, cafile)
    staples: list[bytes] = []

    def remember_staple(_conn: SSL.Connection, data: bytes, _data: object) -> bool:
        # Judged after the handshake, with the verified chain at hand.
        staples.append(data)
        return True

    context.set_ocsp_client_callback(remember_staple)
    deadline = time.monotonic() + PROBE_TIMEOUT
    with socket.create_connection((address, port), timeout=PROBE_TIMEOUT) as sock:
        sock.setblocking(False)
        conn = SSL.Connection(context, sock)
        if parse_ip(tls_name) is None:
            conn.set_tlsext_host_name(tls_name.encode("ascii"))
        conn.request_ocsp()
        conn.set_connect_state()
        _handshake(conn, sock, deadline)
        chain = conn.get_verified_chain(as_cryptography=True) or []
        # The probe is over; a rough goodbye does not matter.
        with contextlib.suppress(SSL.Error):
            conn.shutdown()
    if not chain:
        raise ValueError("no verified certificate chain")
    leaf = chain[0]
    der = leaf.public_bytes(Encoding.DER)
    issuer = chain[1] if len(chain) > 1 else None
    return Probe(sha256_fingerprint(der), leaf, issuer, staples[0] if staples else b"")


def _handshake(conn: SSL.Connection, sock: socket.socket, deadline: float) -> None:
    while True:
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            readable, writable = [sock], []
        except SSL.WantWriteError:
            readable, writable = [], [sock]
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not any(select.select(readable, writable, [], remaining)):
            raise TimeoutError("OCSP probe handshake timed out")


def _load_trust(context: SSL.Context, cafile: str | None) -> None:
    """The trust the service's own connections use: ``SSL_CERT_FILE``, else the system's."""
    if cafile is not None:
        context.load_verify_locations(cafile)
        return
    paths = ssl.get_default_verify_paths()
    file = paths.cafile if paths.cafile and Path(paths.cafile).is_file() else None
    directory = paths.capath if paths.capath and Path(paths.capath).is_dir() else None
    if file is None and directory is None:
        context.set_default_verify_paths()
    else:
        context.load_verify_locations(file, directory)
