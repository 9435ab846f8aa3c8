"""A TLS homeserver on loopback that staples OCSP responses to its handshakes.

Python's ``ssl`` cannot staple, so this server speaks TLS through pyOpenSSL,
one thread per connection, and answers just enough HTTP/1.1 for the V1 flow:
``GET /_matrix/federation/v1/openid/userinfo`` answers ``{"sub": <user>}``
for any token, every other path 404; each response closes its connection.

:attr:`staple` is what the next handshakes staple (``b""`` for none). Given
several identities (certificate + key + staple), connections take them in
turn, so a test can make the service's connection and its OCSP probe see
different certificates. It counts handshakes and userinfo requests, so a test
can tell whether a token was ever sent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from OpenSSL import SSL

from tests.support.ocsp_pki import Issued

USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"


@dataclass
class Identity:
    """What one connection presents: a certificate (with key) and the staple to send."""

    issued: Issued
    staple: bytes = b""


class StaplingServer:
    """Serves on ``127.0.0.1`` (a free port) until :meth:`stop`; server name ``127.0.0.1:port``."""

    def __init__(self, directory: Path, *identities: Identity) -> None:
        if not identities:
            raise ValueError("at least one identity")
        self._identities = list(identities)
        self._contexts = [self._context(directory, i, ident) for i, ident in enumerate(identities)]
        self._lock = threading.Lock()
        self._connections = 0
        self._userinfo = 0
        self._staples_sent = 0
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        # A timeout, so that the accept loop notices stop().
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])

    def _context(self, directory: Path, index: int, identity: Identity) -> SSL.Context:
        cert = directory / f"stapling-{self_id(self)}-{index}.crt"
        key = directory / f"stapling-{self_id(self)}-{index}.key"
        cert.write_bytes(identity.issued.pem())
        key.write_bytes(identity.issued.key_pem())
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.use_certificate_chain_file(str(cert))
        context.use_privatekey_file(str(key))

        def staple(_conn: SSL.Connection, _data: object) -> bytes:
            with self._lock:
                data = self._identities[index].staple
                if data:
                    self._staples_sent += 1
            return data

        context.set_ocsp_server_callback(staple)
        return context

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_staple(self, staple: bytes, index: int = 0) -> None:
        with self._lock:
            self._identities[index].staple = staple

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    @property
    def userinfo_requests(self) -> int:
        with self._lock:
            return self._userinfo

    @property
    def staples_sent(self) -> int:
        with self._lock:
            return self._staples_sent

    def start(self) -> Self:
        thread = threading.Thread(target=self._accept_loop, name="StaplingServer", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                context = self._contexts[self._connections % len(self._contexts)]
                self._connections += 1
                self._sockets.append(sock)
            worker = threading.Thread(target=self._serve, args=(sock, context), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, sock: socket.socket, context: SSL.Context) -> None:
        conn = SSL.Connection(context, sock)
        conn.set_accept_state()
        try:
            conn.do_handshake()
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                request += chunk
            if request:
                conn.sendall(self._answer(request))
            conn.shutdown()
        except (SSL.Error, OSError):
            pass  # a probe that hangs up after its handshake, or a refused connection
        finally:
            sock.close()

    def _answer(self, request: bytes) -> bytes:
        line = request.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        path = parts[1].split("?", 1)[0] if len(parts) > 1 else ""
        if parts[0] == "GET" and path == USERINFO_PATH:
            with self._lock:
                self._userinfo += 1
            status, body = "200 OK", {"sub": f"@alice:{self.server_name}"}
        else:
            status, body = "404 Not Found", {"errcode": "M_UNRECOGNIZED", "error": "nope"}
        data = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + data

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def self_id(obj: object) -> str:
    return format(id(obj), "x")
