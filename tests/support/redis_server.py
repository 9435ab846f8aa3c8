"""A real ``redis-server`` on a free loopback port, for tests of the shared identity registry.

``RedisServer`` runs the binary from the system (``redis-server`` on ``PATH``)
in a temporary directory with persistence off, bound to ``127.0.0.1`` only.
``stop()`` and ``start()`` (same port) let a test simulate an outage and the
recovery. A machine without ``redis-server`` fails the tests that need it
loudly: they are never skipped (``make install-test`` installs it).

Test modules use the fixture by importing it::

    from tests.support.redis_server import redis_server  # noqa: F401
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port

_START_TIMEOUT = 10.0


class RedisServer:
    """One ``redis-server`` process; its address is :attr:`url`."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed; the Redis tests need it "
                "(apt-get install -y redis-server, or make install-test)"
            )
        self.binary = binary
        self.port = port if port is not None else free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="redis-test-")
        self._log = Path(self._dir.name) / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> RedisServer:
        """Starts the server (again, on the same port) and waits until it answers PING."""
        if self.running:
            return self
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self._dir.name,
                    "--protected-mode",
                    "yes",
                ],
                cwd=self._dir.name,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}:\n{self.output()}"
                )
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {_START_TIMEOUT}s")

    def ping(self) -> bool:
        """Whether the server answers ``PING`` right now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stops the server; the port is free again once this returns."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def output(self) -> str:
        try:
            return self._log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A running ``redis-server`` on loopback, stopped after the test."""
    with RedisServer() as server:
        yield server
