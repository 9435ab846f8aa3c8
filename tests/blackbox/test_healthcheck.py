"""Black-box tests of ``matrixrtc-auth healthcheck [URL]``, run as a separate process.

It must exit 0 when ``/healthz`` answers 200 within 2 s and 1 otherwise: when
nothing listens, and when something accepts the connection but never answers
(a raw socket server that reads nothing and writes nothing), in which case it
must give up on time rather than hang a container's health probe, and when the
answer is a 200 that trickles in a byte at a time, too slowly to count.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.blackbox.helpers import Stack
from tests.support.ports import free_port

_INHERITED = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")


def healthcheck(
    *args: str, env: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Runs the command with a clean environment; returns its result and how long it took."""
    clean = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    clean.update(env or {})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "matrixrtc_auth", "healthcheck", *args],
        env=clean,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - started


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte back.

    With ``trickle``, it answers each connection ``200 OK`` instead, but one byte
    every ``trickle`` seconds: each read gets something before a socket timeout,
    the whole answer takes far longer than the health check may wait.
    """

    def __init__(self, trickle: float | None = None) -> None:
        self._trickle = trickle
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="SilentServer", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # held open and never read
            if self._trickle is not None:
                threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        assert self._trickle is not None
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
            if self._stop.wait(self._trickle):
                return
            try:
                conn.send(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def trickling_server() -> Iterator[SilentServer]:
    server = SilentServer(trickle=0.2)
    try:
        yield server
    finally:
        server.close()


def test_healthcheck_exits_0_against_a_running_service(stack: Stack) -> None:
    service = stack.start()
    result, _ = healthcheck(f"{service.base_url}/healthz")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "healthy" in result.stdout


def test_healthcheck_without_url_asks_the_port_of_livekit_jwt_bind(stack: Stack) -> None:
    service = stack.start()
    result, _ = healthcheck(env={"LIVEKIT_JWT_BIND": f"127.0.0.1:{service.port}"})
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"http://127.0.0.1:{service.port}/healthz" in result.stdout


def test_healthcheck_exits_1_against_a_closed_port() -> None:
    port = free_port()
    result, _ = healthcheck(f"http://127.0.0.1:{port}/healthz")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "ConnectionRefusedError" in result.stderr


def test_healthcheck_exits_1_within_3s_when_the_port_never_answers(
    silent_server: SilentServer,
) -> None:
    result, elapsed = healthcheck(f"http://127.0.0.1:{silent_server.port}/healthz")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert elapsed < 3.0, elapsed
    # It did connect: the failure is the missing answer, not a refused connection.
    assert silent_server.accepted


def test_healthcheck_exits_1_within_3s_when_the_answer_trickles_in_too_slowly(
    trickling_server: SilentServer,
) -> None:
    # The whole 200 answer would take about 8 s, one byte every 0.2 s.
    result, elapsed = healthcheck(f"http://127.0.0.1:{trickling_server.port}/healthz")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert elapsed < 3.0, elapsed
    assert trickling_server.accepted
