"""SRV lookups for server discovery, on dnspython's asyncio resolver.

Only SRV goes through dnspython; A/AAAA resolution stays with the connection
layer (the system resolver, which honours ``/etc/hosts``). A failed lookup of
any kind reads as "no records", which moves discovery on to its next step, as
the specification asks.
"""

from __future__ import annotations

import logging

import dns.asyncresolver
import dns.exception
import dns.resolver
from dns.rdtypes.IN.SRV import SRV

from matrixrtc_auth.logs import fields
from matrixrtc_auth.matrix.discovery import SrvAnswer, SrvRecord

log = logging.getLogger(__name__)

SRV_LOOKUP_TIMEOUT = 2.0


class DnsSrvResolver:
    def __init__(self, timeout: float = SRV_LOOKUP_TIMEOUT) -> None:
        self._timeout = timeout
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        # Built on first use: reading /etc/resolv.conf is file I/O we keep off the
        # start-up path, and a machine without one still serves explicit ports.
        if self._resolver is None:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                self._resolver = dns.asyncresolver.Resolver(configure=False)
        return self._resolver

    async def lookup(self, name: str) -> SrvAnswer:
        try:
            answer = await self._get_resolver().resolve(
                name, "SRV", lifetime=self._timeout, search=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return SrvAnswer([], 0.0)
        except (dns.exception.DNSException, OSError) as exc:
            log.debug(
                "SRV lookup failed", extra=fields(server_name=name, cause=type(exc).__name__)
            )
            return SrvAnswer([], 0.0)
        records = [
            SrvRecord(r.priority, r.weight, r.port, r.target.to_text())
            for r in answer
            if isinstance(r, SRV)
        ]
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else 0.0
        return SrvAnswer(records, ttl)
