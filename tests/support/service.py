"""Runs ``matrixrtc-auth`` as a separate process, configured only by its environment.

Black-box and end-to-end tests start the service exactly as an operator would:
``python -m matrixrtc_auth`` with a fresh environment (nothing inherited from
the developer's shell but ``PATH`` and locale), listening on a free loopback
port. The process output is collected so that tests can assert on log lines
and so that a failing test can print what the service said.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from tests.support.ports import free_port

_INHERITED = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")


class ServiceProcess:
    """One running service process."""

    def __init__(self, env: Mapping[str, str], *, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        self.env.setdefault("LIVEKIT_JWT_BIND", f"127.0.0.1:{self.port}")
        self.env.update(env)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self._pump_thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_healthy: bool = True, timeout: float = 20.0) -> ServiceProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "matrixrtc_auth"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        if wait_healthy:
            self.wait_healthy(timeout)
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))
        # End of output: the process has exited. Closing here keeps the pipe from
        # being left to the garbage collector (a ResourceWarning, an error under pytest).
        self.proc.stdout.close()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                self._drain()
                raise RuntimeError(
                    f"service exited with {self.proc.returncode} before serving:\n{self.logs}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"service not healthy after {timeout}s:\n{self.logs}")

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Waits for the process to end by itself; returns its exit status."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self._drain()
        return code

    def _drain(self) -> None:
        """After the process ended: read what it wrote last, then close the pipe."""
        if self._pump_thread is not None:
            self._pump_thread.join(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def logs(self) -> str:
        with self._lock:
            return "\n".join(self._lines)

    def log_lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> str:
        """Waits until a log line contains ``needle``; returns that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if needle in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line with {needle!r} within {timeout}s:\n{self.logs}")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._drain()
        return self.proc.returncode
