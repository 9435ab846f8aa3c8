"""An aiohttp application served on loopback from a background thread with its own loop.

The fakes in this package (``FakeSfu``, ``FakeHomeserver``) build on this so that
they work the same from synchronous tests, asynchronous tests and plain scripts
such as a benchmark: the caller's thread never has to run the fake's event loop.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, Self, TypeVar

from aiohttp import web

T = TypeVar("T")

_START_TIMEOUT = 10.0
# Requests still in flight (for example ones told to hang) are cut off after this.
_SHUTDOWN_GRACE = 0.5


class ThreadedServer:
    """Serves ``app`` on ``127.0.0.1`` (a free port) until :meth:`stop`."""

    def __init__(
        self,
        app: web.Application,
        *,
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
    ):
        """``port`` 0 picks a free port; a benchmark may ask for a fixed one (443)."""
        self._app = app
        self._ssl_context = ssl_context
        self._wanted_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("server already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        thread.start()
        ready.wait(_START_TIMEOUT)
        self._loop = loop
        self._thread = thread
        try:
            self._port = self.run_in_loop(self._serve())
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    async def _serve(self) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._wanted_port))
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=self._ssl_context)
        await site.start()
        self._runner = runner
        return int(sock.getsockname()[1])

    def run_in_loop(self, coro: Coroutine[Any, Any, T], timeout: float = _START_TIMEOUT) -> T:
        """Runs ``coro`` on the server's loop and waits for its result."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("server not started")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._runner is not None:
            try:
                self.run_in_loop(self._runner.cleanup(), timeout=_SHUTDOWN_GRACE + 10)
                self.run_in_loop(_cancel_other_tasks())
            finally:
                self._runner = None
        self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            # Closing a transport only schedules the socket's release; run the loop a
            # little longer here so that every connection is really closed before the
            # loop goes (otherwise its sockets surface later as ResourceWarnings).
            loop.run_until_complete(asyncio.sleep(0.05))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
